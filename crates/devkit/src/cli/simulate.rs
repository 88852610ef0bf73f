//! `dossier simulate`: serve every upstream simulator on loopback until stopped.

use std::path::PathBuf;

use dossier_service::server::shutdown_signal;

use crate::sim::{SimConfig, Simulators};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// TOML file of simulator settings (see docs/simulators.md).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let config = match args.config {
        Some(path) => SimConfig::from_toml_file(&path)?,
        None => SimConfig::default(),
    };
    let sims = Simulators::start(config).await?;
    for (upstream, url) in sims.base_urls() {
        println!("{:<18} {url}", upstream.as_str());
    }
    shutdown_signal().await;
    sims.shutdown().await;
    Ok(())
}
