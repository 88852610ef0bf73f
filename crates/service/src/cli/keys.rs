//! `dossier keys rotate`: seal every stored personal value again under the active key,
//! bound to its row, in batches, while the fleet serves. Resumable: run it again after
//! an interruption and it carries on; it reports progress after every batch.

use std::time::Instant;

use dossier_store::Store;

use crate::config::{DatabaseArgs, KeyArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Re-seal SSNs, dates of birth, runs' personal inputs and personal cache entries
    /// under the active key (DOSSIER_ENCRYPTION_ACTIVE_KEY, else the first listed). Keep
    /// the retired keys listed until it reports nothing left.
    Rotate(RotateArgs),
}

#[derive(Debug, clap::Args)]
pub struct RotateArgs {
    /// Rows per transaction: each batch locks only its own rows, for milliseconds.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub batch: i64,
    #[command(flatten)]
    pub keys: KeyArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let KeysCommand::Rotate(args) = args.command;
    let vault = args.keys.vault()?;
    let pool = dossier_store::connect(&args.database.url("keys rotate")?, 2).await?;
    let store = Store::new(pool, vault);
    let started = Instant::now();
    let before = store.rotation_remaining().await?;
    println!(
        "re-sealing under key `{}`: {} applicants, {} runs, {} funding checks, {} cache entries to do",
        store.vault.active_key_id(),
        before.applicant_secrets,
        before.evaluation_runs,
        before.funding_checks,
        before.upstream_cache
    );
    let mut done = [0usize; 4];
    let tables = [
        "applicant_secrets",
        "evaluation_runs",
        "funding_checks",
        "upstream_cache",
    ];
    for (i, table) in tables.iter().enumerate() {
        loop {
            let n = match i {
                0 => store.reseal_applicants(args.batch).await?,
                1 => store.reseal_run_inputs(args.batch).await?,
                2 => store.reseal_funding_inputs(args.batch).await?,
                _ => store.reseal_cache(args.batch).await?,
            };
            if n == 0 {
                break;
            }
            done[i] += n;
            let left = store.rotation_remaining().await?;
            let left = [
                left.applicant_secrets,
                left.evaluation_runs,
                left.funding_checks,
                left.upstream_cache,
            ][i];
            println!("{table}: {} re-sealed, {left} left", done[i]);
        }
    }
    let after = store.rotation_remaining().await?;
    println!(
        "done in {:.1} s: {} applicants, {} runs, {} funding checks, {} cache entries re-sealed; {} left",
        started.elapsed().as_secs_f64(),
        done[0],
        done[1],
        done[2],
        done[3],
        after.total()
    );
    if after.total() > 0 {
        // Rows that a concurrent writer added under a retired key (a pod that still has
        // the old active key): run again once every pod has the new one.
        anyhow::bail!(
            "{} rows are still under a retired key; make sure every pod uses the new active key, then run `dossier keys rotate` again",
            after.total()
        );
    }
    Ok(())
}
