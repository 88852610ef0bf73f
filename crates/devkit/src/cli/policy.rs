//! `dossier policy check FILE`: validate a policy file and show what it would decide on
//! the example applications, beside the built-in policy.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use crate::devdb::PrivatePostgres;
use crate::sim::{SimConfig, Simulators};
use dossier_core::policy::LoadedPolicy;
use dossier_service::proto;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
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

pub async fn run(args: Args) -> anyhow::Result<()> {
    let Command::Check {
        file,
        examples,
        no_examples,
    } = args.command;
    check(&file, (!no_examples).then_some(examples.as_path())).await
}

/// Validates `file`; with `examples`, evaluates each `*.json` there under both policies
/// (simulators, a private PostgreSQL unless DATABASE_URL is set) and prints a table.
pub async fn check(file: &Path, examples: Option<&Path>) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let policy =
        LoadedPolicy::parse(&text).with_context(|| format!("{} is refused", file.display()))?;
    println!("{}: valid", file.display());
    println!("  version  {}", policy.policy.version);
    println!("  sha256   {}", policy.hash);
    let states: Vec<&String> = policy.policy.states.keys().collect();
    if !states.is_empty() {
        println!(
            "  per-state overrides: {}",
            states
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let Some(dir) = examples else {
        return Ok(());
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();

    let mut private_pg = None;
    let admin_url = match std::env::var("DATABASE_URL") {
        Ok(url) => url,
        Err(_) => {
            let pg = tokio::task::spawn_blocking(PrivatePostgres::start).await??;
            let url = pg.url();
            private_pg = Some(pg);
            url
        }
    };
    let db = crate::bench::fresh_database(&admin_url).await?;
    let sims = Simulators::start(SimConfig::default()).await?;
    let settings = crate::bench::bench_settings(&sims, None);
    let (builtin, stop_a, handle_a) =
        crate::bench::start_server_with_policy(&db, settings.clone(), None).await?;
    let (candidate, stop_b, handle_b) =
        crate::bench::start_server_with_policy(&db, settings, Some(file.to_owned())).await?;

    println!(
        "\n{:<24} {:<28} {:<28}",
        "example", "built-in policy", policy.policy.version
    );
    for path in files {
        let source = match dossier_service::cli::evaluate::read_file(&path) {
            Ok(s) => s,
            Err(_) => continue, // not an application file (e.g. upstreams.toml's neighbours)
        };
        let mut line = format!(
            "{:<24}",
            path.file_name().unwrap_or_default().to_string_lossy()
        );
        for channel in [&builtin, &candidate] {
            let mut client =
                proto::underwriting_service_client::UnderwritingServiceClient::new(channel.clone());
            let mut r = tonic::Request::new(proto::EvaluateApplicationRequest {
                idempotency_key: String::new(),
                source: Some(source.clone()),
            });
            r.set_timeout(Duration::from_secs(30));
            let cell = match client.evaluate_application(r).await {
                Ok(resp) => {
                    let report = resp.into_inner().report.unwrap_or_default();
                    let d = report
                        .decision()
                        .as_str_name()
                        .trim_start_matches("DECISION_")
                        .to_owned();
                    if report.reason_codes.is_empty() {
                        d
                    } else {
                        format!("{d} {}", report.reason_codes.join(","))
                    }
                }
                Err(s) => format!("error: {:?}", s.code()),
            };
            line.push_str(&format!(" {cell:<28}"));
        }
        println!("{line}");
    }
    for (stop, handle) in [(stop_a, handle_a), (stop_b, handle_b)] {
        let _ = stop.send(());
        let _ = handle.await;
    }
    sims.shutdown().await;
    if let Err(e) = crate::bench::drop_database(&admin_url, &db).await {
        tracing::warn!(error = %e, "could not drop the throw-away database");
    }
    drop(private_pg);
    Ok(())
}
