//! `dossier simulate`: serve every upstream simulator on loopback until stopped.
//!
//! Its stdout is one `name url` line per simulator and nothing else, for a script to
//! read; its log lines go to stderr (`cli::Command::logging`).

use std::io::Write as _;
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
    // Listening for SIGTERM before the addresses are out: a script that has read them
    // may stop us at once, and must get a graceful stop.
    let stop = shutdown_signal();
    let sims = Simulators::start(config).await?;
    print_urls(&sims)?;
    stop.await;
    sims.shutdown().await;
    Ok(())
}

/// The `name url` lines, flushed before anything waits: a script reading the pipe gets
/// them now, not when a buffer fills or the process ends.
fn print_urls(sims: &Simulators) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for (upstream, url) in sims.base_urls() {
        writeln!(out, "{:<18} {url}", upstream.as_str())?;
    }
    out.flush()
}
