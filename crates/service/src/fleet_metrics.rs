//! Gauges that no request moves: the fleet's queue, outbox and review queue as
//! PostgreSQL holds them, and this pod's database pool, sanctions list and build.
//!
//! Fleet-wide figures come from a few cheap statements (`dossier_store::stats`) that
//! every pod runs on an interval (`--fleet-metrics-interval`, 15 s by default). So every
//! pod reports the same fleet value: aggregate them with `max`, never `sum`
//! (docs/metrics.md). Asking the database rather than counting in memory is what makes
//! them true for the fleet: a job queued by one pod and claimed by another, or a pod
//! that died holding a lease, is seen the same way by all of them.
//!
//! The pod's own gauges are refreshed every second: they cost no query.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dossier_core::domain::Decision;
use dossier_store::Store;
use dossier_store::jobs::{JobKind, JobState};
use dossier_upstream::sanctions::SanctionsList;
use tokio_util::sync::CancellationToken;

/// How often the fleet-wide figures are read, unless configured.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);
/// How often this pod's own gauges are refreshed.
const LOCAL_INTERVAL: Duration = Duration::from_secs(1);
/// The probe gives up on a pooled connection after this; the pool's own acquire
/// timeout is 5 s, and a longer wait would only delay the other gauges.
const PROBE_LIMIT: Duration = Duration::from_secs(5);

/// Longest a fleet sample may take before it is given up.
const FLEET_LIMIT: Duration = Duration::from_secs(10);

/// The job states reported: `done` only grows and is not counted.
const REPORTED_STATES: [JobState; 3] = [JobState::Queued, JobState::Running, JobState::Dead];
/// The kinds that deliver to Rails (the outbox).
const DELIVERIES: [JobKind; 5] = [
    JobKind::Deliver,
    JobKind::DeliverReview,
    JobKind::DeliverFunding,
    JobKind::DeliverFundingReview,
    JobKind::DeliverSanctionsAlert,
];

/// What the sampler reads.
pub struct Sampled {
    pub store: Store,
    pub sanctions: Arc<SanctionsList>,
    pub policy_version: String,
    pub policy_hash: String,
}

impl Sampled {
    pub fn of(underwriter: &crate::underwriting::Underwriter) -> Sampled {
        Sampled {
            store: underwriter.store.clone(),
            sanctions: underwriter.sanctions.clone(),
            policy_version: underwriter.policy.policy.version.clone(),
            policy_hash: underwriter.policy.hash.clone(),
        }
    }
}

/// Runs until `stopping` is cancelled: the fleet figures every `interval` (the first at
/// once), this pod's every second.
pub async fn run(sampled: Sampled, interval: Duration, stopping: CancellationToken) {
    publish_constants(&sampled);
    let mut fleet = tokio::time::interval(interval);
    let mut local = tokio::time::interval(LOCAL_INTERVAL);
    // After a stall (a slow database), one sample, not a burst of catch-up samples.
    fleet.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    local.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let fleet_due = tokio::select! {
            _ = stopping.cancelled() => return,
            _ = fleet.tick() => true,
            _ = local.tick() => false,
        };
        // A pod cut off from PostgreSQL would wait on its statements until TCP gives up:
        // the sample is bounded, so the pod's own gauges keep moving, and abandoned at
        // shutdown, which waits for this task. Both statements are plain reads.
        let sample = async {
            if fleet_due {
                if tokio::time::timeout(FLEET_LIMIT, sample_fleet(&sampled.store))
                    .await
                    .is_err()
                {
                    tracing::warn!(limit = ?FLEET_LIMIT, "reading the fleet-wide metrics timed out; they keep their last values");
                }
            } else {
                sample_pod(&sampled).await;
            }
        };
        tokio::select! {
            _ = stopping.cancelled() => return,
            _ = sample => {}
        }
    }
}

/// Series whose value never changes, and the counters' label sets known in advance, at
/// zero: a rate over a counter that appears with its first increment misses that
/// increment, and a dashboard shows "no data" rather than 0.
fn publish_constants(s: &Sampled) {
    metrics::gauge!("dossier_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    metrics::gauge!("dossier_policy_info", "version" => s.policy_version.clone(), "hash" => s.policy_hash.clone())
        .set(1.0);
    for d in [Decision::Approved, Decision::Declined, Decision::Refer] {
        metrics::counter!("dossier_decisions_total", "decision" => d.as_str()).increment(0);
    }
    for outcome in ["approve", "decline"] {
        metrics::counter!("dossier_reviews_total", "outcome" => outcome).increment(0);
    }
}

async fn sample_fleet(store: &Store) {
    let (groups, review) = tokio::join!(store.job_groups(), store.review_queue_stats());
    let groups = match groups {
        Ok(groups) => groups,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the job queue for the metrics; they keep their last values");
            return;
        }
    };
    for kind in JobKind::ALL {
        let of_kind = || groups.iter().filter(move |g| g.kind == kind);
        for state in REPORTED_STATES {
            let jobs: i64 = of_kind().filter(|g| g.state == state).map(|g| g.jobs).sum();
            metrics::gauge!("dossier_queue_jobs", "kind" => kind.as_str(), "state" => state.as_str())
                .set(jobs as f64);
        }
        let oldest = |f: fn(&dossier_store::JobGroup) -> Option<f64>| {
            of_kind().filter_map(f).fold(0.0, f64::max)
        };
        metrics::gauge!("dossier_queue_oldest_ready_age_seconds", "kind" => kind.as_str())
            .set(oldest(|g| g.oldest_ready_seconds));
        metrics::gauge!("dossier_queue_oldest_lease_age_seconds", "kind" => kind.as_str())
            .set(oldest(|g| g.oldest_claim_seconds));
        if DELIVERIES.contains(&kind) {
            // Undelivered: still queued or being sent. A dead delivery is a dead letter,
            // reported (and alerted on) as one.
            let lag = of_kind()
                .filter(|g| g.state != JobState::Dead)
                .filter_map(|g| g.oldest_created_seconds)
                .fold(0.0, f64::max);
            metrics::gauge!("dossier_delivery_lag_seconds", "kind" => kind.as_str()).set(lag);
        }
    }
    match review {
        Ok(q) => {
            metrics::gauge!("dossier_review_queue_applications").set(q.applications as f64);
            metrics::gauge!("dossier_review_queue_oldest_age_seconds")
                .set(q.oldest_seconds.unwrap_or(0.0));
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not read the review queue for the metrics");
            return;
        }
    }
    metrics::gauge!("dossier_fleet_sample_timestamp_seconds").set(unix_now());
}

async fn sample_pod(s: &Sampled) {
    let pool = &s.store.pool;
    // sqlx has no hook around acquire (a query acquires inside the executor), so the
    // wait is probed: the time one acquire takes now, as any query would wait.
    let started = Instant::now();
    let probe = tokio::time::timeout(PROBE_LIMIT, pool.acquire()).await;
    metrics::histogram!("dossier_db_pool_acquire_probe_seconds")
        .record(started.elapsed().as_secs_f64());
    drop(probe);
    // Read after the probe's connection is back, so the probe is not counted in use.
    let open = pool.size();
    let idle = pool.num_idle() as u32;
    metrics::gauge!("dossier_db_pool_connections", "state" => "idle").set(f64::from(idle));
    metrics::gauge!("dossier_db_pool_connections", "state" => "in_use")
        .set(f64::from(open.saturating_sub(idle)));
    metrics::gauge!("dossier_db_pool_max_connections")
        .set(f64::from(pool.options().get_max_connections()));
    // 0 before any list is loaded: its age is then "forever", which is what an alert on
    // a stale list should say (every application is referred until a list loads).
    let loaded = s
        .sanctions
        .current()
        .loaded_at()
        .map_or(0.0, |t| t.timestamp_millis() as f64 / 1000.0);
    metrics::gauge!("dossier_sanctions_list_loaded_timestamp_seconds").set(loaded);
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
