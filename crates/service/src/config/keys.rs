//! The field-encryption keys, for the commands beside `serve` that open sealed values
//! (`dossier keys rotate`, `dossier replay`). Environment only, like `serve`'s.

use dossier_store::Vault;

use super::secret::Secret;

#[derive(clap::Args)]
pub struct KeyArgs {
    /// DOSSIER_ENCRYPTION_KEYS (or _FILE): `id:base64-32-bytes[,id:…]`, every key that
    /// sealed a stored value.
    #[arg(skip = Secret::from_env("DOSSIER_ENCRYPTION_KEYS"))]
    pub encryption_keys: Secret,

    /// Id of the key values are sealed with; the first listed when unset.
    #[arg(long, env = "DOSSIER_ENCRYPTION_ACTIVE_KEY")]
    pub encryption_active_key: Option<String>,

    /// DOSSIER_LOOKUP_KEY (or _FILE): base64 of 32 bytes.
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
