//! `dossier bench`: the upstream-protection and fleet benchmark. Starts its own servers,
//! simulators and (unless DATABASE_URL is set) a private PostgreSQL, runs each scenario
//! and prints the figures as a Markdown table for docs/benchmarks.md. Figures are counts
//! and ratios measured within one run, so they hold on any machine; none of this runs in
//! `cargo test`.

mod cost;
mod fleet;
mod monitoring;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::future::join_all;
use tonic::transport::Channel;

use crate::devdb::PrivatePostgres;
use crate::sim::{SimConfig, Simulators, Upstream};
use dossier_service::config::ServeArgs;
use dossier_service::proto;
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
}

struct Row {
    scenario: String,
    measured: String,
    target: &'static str,
    holds: bool,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
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
            if r.holds { "yes" } else { "**NO**" }
        );
    }
    if rows.iter().all(|r| r.holds) {
        Ok(())
    } else {
        anyhow::bail!("some targets do not hold")
    }
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
    rows.extend(burst(std::slice::from_ref(&tight), sims, "").await?);
    println!("running: status quo");
    rows.push(status_quo(sims).await?);
    println!("running: overload ({:?})", args.overload_for);
    rows.push(
        overload(
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
    rows.push(fan_out(&channel, sims).await?);
    println!("running: hot path");
    rows.push(hot_path(&channel, args.hot_for, args.concurrency).await?);
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

fn address(line1: String) -> proto::Address {
    proto::Address {
        line1,
        line2: String::new(),
        city: "Sacramento".into(),
        state: "CA".into(),
        postal_code: "95814".into(),
    }
}

/// 1,000 concurrent calls over 50 addresses, round-robin over `channels` (one per server).
async fn burst(channels: &[Channel], sims: &Simulators, prefix: &str) -> anyhow::Result<Vec<Row>> {
    sims.reset_stats(Upstream::PropertyRecords);
    let calls = (0..1000).map(|i| {
        let mut c = proto::data_service_client::DataServiceClient::new(
            channels[i % channels.len()].clone(),
        );
        async move {
            let mut r = tonic::Request::new(proto::GetPropertyProfileRequest {
                address: Some(address(format!("{} Burst Ave", i % 50 + 1))),
                ..Default::default()
            });
            r.set_timeout(Duration::from_secs(30));
            c.get_property_profile(r).await
        }
    });
    let results = join_all(calls).await;
    let failures = results.iter().filter(|r| r.is_err()).count();
    // Every request the vendor received, and the 429s among them (over its quota).
    let stats = sims.stats(Upstream::PropertyRecords);
    let (requests, refused) = (stats.total(), stats.refused);
    Ok(vec![Row {
        scenario: format!("{prefix}burst: 1,000 concurrent GetPropertyProfile over 50 properties"),
        measured: format!(
            "{requests} upstream requests (amplification {:.2}), {refused} × 429, {failures} failed calls",
            requests as f64 / 50.0
        ),
        target: "50 requests (1.00), 0 × 429",
        holds: requests == 50 && refused == 0 && failures == 0,
    }])
}

async fn status_quo(sims: &Simulators) -> anyhow::Result<Row> {
    // The same burst sent straight to the simulator, as callers did before Dossier.
    sims.set_behaviour(Upstream::PropertyRecords, crate::sim::Behaviour::default());
    sims.reset_stats(Upstream::PropertyRecords);
    let http = reqwest::Client::builder().no_proxy().build()?;
    let base = sims.base_url(Upstream::PropertyRecords);
    let calls = (0..1000).map(|i| {
        let http = http.clone();
        let url = format!("{base}/v1/properties");
        async move {
            http.get(url)
                .query(&[
                    ("line1", format!("{} Burst Ave", i % 50 + 1).as_str()),
                    ("city", "Sacramento"),
                    ("state", "CA"),
                    ("postal_code", "95814"),
                ])
                .send()
                .await
        }
    });
    join_all(calls).await;
    let requests = sims.stats(Upstream::PropertyRecords).total();
    Ok(Row {
        scenario: "status quo: the same burst straight to the vendor".into(),
        measured: format!(
            "{requests} upstream requests (amplification {:.2})",
            requests as f64 / 50.0
        ),
        target: "for comparison",
        holds: true,
    })
}

/// Callers at 10× the quota, round-robin over `channels`.
async fn overload(
    channels: &[Channel],
    sims: &Simulators,
    quota: u32,
    duration: Duration,
    prefix: &str,
) -> anyhow::Result<Row> {
    sims.set_behaviour(
        Upstream::PropertyRecords,
        crate::sim::Behaviour {
            quota_per_second: Some(f64::from(quota)),
            ..Default::default()
        },
    );
    sims.reset_stats(Upstream::PropertyRecords);
    let rate = quota * 10;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let started = Instant::now();
    let ok = Arc::new(AtomicU64::new(0));
    let exhausted = Arc::new(AtomicU64::new(0));
    let other = Arc::new(AtomicU64::new(0));
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    let mut n = 0u64;
    while started.elapsed() < duration {
        tick.tick().await;
        n += 1;
        let mut c = proto::data_service_client::DataServiceClient::new(
            channels[n as usize % channels.len()].clone(),
        );
        let (ok, exhausted, other) = (ok.clone(), exhausted.clone(), other.clone());
        tasks.push(tokio::spawn(async move {
            let mut r = tonic::Request::new(proto::GetPropertyProfileRequest {
                address: Some(address(format!("{n} Overload Rd"))),
                ..Default::default()
            });
            r.set_timeout(Duration::from_secs(2));
            match c.get_property_profile(r).await {
                Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                    exhausted.fetch_add(1, Ordering::Relaxed)
                }
                Err(s) => {
                    // Mostly the client's own 2 s timer (tonic reports it as CANCELLED,
                    // "Timeout expired"): a permit came in time, the answer did not.
                    tracing::debug!(code = ?s.code(), message = s.message(), "overload call failed");
                    other.fetch_add(1, Ordering::Relaxed)
                }
            };
        }));
    }
    join_all(tasks).await;
    let elapsed = started.elapsed().as_secs_f64();
    // Every request the vendor received, and the 429s among them (over its quota).
    let stats = sims.stats(Upstream::PropertyRecords);
    let (requests, refused) = (stats.total(), stats.refused);
    let ceiling = (f64::from(quota) * elapsed).ceil() as u64 + u64::from(quota);
    Ok(Row {
        scenario: format!("{prefix}overload: callers at 10× the quota"),
        measured: format!(
            "{n} calls in {elapsed:.1} s at {rate}/s: {requests} upstream requests (ceiling {ceiling}), {refused} × 429; callers: {} OK, {} RESOURCE_EXHAUSTED, {} past their 2 s deadline",
            ok.load(Ordering::Relaxed),
            exhausted.load(Ordering::Relaxed),
            other.load(Ordering::Relaxed)
        ),
        target: "requests ≤ quota × time + burst, 0 × 429",
        holds: requests <= ceiling && refused == 0,
    })
}

/// p50 and p90 of cold EvaluateApplication calls with every upstream at `latency_ms`.
async fn evaluate_latencies(
    channel: &Channel,
    sims: &Simulators,
    latency_ms: u64,
    tag: &str,
) -> anyhow::Result<(Duration, Duration)> {
    for u in Upstream::HTTP {
        let mut b = sims.behaviour(u);
        b.latency_ms = latency_ms;
        b.quota_per_second = None;
        sims.set_behaviour(u, b);
    }
    let mut client =
        proto::underwriting_service_client::UnderwritingServiceClient::new(channel.clone());
    let mut latencies = Vec::new();
    for i in 0..40 {
        // Distinct applications, so every upstream answer is cold.
        let app = crate::sim::rails::application_for(&format!("bench-{tag}-{i}"))
            .context("the Rails simulator builds applications")?;
        let application = crate::rails_request::to_proto(&app);
        let mut r = tonic::Request::new(proto::EvaluateApplicationRequest {
            idempotency_key: format!("bench-{tag}-{i}-{}", uuid::Uuid::new_v4()),
            source: Some(proto::evaluate_application_request::Source::Application(
                application,
            )),
        });
        r.set_timeout(Duration::from_secs(30));
        let started = Instant::now();
        client.evaluate_application(r).await?;
        latencies.push(started.elapsed());
    }
    latencies.sort();
    Ok((
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 9 / 10],
    ))
}

async fn fan_out(channel: &Channel, sims: &Simulators) -> anyhow::Result<Row> {
    const LATENCY_MS: u64 = 50;
    let (base50, _) = evaluate_latencies(channel, sims, 0, "fanout-0ms").await?;
    let (p50, p90) = evaluate_latencies(channel, sims, LATENCY_MS, "fanout-50ms").await?;
    for u in Upstream::HTTP {
        let mut b = sims.behaviour(u);
        b.latency_ms = 0;
        sims.set_behaviour(u, b);
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let over = ms(p50) - LATENCY_MS as f64;
    Ok(Row {
        scenario: "fan-out: cold EvaluateApplication, every upstream at 50 ms".into(),
        measured: format!(
            "p50 {:.1} ms = slowest upstream + {over:.1} ms (p90 {:.1} ms; with instant upstreams p50 {:.1} ms)",
            ms(p50),
            ms(p90),
            ms(base50)
        ),
        target: "p50 within 10 ms of the slowest upstream",
        holds: over <= 10.0,
    })
}

async fn hot_path(
    channel: &Channel,
    duration: Duration,
    concurrency: usize,
) -> anyhow::Result<Row> {
    let data = proto::data_service_client::DataServiceClient::new(channel.clone());
    let health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    // Warm the cache.
    let warm = proto::GetPropertyProfileRequest {
        address: Some(address("1 Hot Path Way".into())),
        ..Default::default()
    };
    data.clone().get_property_profile(warm.clone()).await?;

    let (d, w) = (data.clone(), warm.clone());
    let profile_rate = throughput(duration, concurrency, move || {
        let (mut c, warm) = (d.clone(), w.clone());
        let req = warm.clone();
        async move { c.get_property_profile(req).await.is_ok() }
    })
    .await;
    let health_rate = throughput(duration, concurrency, move || {
        let mut c = health.clone();
        async move {
            c.check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .is_ok()
        }
    })
    .await;
    let ratio = profile_rate / health_rate;
    Ok(Row {
        scenario: "hot path: cached GetPropertyProfile vs grpc.health.v1 Check".into(),
        measured: format!("{profile_rate:.0}/s vs {health_rate:.0}/s = {ratio:.2}×"),
        target: "≥ 0.70×",
        holds: ratio >= 0.7,
    })
}

async fn throughput<F, Fut>(duration: Duration, concurrency: usize, call: F) -> f64
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + duration;
    let workers = (0..concurrency).map(|_| {
        let call = call.clone();
        let done = done.clone();
        tokio::spawn(async move {
            while Instant::now() < until {
                if call().await {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    });
    let started = Instant::now();
    join_all(workers).await;
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}
