//! The field-encryption keys, for the commands beside `serve` that open sealed values
//! (`dossier keys rotate`, `dossier replay`). Environment only, like `serve`'s.

use dossier_store::Vault;

use super::secret::Secret;

#[derive(Clone, clap::Args)]
pub struct KeyArgs {
    /// Field-encryption keys: `id:base64-32-bytes[,id:…]`. The first seals new values
    /// unless --encryption-active-key says otherwise; keep retired keys listed until
    /// `dossier keys rotate` reports nothing left. Environment only:
    /// DOSSIER_ENCRYPTION_KEYS or DOSSIER_ENCRYPTION_KEYS_FILE.
    #[arg(skip = Secret::from_env("DOSSIER_ENCRYPTION_KEYS"))]
    pub encryption_keys: Secret,

    /// Id of the key new values are sealed with; the first listed when unset.
    #[arg(long, env = "DOSSIER_ENCRYPTION_ACTIVE_KEY")]
    pub encryption_active_key: Option<String>,

    /// Key of the keyed hash used to look up SSNs (base64 of 32 bytes). Changing it
    /// makes existing look-up hashes unmatchable. Environment only: DOSSIER_LOOKUP_KEY
    /// or DOSSIER_LOOKUP_KEY_FILE.
    #[arg(skip = Secret::from_env("DOSSIER_LOOKUP_KEY"))]
    pub lookup_key: Secret,
}

impl std::fmt::Debug for KeyArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyArgs")
            .field("encryption_active_key", &self.encryption_active_key)
            .finish_non_exhaustive()
    }
}

impl KeyArgs {
    /// No keys (in-process servers get a vault from their caller).
    pub fn unset() -> KeyArgs {
        KeyArgs {
            encryption_keys: Secret::unset("DOSSIER_ENCRYPTION_KEYS"),
            encryption_active_key: None,
            lookup_key: Secret::unset("DOSSIER_LOOKUP_KEY"),
        }
    }

    /// The vault of the configured keys.
    pub fn vault(&self) -> anyhow::Result<Vault> {
        vault(
            &self.encryption_keys,
            self.encryption_active_key.as_deref(),
            &self.lookup_key,
        )
    }

    /// The vault when keys are configured, else None.
    pub fn vault_if_set(&self) -> anyhow::Result<Option<Vault>> {
        if self.encryption_keys.is_set() || self.lookup_key.is_set() {
            self.vault().map(Some)
        } else {
            Ok(None)
        }
    }
}

/// The vault from the key settings, naming what is missing and how to make it.
pub fn vault(keys: &Secret, active: Option<&str>, lookup: &Secret) -> anyhow::Result<Vault> {
    let keys = keys.get()?.ok_or_else(|| {
        anyhow::anyhow!(
            "DOSSIER_ENCRYPTION_KEYS is not set; generate a key with `echo k1:$(openssl rand -base64 32)` and keep it in your secret store"
        )
    })?;
    let lookup = lookup.get()?.ok_or_else(|| {
        anyhow::anyhow!(
            "DOSSIER_LOOKUP_KEY is not set; generate one with `openssl rand -base64 32`"
        )
    })?;
    Ok(Vault::from_config(keys, active, lookup)?)
}
