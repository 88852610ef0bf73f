//! `dossier migrate`: apply pending database migrations and exit.

use crate::config::DatabaseArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub database: DatabaseArgs,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let url = args.database.url("migrate")?;
    let applied = dossier_store::migrate(&url).await?;
    tracing::info!(applied = applied.len(), versions = ?applied, "database schema is up to date");
    Ok(())
}
