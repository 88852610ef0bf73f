//! `dossier replay`: recompute an application's decisions from their stored inputs and
//! policy, and say whether they match (exit status 1 when one does not).

use dossier_store::{Store, Vault};

use crate::config::{DatabaseArgs, KeyArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    pub application_id: uuid::Uuid,
    #[command(flatten)]
    pub keys: KeyArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let pool = dossier_store::connect(&args.database.url("replay")?, 2).await?;
    // The applicants' inputs of a run are sealed: opening them needs the key that
    // sealed them. Runs of earlier releases, stored in the clear, replay without keys.
    let vault = args.keys.vault_if_set()?.unwrap_or_else(Vault::ephemeral);
    let store = Store::new(pool, vault);
    let replayed = crate::underwriting::replay(&store, args.application_id).await?;
    let mut all_match = true;
    for r in &replayed {
        all_match &= r.matches();
        println!(
            "run {}: stored {} [{}], recomputed {} [{}]: {}",
            r.run_id,
            r.stored.as_str().to_uppercase(),
            r.stored_reasons.join(", "),
            r.recomputed.as_str().to_uppercase(),
            r.recomputed_reasons.join(", "),
            if r.matches() { "MATCHES" } else { "DIFFERS" }
        );
        for (kind, subject, then, now) in &r.differences {
            println!(
                "  {} {subject}: stored {then}, recomputed {now}",
                kind.as_str()
            );
        }
    }
    if all_match {
        Ok(())
    } else {
        anyhow::bail!("a recomputed decision differs from the stored one")
    }
}
