//! The `dossier` binary: parses the command line and hands over to the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use dossier::config::ServeArgs;
use dossier::server::{Resolved, Server, shutdown_signal};

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

#[derive(Subcommand)]
enum Command {
    /// Serve gRPC (production).
    Serve(ServeArgs),
    /// Run everything locally: a private PostgreSQL (unless DATABASE_URL is set), the
    /// simulators and the server on 127.0.0.1:50051.
    Dev(ServeArgs),
    /// Run N replicas on loopback with one PostgreSQL and the simulators (a local
    /// Kubernetes Deployment, for drills and benches).
    Fleet(dossier::cli::fleet::FleetArgs),
    /// Apply pending database migrations and exit.
    Migrate {
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
    },
    /// Recompute an application's decisions from their stored inputs and policy, and say
    /// whether they match (exit status 1 when one does not).
    Replay {
        application_id: uuid::Uuid,
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
    },
    /// Look at the work queue; re-run dead letters (docs/operations.md).
    Jobs(dossier::cli::jobs::JobsArgs),
    /// Print a reporting view (docs/reporting.md).
    Report(dossier::cli::report::ReportArgs),
    /// Fill DATABASE_URL with N simulated, underwritten applications (docs/reporting.md).
    Seed(dossier::cli::seed::SeedArgs),
    /// Check an underwriting policy file.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Manage the OFAC SDN sanctions list.
    Sanctions {
        #[command(subcommand)]
        command: SanctionsCommand,
    },
    /// Serve every upstream simulator on loopback until stopped.
    Simulate {
        /// TOML file of simulator settings (see docs/simulators.md).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Measure the upstream protections against the simulators (docs/benchmarks.md).
    Bench(dossier::bench::BenchArgs),
    /// Send an application file to a running Dossier and print the report.
    Evaluate {
        /// Application JSON (see examples/).
        #[arg(long)]
        file: PathBuf,
        /// Dossier's gRPC address.
        #[arg(long, env = "DOSSIER_ADDR", default_value = "http://127.0.0.1:50051")]
        addr: String,
        /// Idempotency key; a new application each time when omitted.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Deadline for the whole evaluation.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Print the report as JSON-like debug output instead of a table.
        #[arg(long)]
        raw: bool,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate FILE (every setting named when missing or contradictory) and show its
    /// decisions on the example applications beside the built-in policy's.
    Check {
        file: PathBuf,
        /// Directory of application JSON files to evaluate.
        #[arg(long, default_value = "examples")]
        examples: PathBuf,
        /// Only validate; do not evaluate the examples.
        #[arg(long)]
        no_examples: bool,
    },
}

#[derive(Subcommand)]
enum SanctionsCommand {
    /// Replace the active list with the files in DIR (sdn.csv, and alt.csv and add.csv
    /// when present, in the official SDN CSV layout). Atomic: pods switch within a
    /// minute; a bad or empty list is refused and the current one stays.
    Load {
        dir: PathBuf,
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Client commands print results on stdout: no JSON log lines there.
    let is_client = matches!(
        cli.command,
        Command::Evaluate { .. } | Command::Report(_) | Command::Jobs(_)
    );
    if matches!(
        cli.command,
        Command::Bench(_)
            | Command::Policy { .. }
            | Command::Sanctions { .. }
            | Command::Replay { .. }
            | Command::Seed(_)
    ) {
        dossier::telemetry::init_with_default("warn");
    } else if !is_client {
        dossier::telemetry::init();
    }
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if is_client {
                eprintln!("error: {e:#}");
            } else {
                tracing::error!(error = format!("{e:#}"), "dossier failed");
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => {
            let database_url = args
                .database_url
                .clone()
                .ok_or_else(|| anyhow::anyhow!("DATABASE_URL is not set; `serve` needs a PostgreSQL URL (`dossier dev` starts a private one)"))?;
            let vault = dossier::cli_support::vault_from(&args)?;
            let upstreams = args.upstreams.settings()?;
            let server = Server::build(
                args,
                Resolved {
                    database_url,
                    vault,
                    upstreams,
                    sample_sanctions: false,
                },
            )
            .await?;
            server.run_until_stopped(shutdown_signal()).await
        }
        Command::Dev(args) => dossier::cli::dev::run(args).await,
        Command::Fleet(args) => dossier::cli::fleet::run(args).await,
        Command::Bench(args) => dossier::bench::run(args).await,
        Command::Migrate { database_url } => {
            let applied = dossier::store::migrate(&database_url).await?;
            tracing::info!(applied = applied.len(), versions = ?applied, "database schema is up to date");
            Ok(())
        }
        Command::Report(args) => dossier::cli::report::run(args).await,
        Command::Jobs(args) => dossier::cli::jobs::run(args).await,
        Command::Seed(args) => dossier::cli::seed::run(args).await,
        Command::Replay {
            application_id,
            database_url,
        } => {
            let pool = dossier::store::connect(&database_url, 2).await?;
            // Replay reads no sealed column: no encryption key needed.
            let store = dossier::store::Store::new(pool, dossier::store::Vault::ephemeral());
            let replayed = dossier::underwriting::replay(&store, application_id).await?;
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
        Command::Policy {
            command:
                PolicyCommand::Check {
                    file,
                    examples,
                    no_examples,
                },
        } => dossier::cli::policy::check(&file, (!no_examples).then_some(examples.as_path())).await,
        Command::Sanctions {
            command: SanctionsCommand::Load { dir, database_url },
        } => {
            let pool = dossier::store::connect(&database_url, 2).await?;
            if !dossier::store::pending_migrations(&pool).await?.is_empty() {
                anyhow::bail!("the database schema is not up to date; run `dossier migrate` first");
            }
            // Loading needs no encryption key: the list holds no applicant data.
            let store = dossier::store::Store::new(pool, dossier::store::Vault::ephemeral());
            let summary = dossier::upstream::sanctions::load_dir(&store, &dir).await?;
            println!("{summary}");
            Ok(())
        }
        Command::Simulate { config } => {
            let config = match config {
                Some(path) => dossier::sim::SimConfig::from_toml_file(&path)?,
                None => dossier::sim::SimConfig::default(),
            };
            let sims = dossier::sim::Simulators::start(config).await?;
            for (upstream, url) in sims.base_urls() {
                println!("{:<18} {url}", upstream.name());
            }
            shutdown_signal().await;
            sims.shutdown().await;
            Ok(())
        }
        Command::Evaluate {
            file,
            addr,
            idempotency_key,
            timeout,
            raw,
        } => {
            let report =
                dossier::cli::evaluate::run(&file, &addr, idempotency_key, timeout).await?;
            if raw {
                println!("{report:#?}");
            } else {
                print!("{}", dossier::cli::evaluate::render(&report));
            }
            Ok(())
        }
    }
}
