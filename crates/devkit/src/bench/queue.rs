//! The fleet's queue scenarios of `dossier bench`, and what the replicas' processes cost:
//!
//! - delivery lag: decisions reach Rails while the fleet has a backlog of evaluations
//!   (deliveries never queue behind evaluations: crates/store/src/jobs.rs, `Lane`);
//! - recovery: a replica is SIGKILLed while it holds evaluations; how long until the
//!   last of them is decided by the others (job lease, fetch lease);
//! - a burst during which a replica is SIGKILLed: what the fetch leases it held cost;
//! - memory and CPU of the replica processes, read from /proc.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::future::join_all;
use tonic::transport::Channel;

use super::Row;
use crate::fleet::Fleet;
use crate::sim::{Simulators, Upstream};
use dossier_service::proto;
use dossier_store::Store;

/// The replicas' job lease in the fleet scenarios (`DOSSIER_JOB_LEASE`): a dead pod's
/// evaluations are taken over after it.
pub(super) const JOB_LEASE: Duration = Duration::from_secs(10);
/// Every vendor's latency while the queue scenarios run: slow enough that the fleet's
/// workers cannot keep up with 20 submissions a second.
const VENDOR_LATENCY_MS: u64 = 500;
/// Linux's USER_HZ, the unit of utime and stime in /proc/<pid>/stat (100 on every
/// architecture Dossier runs on; the kernel's own HZ is hidden behind it).
const TICKS_PER_SECOND: f64 = 100.0;

fn vendors_at(sims: &Simulators, latency_ms: u64) {
    for u in Upstream::HTTP {
        if u == Upstream::Rails {
            continue; // applications and deliveries: Rails stays quick
        }
        let mut b = sims.behaviour(u);
        b.latency_ms = latency_ms;
        b.quota_per_second = None;
        sims.set_behaviour(u, b);
    }
}

/// Submits applications `{tag}-{i}` for `i` in `range` by Rails id, round-robin over
/// `channels`, one every `interval` (zero: all at once).
async fn submit(
    channels: &[Channel],
    tag: &str,
    range: std::ops::Range<usize>,
    interval: Duration,
) -> anyhow::Result<()> {
    let mut tick = (!interval.is_zero()).then(|| tokio::time::interval(interval));
    let mut calls = Vec::new();
    for i in range {
        if let Some(tick) = tick.as_mut() {
            tick.tick().await;
        }
        let mut client = proto::underwriting_service_client::UnderwritingServiceClient::new(
            channels[i % channels.len()].clone(),
        );
        let request = super::fleet::submit_request(format!("{tag}-{i}"), format!("{tag}-{i}"));
        calls.push(tokio::spawn(async move {
            client.submit_application(request).await
        }));
    }
    for c in join_all(calls).await {
        c?.context("SubmitApplication failed")?;
    }
    Ok(())
}

/// Polls `look` every 100 ms until it returns Some, for at most `within`.
async fn wait_for<T, F, Fut>(within: Duration, what: &str, mut look: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let give_up = Instant::now() + within;
    loop {
        if let Some(found) = look().await? {
            return Ok(found);
        }
        anyhow::ensure!(Instant::now() < give_up, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn percentile(sorted: &[f64], p: usize) -> f64 {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// 300 applications at 20 a second while the vendors answer in 500 ms: evaluations
/// back up, and each decision's delivery is timed from its commit to Rails's
/// acknowledgement. Also reports the replicas' CPU per evaluation over the scenario.
pub(super) async fn delivery_lag(
    fleet: &Fleet,
    channels: &[Channel],
    sims: &Simulators,
    store: &Store,
) -> anyhow::Result<Vec<Row>> {
    const APPLICATIONS: usize = 300;
    let tag = format!("lag-{}", uuid::Uuid::new_v4().simple());
    vendors_at(sims, VENDOR_LATENCY_MS);
    let cpu_before = fleet_cpu_seconds(fleet);
    let started = Instant::now();
    let result = async {
        submit(channels, &tag, 0..APPLICATIONS, Duration::from_millis(50)).await?;
        let submitted_in = started.elapsed();
        let lags = wait_for(
            Duration::from_secs(240),
            "every decision delivered",
            || async {
                let rows = store.delivery_lags_ms(&format!("{tag}-")).await?;
                Ok(
                    (rows.len() == APPLICATIONS && rows.iter().all(Option::is_some)).then(|| {
                        let mut v: Vec<f64> = rows.into_iter().flatten().collect();
                        v.sort_by(f64::total_cmp);
                        v
                    }),
                )
            },
        )
        .await?;
        anyhow::Ok((submitted_in, lags))
    }
    .await;
    vendors_at(sims, 0);
    let (submitted_in, lags) = result?;
    let drained_in = started.elapsed();
    let cpu = fleet_cpu_seconds(fleet) - cpu_before;
    let (p50, p99) = (percentile(&lags, 50), percentile(&lags, 99));
    Ok(vec![
        Row {
            scenario:
                "delivery lag: decision committed → Rails acknowledged, evaluations backlogged"
                    .into(),
            measured: format!(
                "p50 {p50:.0} ms, p99 {p99:.0} ms, max {:.0} ms ({APPLICATIONS} applications submitted in {:.1} s, every vendor at {VENDOR_LATENCY_MS} ms; backlog drained after {:.1} s)",
                lags[lags.len() - 1],
                submitted_in.as_secs_f64(),
                drained_in.as_secs_f64(),
            ),
            target: "p99 ≤ 2 s whatever the backlog",
            timed: true,
            holds: p99 <= 2000.0,
        },
        Row {
            scenario: "CPU: replica processes, per 1,000 cold evaluations".into(),
            measured: format!(
                "{:.1} CPU-s per 1,000 ({cpu:.1} CPU-s for {APPLICATIONS} submitted, evaluated and delivered)",
                cpu / APPLICATIONS as f64 * 1000.0
            ),
            target: "reported",
            timed: false,
            holds: true,
        },
    ])
}

/// 60 applications at once while the vendors answer in 500 ms; once replica 0 holds
/// evaluations, it is SIGKILLed. How long from the kill until the last evaluation it
/// held is decided by another replica. Replica 0 stays down.
pub(super) async fn recovery(
    fleet: &mut Fleet,
    channels: &[Channel],
    sims: &Simulators,
    store: &Store,
) -> anyhow::Result<Row> {
    const APPLICATIONS: usize = 60;
    let tag = format!("kill-{}", uuid::Uuid::new_v4().simple());
    let pid = fleet.replicas()[0]
        .pid()
        .context("replica 0 is not running")?;
    vendors_at(sims, VENDOR_LATENCY_MS);
    let result = async {
        submit(channels, &tag, 0..APPLICATIONS, Duration::ZERO).await?;
        let held = wait_for(
            Duration::from_secs(30),
            "replica 0 holds evaluations",
            || async {
                let held = store.applications_held_by(pid).await?;
                Ok((!held.is_empty()).then_some(held))
            },
        )
        .await?;
        let killed_at = chrono::Utc::now();
        fleet.kill(0).await?;
        let last = wait_for(
            Duration::from_secs(120),
            "the dead replica's work decided",
            || async {
                let (decided, last) = store.decided_of(&held).await?;
                Ok((decided == held.len() as i64).then_some(last).flatten())
            },
        )
        .await?;
        anyhow::Ok((held.len(), (last - killed_at).to_std().unwrap_or_default()))
    }
    .await;
    vendors_at(sims, 0);
    let (held, took) = result?;
    let bound = JOB_LEASE + Duration::from_secs(5);
    Ok(Row {
        scenario: "recovery: a replica SIGKILLed while it holds evaluations".into(),
        measured: format!(
            "the last of its {held} evaluations decided {:.1} s after the kill (job lease {} s, fetch lease {} s)",
            took.as_secs_f64(),
            JOB_LEASE.as_secs(),
            dossier_upstream::FETCH_LEASE.as_secs(),
        ),
        target: "≤ job lease + 5 s",
        timed: true,
        holds: took <= bound,
    })
}

/// 1,000 concurrent `GetPropertyProfile` calls over 50 new addresses, round-robin,
/// with the vendor answering in 300 ms; once the vendor has some of the requests,
/// replica `victim` is SIGKILLed. Its unfilled fetch leases lapse and another pod asks
/// again: at most one extra vendor request per lease it held. Calls routed to it fail
/// (a caller would retry them on another pod).
pub(super) async fn burst_with_a_kill(
    fleet: &mut Fleet,
    channels: &[Channel],
    sims: &Simulators,
    store: &Store,
    victim: usize,
) -> anyhow::Result<Row> {
    const KEYS: u64 = 50;
    let pid = fleet.replicas()[victim]
        .pid()
        .context("the victim replica is not running")?;
    sims.reset_stats(Upstream::PropertyRecords);
    let mut b = sims.behaviour(Upstream::PropertyRecords);
    b.latency_ms = 300;
    sims.set_behaviour(Upstream::PropertyRecords, b.clone());
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let calls: Vec<_> = (0..1000)
        .map(|i| {
            let mut c = proto::data_service_client::DataServiceClient::new(
                channels[i % channels.len()].clone(),
            );
            let line1 = format!("{} Kill {tag} Ave", i as u64 % KEYS + 1);
            tokio::spawn(async move {
                let mut r = tonic::Request::new(proto::GetPropertyProfileRequest {
                    address: Some(super::protection::address(line1)),
                    ..Default::default()
                });
                r.set_timeout(Duration::from_secs(30));
                c.get_property_profile(r).await.is_ok()
            })
        })
        .collect();
    let killed = async {
        wait_for(
            Duration::from_secs(30),
            "the vendor to be asked",
            || async { Ok((sims.stats(Upstream::PropertyRecords).total() >= 10).then_some(())) },
        )
        .await?;
        let held = store.fetch_leases_held_by(pid).await?;
        fleet.kill(victim).await?;
        anyhow::Ok(held)
    }
    .await;
    let results = join_all(calls).await;
    b.latency_ms = 0;
    sims.set_behaviour(Upstream::PropertyRecords, b);
    let held = killed? as u64;
    let failed = results.iter().filter(|r| !matches!(r, Ok(true))).count();
    let stats = sims.stats(Upstream::PropertyRecords);
    let (requests, refused) = (stats.total(), stats.refused);
    let extra = requests.saturating_sub(KEYS);
    Ok(Row {
        scenario: "fleet burst with a replica SIGKILLed in the middle".into(),
        measured: format!(
            "{requests} upstream requests for {KEYS} properties (amplification {:.2}): {extra} extra, the killed replica held {held} unfilled fetch lease(s); {refused} × 429; {failed} failed calls (routed to the killed replica)",
            requests as f64 / KEYS as f64
        ),
        target: "extra requests ≤ the leases the killed replica held, 0 × 429",
        timed: false,
        holds: extra <= held && refused == 0,
    })
}

/// The replicas' resident memory now, and its peak so far, in MiB: (largest current,
/// largest peak).
pub(super) fn fleet_memory_mib(fleet: &Fleet) -> (f64, f64) {
    let mut now: f64 = 0.0;
    let mut peak: f64 = 0.0;
    for pid in fleet.replicas().iter().filter_map(|r| r.pid()) {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kib = |field: &str| -> f64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0.0)
        };
        now = now.max(kib("VmRSS:") / 1024.0);
        peak = peak.max(kib("VmHWM:") / 1024.0);
    }
    (now, peak)
}

/// CPU time (user + system) the running replicas have used, in seconds.
fn fleet_cpu_seconds(fleet: &Fleet) -> f64 {
    fleet
        .replicas()
        .iter()
        .filter_map(|r| r.pid())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // Fields after the command name (which may hold spaces), from field 3 on:
            // utime and stime are fields 14 and 15.
            let rest = &stat[stat.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let ticks: f64 =
                fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
            Some(ticks / TICKS_PER_SECOND)
        })
        .sum()
}
