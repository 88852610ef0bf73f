//! `dossier bench`: the upstream-protection and fleet benchmark. Starts its own servers,
//! simulators and (unless DATABASE_URL is set) a private PostgreSQL, runs each scenario
//! and prints the figures as a Markdown table for docs/benchmarks.md. Figures are counts
//! and ratios measured within one run, so they hold on any machine; none of this runs in
//! `cargo test`.

mod accept;
mod cost;
mod fleet;
mod h2load;
mod latency;
mod monitoring;
mod pg_cost;
mod protection;
mod queue;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use tonic::transport::Channel;

use crate::devdb::PrivatePostgres;
use crate::sim::{SimConfig, Simulators, Upstream};
use dossier_service::config::ServeArgs;
use dossier_service::server::Server;
use dossier_upstream::{UpstreamPolicy, UpstreamSettings};

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Length of the overload scenario.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub overload_for: Duration,
    /// The quota (requests per second) of the upstream in the overload scenario.
    #[arg(long, default_value_t = 20)]
    pub quota: u32,
    /// Length of each throughput measurement in the hot-path scenario.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub hot_for: Duration,
    /// Concurrent callers in the hot-path scenario.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Replicas (real processes) in the fleet scenarios.
    #[arg(long, default_value_t = 3)]
    pub replicas: usize,
    /// Length of the fleet's submission-throughput scenario.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub submit_for: Duration,
    /// Which scenarios to run: `all`, `single` (one server), `fleet`, or only
    /// `monitoring` (the sanctions monitoring job over 10,000 approved applications) or
    /// `cost` (vendor cost of the seeded mix, parallel and frugal, and the valuation
    /// waterfall with the primary AVM vendor failing).
    #[arg(long, default_value = "all", value_parser = ["all", "single", "fleet", "monitoring", "cost"])]
    pub only: String,
    /// A short run that judges counts only (amplification, 429s, requests within the
    /// quota, decisions made and delivered), not timings: CI runs it so the bench cannot
    /// rot. Overrides the lengths above.
    #[arg(long)]
    pub smoke: bool,
}

impl BenchArgs {
    /// The lengths of a smoke run.
    fn smoke(self) -> BenchArgs {
        BenchArgs {
            overload_for: Duration::from_secs(4),
            hot_for: Duration::from_secs(1),
            submit_for: Duration::from_secs(2),
            ..self
        }
    }
}

struct Row {
    scenario: String,
    measured: String,
    target: &'static str,
    /// A timing target (latency, throughput, a duration): not judged in a smoke run,
    /// whose lengths are too short and whose machine is shared.
    timed: bool,
    holds: bool,
}

impl Row {
    fn verdict(&self, smoke: bool) -> &'static str {
        match (self.holds, smoke && self.timed) {
            (_, true) => "not judged (smoke)",
            (true, false) => "yes",
            (false, false) => "**NO**",
        }
    }

    fn fails(&self, smoke: bool) -> bool {
        !(self.holds || smoke && self.timed)
    }
}

/// The machine, date and build a run's figures belong to.
async fn print_conditions(database_url: &str) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let postgres = async {
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect(database_url).await.ok()?;
        sqlx::query_scalar::<_, String>("SHOW server_version")
            .fetch_one(&mut conn)
            .await
            .ok()
    }
    .await
    .unwrap_or_else(|| "unknown".into());
    println!(
        "{}, {cores} cores, {memory_gib:.0} GiB, PostgreSQL {postgres}, {} build of dossier {}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        env!("CARGO_PKG_VERSION"),
    );
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let smoke = args.smoke;
    let args = if smoke { args.smoke() } else { args };
    let mut private_pg = None;
    let database_url = match std::env::var("DATABASE_URL") {
        Ok(url) => url,
        Err(_) => {
            let pg = tokio::task::spawn_blocking(PrivatePostgres::start).await??;
            let url = pg.url();
            private_pg = Some(pg);
            url
        }
    };
    print_conditions(&database_url).await;
    let sims = Simulators::start(SimConfig::default()).await?;
    let mut rows = Vec::new();
    if args.only == "monitoring" {
        rows.push(monitoring::sanctions_monitoring(&database_url, &sims).await?);
    } else if args.only != "fleet" && args.only != "cost" {
        rows.extend(single_server(&args, &database_url, &sims).await?);
    }
    if matches!(args.only.as_str(), "all" | "single" | "cost") {
        println!("running: cost (seeded mix, parallel and frugal; valuation waterfall)");
        rows.extend(cost::cost(&database_url, &sims).await?);
    }
    if args.only == "all" || args.only == "fleet" {
        // Fresh simulators: the single-server scenarios changed their behaviour.
        let sims = Simulators::start(SimConfig::default()).await?;
        let bench = fleet::FleetBench {
            admin_url: &database_url,
            sims: &sims,
            replicas: args.replicas,
            quota: args.quota,
            overload_for: args.overload_for,
            submit_for: args.submit_for,
            hot_for: args.hot_for,
        };
        let fleet_rows = bench.run().await;
        sims.shutdown().await;
        rows.extend(fleet_rows?);
    }
    sims.shutdown().await;
    drop(private_pg);

    println!("\n| scenario | measured | target | holds |\n|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} |",
            r.scenario,
            r.measured,
            r.target,
            r.verdict(smoke)
        );
    }
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| r.fails(smoke))
        .map(|r| r.scenario.as_str())
        .collect();
    anyhow::ensure!(
        failed.is_empty(),
        "{} target(s) do not hold: {}",
        failed.len(),
        failed.join("; ")
    );
    Ok(())
}

/// The scenarios against in-process servers on one fresh database.
async fn single_server(
    args: &BenchArgs,
    admin_url: &str,
    sims: &Simulators,
) -> anyhow::Result<Vec<Row>> {
    // A fresh database per run: the L2 cache must start cold.
    let db_url = fresh_database(admin_url).await?;
    // Two servers on one database: one whose property_records quota is tight (burst,
    // overload), one with generous quotas, so that the latency scenarios measure
    // Dossier and not a deliberately tight rate limit.
    let (tight, stop_tight, tight_handle) =
        start_server(&db_url, bench_settings(sims, Some(args.quota))).await?;
    let (channel, stop, handle) = start_server(&db_url, bench_settings(sims, None)).await?;
    quota_on_simulator(sims, Some(args.quota));

    let mut rows = Vec::new();
    println!("running: burst");
    rows.extend(protection::burst(std::slice::from_ref(&tight), sims, "").await?);
    println!("running: status quo");
    rows.push(protection::status_quo(sims).await?);
    println!("running: overload ({:?})", args.overload_for);
    rows.extend(
        protection::overload(
            std::slice::from_ref(&tight),
            sims,
            args.quota,
            args.overload_for,
            "",
        )
        .await?,
    );
    quota_on_simulator(sims, None);
    println!("running: fan-out");
    rows.extend(latency::fan_out(&channel, sims, &db_url).await?);
    println!("running: hot path");
    rows.push(latency::hot_path(&channel, args.hot_for, args.concurrency).await?);
    println!("running: sanctions monitoring ({} applications)", 10_000);
    rows.push(monitoring::sanctions_monitoring(admin_url, sims).await?);

    for (stop, handle) in [(stop, handle), (stop_tight, tight_handle)] {
        let _ = stop.send(());
        let _ = handle.await;
    }
    // The run's database is throw-away: do not leave one behind per run.
    if let Err(e) = drop_database(admin_url, &db_url).await {
        tracing::warn!(error = %e, "could not drop the benchmark database");
    }
    Ok(rows)
}

pub(crate) async fn drop_database(admin_url: &str, db_url: &str) -> anyhow::Result<()> {
    use sqlx::{Connection, Executor};
    let name = reqwest::Url::parse(db_url)?
        .path()
        .trim_start_matches('/')
        .to_owned();
    // Only names this module made: never interpolate anything else into SQL.
    anyhow::ensure!(
        name.starts_with("dossier_bench_")
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    );
    let mut conn = sqlx::PgConnection::connect(admin_url).await?;
    conn.execute(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .await?;
    Ok(())
}

pub(crate) async fn fresh_database(admin_url: &str) -> anyhow::Result<String> {
    use sqlx::{Connection, Executor};
    let name = format!("dossier_bench_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(admin_url).await?;
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await?;
    let mut url = reqwest::Url::parse(admin_url)?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

pub(crate) type Running = (
    Channel,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
);

pub(crate) async fn start_server(
    db_url: &str,
    settings: UpstreamSettings,
) -> anyhow::Result<Running> {
    start_server_with_policy(db_url, settings, None).await
}

/// An in-process server on loopback with the given upstreams and policy file.
pub(crate) async fn start_server_with_policy(
    db_url: &str,
    settings: UpstreamSettings,
    policy_file: Option<std::path::PathBuf>,
) -> anyhow::Result<Running> {
    let serve = ServeArgs {
        migrate: true,
        db_max_connections: 20,
        policy_file,
        shutdown_grace: Duration::from_secs(5),
        max_connection_age: Duration::from_secs(3600),
        ..ServeArgs::loopback(db_url)
    };
    let server = Server::build(crate::harness::dev_config(serve, Some(settings))?).await?;
    let addr = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(server.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await
        .context("connect to the bench server")?;
    Ok((channel, stop, handle))
}

fn quota_on_simulator(sims: &Simulators, quota: Option<u32>) {
    let mut b = sims.behaviour(Upstream::PropertyRecords);
    b.quota_per_second = quota.map(f64::from);
    sims.set_behaviour(Upstream::PropertyRecords, b);
}

/// Every upstream generous, except property_records when `quota` is given.
pub(crate) fn bench_settings(sims: &Simulators, quota: Option<u32>) -> UpstreamSettings {
    let mut policies = BTreeMap::new();
    for upstream in Upstream::HTTP {
        let mut p = UpstreamPolicy::default_for(upstream);
        p.base_url = Some(sims.base_url(upstream));
        p.rate_per_second = 10_000.0;
        p.burst = 10_000;
        p.concurrency = 256;
        if let (Some(quota), Upstream::PropertyRecords) = (quota, upstream) {
            // A little under the vendor's quota: requests permitted 1/quota apart can
            // arrive closer together (network and scheduling jitter), and a vendor
            // counting on arrival would refuse them. Operators should do the same.
            p.rate_per_second = f64::from(quota) * 0.95;
            p.burst = quota.saturating_sub(1).max(1);
        }
        policies.insert(upstream, p);
    }
    UpstreamSettings {
        policies,
        credentials: BTreeMap::from([(Upstream::Rails, sims.rails_token().to_owned())]),
        waterfalls: Default::default(),
    }
}
