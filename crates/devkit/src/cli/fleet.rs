//! `dossier fleet --replicas N`: a local fleet for newcomers, fault drills and benches.
//! One PostgreSQL (private unless DATABASE_URL is set), one set of simulators, N
//! `dossier serve` processes on consecutive loopback ports. A replica that dies is
//! started again, as a Kubernetes ReplicaSet would.

use std::time::Duration;

use crate::devdb::PrivatePostgres;
use crate::fleet::{Fleet, FleetSpec};
use crate::sim::{SimConfig, Simulators};
use dossier_service::config::DatabaseArgs;
use dossier_service::server::shutdown_signal;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of `dossier serve` processes.
    #[arg(long, default_value_t = 3)]
    pub replicas: usize,
    /// gRPC port of the first replica; the others follow (50051, 50052, …).
    #[arg(long, default_value_t = 50051)]
    pub base_port: u16,
    // A private PostgreSQL is started (and deleted on exit) when unset.
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Directory for one log file per replica; replicas log to this terminal when unset.
    #[arg(long)]
    pub log_dir: Option<std::path::PathBuf>,
    /// The `dossier` binary the replicas run (this one when unset), looked up again at
    /// every (re)start: point a symlink at another release and restart the replicas one
    /// at a time to rehearse an upgrade. The database is then migrated by that binary's
    /// `dossier migrate`, so it starts on its own release's schema.
    #[arg(long)]
    pub serve_binary: Option<std::path::PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=32).contains(&args.replicas),
        "--replicas must be between 1 and 32"
    );
    let mut private_pg = None;
    let database_url = match args.database.database_url.clone() {
        Some(url) => url,
        None => {
            let pg = tokio::task::spawn_blocking(PrivatePostgres::start).await??;
            let url = pg.url();
            private_pg = Some(pg);
            url
        }
    };
    // Migrate once, before any replica starts, as a deploy's migration job does.
    match &args.serve_binary {
        None => crate::fleet::prepare_database(&database_url).await?,
        Some(binary) => crate::fleet::prepare_database_with(binary, &database_url).await?,
    }

    let sims = Simulators::start(SimConfig::default()).await?;
    let spec = FleetSpec {
        binary: match &args.serve_binary {
            Some(b) => b.clone(),
            None => std::env::current_exe()?,
        },
        replicas: args.replicas,
        base_port: args.base_port,
        env: FleetSpec::local_env(&database_url, &sims),
        log_dir: args.log_dir.clone(),
    };
    let mut fleet = Fleet::start(spec).await?;
    let mut table = String::new();
    for r in fleet.replicas() {
        table.push_str(&format!(
            "\n  {:<10} grpc {}   metrics http://{}/metrics   pid {}",
            r.name,
            r.grpc,
            r.admin,
            r.pid().unwrap_or_default()
        ));
    }
    eprintln!(
        "\nDossier fleet: {} replicas on one PostgreSQL ({}).\n{table}\n\
         \n  Rails simulator deliveries: curl {}/_sim/deliveries\
         \n  Kill one:  kill -9 PID   (it is started again; its jobs are taken over when their lease lapses)\
         \n  Stop:      Ctrl-C (SIGTERM to every replica, then the simulators{})\n",
        args.replicas,
        dossier_store::redact_url(&database_url),
        sims.base_url(crate::sim::Upstream::Rails),
        if private_pg.is_some() {
            " and the private PostgreSQL"
        } else {
            ""
        },
    );
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            (i, status) = fleet.next_exit() => {
                let name = fleet.replicas()[i].name.clone();
                tracing::warn!(replica = name, ?status, "replica exited; starting it again");
                tokio::time::sleep(Duration::from_secs(1)).await;
                if let Err(e) = fleet.start_replica(i).await {
                    tracing::error!(replica = name, error = format!("{e:#}"), "replica did not start again");
                }
            }
        }
    }
    fleet.shutdown().await;
    sims.shutdown().await;
    if let Some(mut pg) = private_pg {
        tokio::task::spawn_blocking(move || pg.stop()).await?;
    }
    Ok(())
}
