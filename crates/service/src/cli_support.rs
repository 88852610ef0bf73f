//! Small helpers shared by the binary's subcommands.

use crate::config::ServeArgs;
use dossier_store::Vault;

/// The vault from configured keys; `serve` requires them.
pub fn vault_from(args: &ServeArgs) -> anyhow::Result<Vault> {
    let keys = args.encryption_keys.as_deref().ok_or_else(|| {
        anyhow::anyhow!(
            "DOSSIER_ENCRYPTION_KEYS is not set; generate a key with `echo k1:$(openssl rand -base64 32)` and keep it in your secret store"
        )
    })?;
    let lookup = args.lookup_key.as_deref().ok_or_else(|| {
        anyhow::anyhow!(
            "DOSSIER_LOOKUP_KEY is not set; generate one with `openssl rand -base64 32`"
        )
    })?;
    Ok(Vault::from_config(
        keys,
        args.encryption_active_key.as_deref(),
        lookup,
    )?)
}
