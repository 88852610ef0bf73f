//! The upstream-protection scenarios of `dossier bench`, against one server or a fleet
//! (one channel per server): a burst of identical questions, the same burst straight to
//! the vendor, and callers at 10× the vendor's quota.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::future::join_all;
use tonic::transport::Channel;

use super::Row;
use crate::sim::{Simulators, Upstream};
use dossier_service::proto;

pub(super) fn address(line1: String) -> proto::Address {
    proto::Address {
        line1,
        line2: String::new(),
        city: "Sacramento".into(),
        state: "CA".into(),
        postal_code: "95814".into(),
    }
}

/// 1,000 concurrent calls over 50 addresses, round-robin over `channels` (one per server).
pub(super) async fn burst(
    channels: &[Channel],
    sims: &Simulators,
    prefix: &str,
) -> anyhow::Result<Vec<Row>> {
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
        timed: false,
        holds: requests == 50 && refused == 0 && failures == 0,
    }])
}

pub(super) async fn status_quo(sims: &Simulators) -> anyhow::Result<Row> {
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
        timed: false,
        holds: true,
    })
}

/// Callers at 10× the quota, round-robin over `channels`.
pub(super) async fn overload(
    channels: &[Channel],
    sims: &Simulators,
    quota: u32,
    duration: Duration,
    prefix: &str,
) -> anyhow::Result<Vec<Row>> {
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
    let (ok, exhausted, late) = (
        ok.load(Ordering::Relaxed),
        exhausted.load(Ordering::Relaxed),
        other.load(Ordering::Relaxed),
    );
    // Every call asks about its own address, so a vendor request serves at most one
    // call: the OK calls are the paid requests whose answer reached a caller in time.
    let served = ok as f64 / requests.max(1) as f64;
    let late_share = late as f64 / n.max(1) as f64;
    Ok(vec![
        Row {
            scenario: format!("{prefix}overload: callers at 10× the quota"),
            measured: format!(
                "{n} calls in {elapsed:.1} s at {rate}/s: {requests} upstream requests (ceiling {ceiling}), {refused} × 429"
            ),
            target: "requests ≤ quota × time + burst, 0 × 429",
            timed: false,
            holds: requests <= ceiling && refused == 0,
        },
        Row {
            scenario: format!("{prefix}overload goodput: the same calls, as callers saw them"),
            measured: format!(
                "{ok} OK, {exhausted} RESOURCE_EXHAUSTED, {late} past their 2 s deadline ({:.1} %); {:.1} % of upstream requests served a caller in time",
                late_share * 100.0,
                served * 100.0,
            ),
            target: "≤ 1 % past deadline, ≥ 95 % of requests serve a caller in time",
            timed: true,
            holds: late_share <= 0.01 && served >= 0.95,
        },
    ])
}
