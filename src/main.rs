//! The `dossier` binary: parses the command line and hands over to the crates.
//!
//! The production build (`--no-default-features`) has the operator commands only; the
//! default `dev` feature adds the developer commands of `dossier-devkit`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dossier_service::cli;
use dossier_service::telemetry::Logging;

#[derive(Parser)]
#[command(
    name = "dossier",
    version,
    about = "Underwriting data gateway for PACE financing"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Not Debug: `serve` holds secrets (ServeArgs).
#[derive(Subcommand)]
enum Command {
    /// Serve gRPC (production).
    Serve(Box<cli::serve::Args>),
    /// Apply pending database migrations and exit.
    Migrate(cli::migrate::Args),
    /// Recompute an application's decisions from their stored inputs and policy, and say
    /// whether they match (exit status 1 when one does not).
    Replay(cli::replay::Args),
    /// Look at the work queue; re-run dead letters (docs/operations.md).
    Jobs(cli::jobs::Args),
    /// Print a reporting view (docs/reporting.md).
    Report(cli::report::Args),
    /// Print the adverse-action notice of a declined application, as text or HTML.
    Notice(cli::notice::Args),
    /// Manage the OFAC SDN sanctions list.
    Sanctions(cli::sanctions::Args),
    /// Send an application file to a running Dossier and print the report.
    Evaluate(cli::evaluate::Args),
    /// Ask a running Dossier whether it is SERVING (exit status 1 when not).
    Health(cli::health::Args),
    /// Field-encryption keys: `keys rotate` re-seals stored personal data under the
    /// active key.
    Keys(cli::keys::Args),
    #[cfg(feature = "dev")]
    #[command(flatten)]
    Dev(dossier_devkit::cli::Command),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let logging = match &cli.command {
        // Client commands print results on stdout and errors on stderr: no log lines.
        Command::Evaluate(_)
        | Command::Report(_)
        | Command::Notice(_)
        | Command::Jobs(_)
        | Command::Health(_)
        | Command::Keys(_) => None,
        // Tools print results on stdout: their warnings go to stderr.
        Command::Sanctions(_) | Command::Replay(_) => Some(Logging::TOOL),
        Command::Serve(_) | Command::Migrate(_) => Some(Logging::SERVER),
        #[cfg(feature = "dev")]
        Command::Dev(dev) => Some(dev.logging()),
    };
    let is_client = logging.is_none();
    let telemetry = logging.map(dossier_service::telemetry::init);
    let code = match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if is_client {
                eprintln!("error: {e:#}");
            } else {
                tracing::error!(error = format!("{e:#}"), "dossier failed");
            }
            ExitCode::FAILURE
        }
    };
    if let Some(telemetry) = telemetry {
        // The last spans of a stopping server reach the collector.
        tokio::task::block_in_place(|| telemetry.shutdown());
    }
    code
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => cli::serve::run(*args).await,
        Command::Migrate(args) => cli::migrate::run(args).await,
        Command::Replay(args) => cli::replay::run(args).await,
        Command::Jobs(args) => cli::jobs::run(args).await,
        Command::Report(args) => cli::report::run(args).await,
        Command::Notice(args) => cli::notice::run(args).await,
        Command::Sanctions(args) => cli::sanctions::run(args).await,
        Command::Evaluate(args) => cli::evaluate::run(args).await,
        Command::Health(args) => cli::health::run(args).await,
        Command::Keys(args) => cli::keys::run(args).await,
        #[cfg(feature = "dev")]
        Command::Dev(command) => command.run().await,
    }
}
