//! Background workers: claim evaluation jobs from PostgreSQL, run them under a renewed
//! lease, and on shutdown hand back what they hold.

use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::store::jobs::Job;
use crate::store::notify::Notifications;
use crate::underwriting::{EvaluateError, RunReason, Underwriter};

/// How long a claimed job is ours without renewal. A dead pod's jobs are taken over
/// after at most this long.
pub const LEASE: Duration = Duration::from_secs(30);
/// Even without a notification, look for work this often (delayed jobs, lapsed leases).
const POLL: Duration = Duration::from_secs(2);

/// Starts `count` workers; they stop when `shutdown` is cancelled, handing back jobs.
pub fn start(
    underwriter: Underwriter,
    notifications: Notifications,
    count: usize,
    worker_prefix: &str,
    shutdown: CancellationToken,
) -> JoinSet<()> {
    let mut set = JoinSet::new();
    for n in 0..count {
        let worker = format!("{worker_prefix}/{n}");
        set.spawn(run_worker(
            underwriter.clone(),
            notifications.clone(),
            worker,
            shutdown.clone(),
        ));
    }
    set
}

async fn run_worker(
    underwriter: Underwriter,
    notifications: Notifications,
    worker: String,
    shutdown: CancellationToken,
) {
    let wake = notifications.jobs();
    let mut backoff = Duration::from_millis(100);
    while !shutdown.is_cancelled() {
        match underwriter.store.claim_job(&worker, LEASE).await {
            Ok(Some(job)) => {
                backoff = Duration::from_millis(100);
                run_job(&underwriter, &worker, job, &shutdown).await;
            }
            Ok(None) => {
                match underwriter.store.bury_exhausted_jobs().await {
                    Ok(0) => {}
                    Ok(n) => tracing::error!(
                        jobs = n,
                        "jobs moved to the dead-letter state after their last attempt's lease lapsed"
                    ),
                    Err(e) => tracing::warn!(error = %e, "could not sweep exhausted jobs"),
                }
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
            Err(e) => {
                tracing::warn!(worker, error = %e, "claiming a job failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn run_job(underwriter: &Underwriter, worker: &str, job: Job, shutdown: &CancellationToken) {
    let store = &underwriter.store;
    let Some(application_id) = job.application_id else {
        let _ = store
            .fail_job(job.id, worker, "job has no application")
            .await;
        return;
    };
    let work = async {
        match job.kind.as_str() {
            "evaluate" => underwriter
                .evaluate(application_id, RunReason::Initial, None)
                .await
                .map(|_| ()),
            other => Err(EvaluateError::RailsInvalid(format!(
                "unknown job kind {other:?}"
            ))),
        }
    };
    let renew = async {
        let mut tick = tokio::time::interval(LEASE / 3);
        tick.tick().await;
        loop {
            tick.tick().await;
            match store.renew_lease(job.id, worker, LEASE).await {
                Ok(true) => {}
                Ok(false) => return, // taken over: stop working on it
                Err(e) => tracing::warn!(job = job.id, error = %e, "lease renewal failed"),
            }
        }
    };
    tokio::select! {
        result = work => match result {
            Ok(()) => {
                if let Err(e) = store.complete_job(job.id, worker).await {
                    tracing::warn!(job = job.id, error = %e, "could not mark job done; it will run again and find the decision made");
                }
                tracing::info!(job = job.id, %application_id, attempts = job.attempts, "evaluation job done");
            }
            Err(e) => {
                tracing::warn!(job = job.id, %application_id, attempts = job.attempts, error = %e, "evaluation job failed; will retry with back-off");
                let _ = store.fail_job(job.id, worker, &e.to_string()).await;
            }
        },
        _ = renew => {
            tracing::warn!(job = job.id, "lost the lease on a job to another worker; abandoning it");
        }
        _ = shutdown.cancelled() => {
            // Hand the job back at once rather than let its lease lapse: another pod
            // picks it up immediately. Check results already written are idempotent.
            if let Err(e) = store.release_job(job.id, worker).await {
                tracing::warn!(job = job.id, error = %e, "could not hand back a job; its lease will lapse");
            }
        }
    }
}
