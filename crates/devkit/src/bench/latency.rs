//! The latency scenarios of `dossier bench`, against one server with generous quotas:
//! cold evaluations' fan-out over every upstream, and the cached hot path against the
//! server's cheapest call.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::future::join_all;
use tonic::transport::Channel;

use super::Row;
use super::protection::address;
use crate::sim::{Simulators, Upstream};
use dossier_service::proto;

/// Cold evaluations per latency measurement.
const EVALUATIONS: usize = 40;

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
    for i in 0..EVALUATIONS {
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

pub(super) async fn fan_out(
    channel: &Channel,
    sims: &Simulators,
    db_url: &str,
) -> anyhow::Result<Vec<Row>> {
    const LATENCY_MS: u64 = 50;
    let (base50, _) = evaluate_latencies(channel, sims, 0, "fanout-0ms").await?;
    let counting = super::pg_cost::start(db_url).await;
    let (p50, p90) = evaluate_latencies(channel, sims, LATENCY_MS, "fanout-50ms").await?;
    let cost = match counting {
        Some((mut conn, start)) => super::pg_cost::since(&mut conn, &start).await,
        None => None,
    };
    for u in Upstream::HTTP {
        let mut b = sims.behaviour(u);
        b.latency_ms = 0;
        sims.set_behaviour(u, b);
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let over = ms(p50) - LATENCY_MS as f64;
    let over90 = ms(p90) - LATENCY_MS as f64;
    Ok(vec![
        Row {
            scenario: "fan-out: cold EvaluateApplication, every upstream at 50 ms".into(),
            measured: format!(
                "p50 {:.1} ms = slowest upstream + {over:.1} ms, p90 + {over90:.1} ms; with instant upstreams p50 {:.1} ms",
                ms(p50),
                ms(base50)
            ),
            target: "p50 within 5 ms of the slowest upstream",
            timed: true,
            holds: over <= 5.0,
        },
        Row {
            scenario: "fan-out: PostgreSQL per cold evaluation (EvaluateApplication, inline)"
                .into(),
            measured: match &cost {
                Some(c) => format!(
                    "{} (the idle workers' polling included); most frequent: {}",
                    c.per(EVALUATIONS, "evaluation"),
                    c.breakdown(EVALUATIONS, 8)
                ),
                None => "pg_stat_statements not loaded in this PostgreSQL".into(),
            },
            target: "reported",
            timed: false,
            holds: true,
        },
    ])
}

pub(super) async fn hot_path(
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
        target: "≥ 0.90×",
        timed: true,
        holds: ratio >= 0.9,
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
