//! `dossier sanctions load DIR`: make the SDN list in DIR the fleet's active list.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use dossier_sanctions::parse_sdn_files;
use dossier_store::sanctions::LoadSummary;
use dossier_store::{Store, Vault};

use crate::config::DatabaseArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Replace the active list with the files in DIR (sdn.csv, and alt.csv and add.csv
    /// when present, in the official SDN CSV layout). Atomic: pods switch within a
    /// minute; a bad or empty list is refused and the current one stays.
    Load {
        dir: PathBuf,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let Command::Load { dir, database } = args.command;
    let pool = dossier_store::connect(&database.url("sanctions load")?, 2).await?;
    if !dossier_store::pending_migrations(&pool).await?.is_empty() {
        anyhow::bail!("the database schema is not up to date; run `dossier migrate` first");
    }
    // Loading needs no encryption key: the list holds no applicant data.
    let store = Store::new(pool, Vault::ephemeral());
    let summary = load_dir(&store, &dir).await?;
    println!("{summary}");
    Ok(())
}

/// Reads `sdn.csv` (required), `alt.csv` and `add.csv` (optional) from `dir` and makes
/// them the active sanctions list of the fleet, in one transaction.
pub async fn load_dir(store: &Store, dir: &Path) -> anyhow::Result<LoadSummary> {
    let sdn_path = dir.join("sdn.csv");
    let sdn = tokio::fs::read(&sdn_path).await.with_context(|| {
        format!(
            "cannot read {}: put the SDN list's CSV files (sdn.csv; alt.csv and add.csv for \
             aliases and addresses) in {} and run the load again; the active list is unchanged",
            sdn_path.display(),
            dir.display()
        )
    })?;
    let optional = |name: &'static str| {
        let path = dir.join(name);
        async move {
            match tokio::fs::read(&path).await {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tracing::warn!(
                        "{} not found: the list is loaded without its {}",
                        path.display(),
                        if name == "alt.csv" {
                            "aliases (a.k.a. names are not screened)"
                        } else {
                            "addresses"
                        }
                    );
                    Ok(None)
                }
                Err(e) => Err(anyhow::anyhow!(
                    "cannot read {} ({e}); fix its permissions or remove it, then run the load again; the active list is unchanged",
                    path.display()
                )),
            }
        }
    };
    let alt = optional("alt.csv").await?;
    let add = optional("add.csv").await?;
    let list =
        tokio::task::spawn_blocking(move || parse_sdn_files(&sdn, alt.as_deref(), add.as_deref()))
            .await
            .context("the sanctions list parser panicked")?
            .with_context(|| format!("cannot load the sanctions list from {}", dir.display()))?;
    let summary = store
        .replace_sanctions_list(&list, &dir.display().to_string())
        .await
        .with_context(|| {
            format!(
                "cannot store the sanctions list read from {}; the active list is unchanged",
                dir.display()
            )
        })?;
    tracing::info!(
        list_id = summary.list_id,
        entries = summary.entries,
        aliases = summary.aliases,
        addresses = summary.addresses,
        skipped_rows = summary.skipped_rows,
        "{summary}"
    );
    Ok(summary)
}
