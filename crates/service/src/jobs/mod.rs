//! Background workers: claim jobs from PostgreSQL, run them under a renewed lease, and on
//! shutdown hand back what they hold.
//!
//! Two kinds of work: `evaluate` (run an application's checks and decide, written by
//! SubmitApplication in the same transaction as the application) and `deliver` (send a
//! decision to the Rails backend, written in the same statement as the decision: the
//! outbox; `deliver_review` likewise for an underwriter's review). All are safe to run
//! twice: a decision is recorded once per application, and a delivery carries the
//! decision's id as its idempotency key.

use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::underwriting::{RunReason, Underwriter};
use dossier_store::jobs::{Job, JobKind, Lane};
use dossier_store::notify::Notifications;
use dossier_upstream::CallContext;
use uuid::Uuid;

/// How long a claimed job is ours without renewal, unless configured
/// (`--job-lease`). A dead pod's jobs are taken over after at most this long.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// Longest a delivery attempt to Rails may take (retries within it included).
const DELIVERY_BUDGET: Duration = Duration::from_secs(30);
/// Even without a notification, look for work this often (delayed jobs, lapsed leases).
const POLL: Duration = Duration::from_secs(2);

/// How many workers of each [`Lane`] a process runs.
#[derive(Debug, Clone, Copy)]
pub struct WorkerCounts {
    /// Workers that take every kind of job, deliveries first (`--workers`).
    pub all: usize,
    /// Workers that take deliveries only (`--delivery-workers`).
    pub deliveries: usize,
}

/// Starts the workers; they stop when `shutdown` is cancelled, handing back jobs.
pub fn start(
    underwriter: Underwriter,
    notifications: Notifications,
    counts: WorkerCounts,
    lease: Duration,
    worker_prefix: &str,
    shutdown: CancellationToken,
) -> JoinSet<()> {
    let lanes = std::iter::repeat_n(Lane::All, counts.all)
        .chain(std::iter::repeat_n(Lane::Deliveries, counts.deliveries));
    let mut set = JoinSet::new();
    for (n, lane) in lanes.enumerate() {
        let worker = format!("{worker_prefix}/{n}");
        set.spawn(run_worker(
            underwriter.clone(),
            notifications.clone(),
            worker,
            lane,
            lease,
            shutdown.clone(),
        ));
    }
    set
}

async fn run_worker(
    underwriter: Underwriter,
    notifications: Notifications,
    worker: String,
    lane: Lane,
    lease: Duration,
    shutdown: CancellationToken,
) {
    let wake = notifications.jobs(lane);
    let mut backoff = Duration::from_millis(100);
    // The dead-letter sweep runs at most once per poll interval: an idle worker is
    // woken by every job queued anywhere (most often for work another worker takes),
    // and sweeping on each wake doubled the queue's statements.
    let mut last_sweep: Option<Instant> = None;
    while !shutdown.is_cancelled() {
        match underwriter.store.claim_job(&worker, lease, lane).await {
            Ok(Some(job)) => {
                backoff = Duration::from_millis(100);
                run_job(&underwriter, &worker, job, lease, &shutdown).await;
            }
            Ok(None) if last_sweep.is_some_and(|t| t.elapsed() < POLL) => {
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
            Ok(None) => {
                last_sweep = Some(Instant::now());
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

async fn run_job(
    underwriter: &Underwriter,
    worker: &str,
    job: Job,
    lease: Duration,
    shutdown: &CancellationToken,
) {
    let store = &underwriter.store;
    let work = async {
        match job.kind {
            JobKind::Evaluate => evaluate(underwriter, &job).await,
            JobKind::Deliver | JobKind::DeliverReview => deliver(underwriter, &job).await,
            JobKind::DeliverFunding => deliver_funding(underwriter, &job).await,
            JobKind::DeliverFundingReview => deliver_funding_review(underwriter, &job).await,
            JobKind::MonitorSanctions => {
                let list_id = job
                    .sanctions_list_id
                    .ok_or("monitor_sanctions job names no list version")?;
                underwriter
                    .monitor_sanctions(list_id, job.id)
                    .await
                    .map(|_| ())
            }
            JobKind::DeliverSanctionsAlert => deliver_sanctions_alert(underwriter, &job).await,
            JobKind::PrepareFunding => prepare_funding(underwriter, &job).await,
        }
    };
    let renew = async {
        let mut tick = tokio::time::interval(lease / 3);
        tick.tick().await;
        loop {
            tick.tick().await;
            match store.renew_lease(job.id, worker, lease).await {
                Ok(true) => {}
                Ok(false) => return, // taken over: stop working on it
                Err(e) => tracing::warn!(error = %e, "lease renewal failed"),
            }
        }
    };
    let span = crate::telemetry::job_span(
        job.kind.as_str(),
        job.id,
        job.application_id,
        job.trace_parent.as_deref(),
    );
    let outcome = async {
        tokio::select! {
            result = work => match result {
                Ok(()) => {
                    if let Err(e) = store.complete_job(job.id, worker).await {
                        tracing::warn!(error = %e, "could not mark job done; it will run again and find the decision made");
                    }
                    tracing::info!(attempts = job.attempts, "job done");
                }
                Err(e) => {
                    tracing::warn!(attempts = job.attempts, error = %e, "job failed; it will be retried with back-off, or dead-lettered after its last attempt");
                    if let Err(e) = store.fail_job(job.id, worker, &e).await {
                        tracing::warn!(error = %e, "could not record the failure; the lease will lapse and the job run again");
                    }
                }
            },
            _ = renew => {
                tracing::warn!("lost the lease on a job to another worker; abandoning it");
            }
            _ = shutdown.cancelled() => {
                // Hand the job back at once rather than let its lease lapse: another pod
                // picks it up immediately. Check results already written are idempotent.
                if let Err(e) = store.release_job(job.id, worker).await {
                    tracing::warn!(error = %e, "could not hand back a job; its lease will lapse");
                }
            }
        }
    };
    tracing::Instrument::instrument(outcome, span).await
}

async fn evaluate(underwriter: &Underwriter, job: &Job) -> Result<(), String> {
    let application_id = job
        .application_id
        .ok_or("evaluate job has no application")?;
    underwriter
        .evaluate(application_id, RunReason::Initial, None)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Sends one decision to Rails (the outbox). Rails may see it more than once (a pod died
/// after Rails acknowledged, before the job was marked done): the idempotency key, the
/// decision id, lets it recognise the repeat.
async fn deliver(underwriter: &Underwriter, job: &Job) -> Result<(), String> {
    let store = &underwriter.store;
    let found = if job.kind == JobKind::DeliverReview {
        let application_id = job
            .application_id
            .ok_or("deliver_review job names no application")?;
        store.review_delivery(application_id).await
    } else {
        let run_id = job.run_id.ok_or("deliver job names no decision")?;
        store.decision_delivery(run_id).await
    };
    let decision = found
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("the decision of job {} no longer exists", job.id))?;
    let run_id = decision.decision_id;
    let ctx = delivery_context(decision.application_id);
    let adverse_action = dossier_core::adverse_action::notice_for(&decision, &underwriter.notices);
    let delivery = dossier_upstream::rails::RailsDecision {
        adverse_action,
        ..decision.into()
    };
    let ack = underwriter
        .upstreams
        .rails
        .deliver_decision(&delivery, &ctx)
        .await
        .map_err(|e| format!("delivering decision {run_id} to Rails failed: {e}"))?;
    metrics::counter!("dossier_decisions_delivered_total", "duplicate" => if ack.duplicate { "true" } else { "false" }).increment(1);
    Ok(())
}

/// Sends one funding check to Rails, with its id as the idempotency key (like a
/// decision's delivery).
async fn deliver_funding(underwriter: &Underwriter, job: &Job) -> Result<(), String> {
    let (id, notice) = funding_notice(underwriter, job).await?;
    let check = notice.check;
    let delivery = dossier_upstream::rails::RailsFundingCheck {
        funding_check_id: check.id,
        application_id: check.application_id,
        submission_key: notice.submission_key,
        rails_application_id: notice.rails_application_id,
        approval_decision_id: check.approval_run_id,
        verdict: check.verdict.as_str().to_owned(),
        reason_codes: check.reason_codes,
        changes: check.changes,
        amount_cents: check.financing.amount_cents,
        term_years: check.financing.term_years,
        policy_version: check.policy_version,
        checked_at: check.checked_at,
    };
    let ctx = delivery_context(check.application_id);
    underwriter
        .upstreams
        .rails
        .deliver_funding_check(&delivery, &ctx)
        .await
        .map_err(|e| format!("delivering funding check {id} to Rails failed: {e}"))?;
    Ok(())
}

/// The funding check a `deliver_funding` or `deliver_funding_review` job delivers.
async fn funding_notice(
    underwriter: &Underwriter,
    job: &Job,
) -> Result<(Uuid, dossier_store::funding::FundingNotice), String> {
    let id = job.funding_check_id.ok_or_else(|| {
        format!(
            "{} job {} names no funding check",
            job.kind.as_str(),
            job.id
        )
    })?;
    let notice = underwriter
        .store
        .funding_delivery(id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("the funding check of job {} no longer exists", job.id))?;
    Ok((id, notice))
}

/// Sends an underwriter's resolution of a funding HOLD to Rails; a decline carries its
/// adverse-action notice.
async fn deliver_funding_review(underwriter: &Underwriter, job: &Job) -> Result<(), String> {
    let (id, notice) = funding_notice(underwriter, job).await?;
    let check = notice.check;
    let resolution = check
        .resolution
        .ok_or_else(|| format!("funding check {id} has no resolution to deliver"))?;
    let adverse_action = (!resolution.clear)
        .then(|| dossier_core::adverse_action::content(&check.reason_codes, &underwriter.notices));
    let delivery = dossier_upstream::rails::RailsFundingResolution {
        funding_check_id: check.id,
        application_id: check.application_id,
        submission_key: notice.submission_key,
        rails_application_id: notice.rails_application_id,
        outcome: if resolution.clear { "clear" } else { "decline" }.to_owned(),
        reviewer: resolution.reviewer,
        resolved_at: resolution.resolved_at,
        reason_codes: check.reason_codes,
        adverse_action,
    };
    let ctx = delivery_context(check.application_id);
    underwriter
        .upstreams
        .rails
        .deliver_funding_resolution(&delivery, &ctx)
        .await
        .map_err(|e| {
            format!("delivering the resolution of funding check {id} to Rails failed: {e}")
        })?;
    Ok(())
}

/// Sends one sanctions monitoring alert to Rails.
async fn deliver_sanctions_alert(underwriter: &Underwriter, job: &Job) -> Result<(), String> {
    let id = job
        .sanctions_alert_id
        .ok_or("deliver_sanctions_alert job names no alert")?;
    let a = underwriter
        .store
        .sanctions_alert_delivery(id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("the alert of job {} no longer exists", job.id))?;
    let delivery = dossier_upstream::rails::RailsSanctionsAlert {
        alert_id: a.id,
        application_id: a.application_id,
        submission_key: a.submission_key,
        rails_application_id: a.rails_application_id,
        subject: a.subject,
        severity: a.severity,
        entry_id: a.entry_id,
        candidate: a.list_name,
        program: a.program,
        score: a.score,
        list_version: a.list_id,
        raised_at: a.raised_at,
    };
    let ctx = delivery_context(a.application_id);
    underwriter
        .upstreams
        .rails
        .deliver_sanctions_alert(&delivery, &ctx)
        .await
        .map_err(|e| format!("delivering sanctions alert {id} to Rails failed: {e}"))?;
    Ok(())
}

/// The context of one delivery attempt to Rails: its own budget, no caller deadline.
fn delivery_context(application_id: Uuid) -> CallContext {
    CallContext {
        application_id: Some(application_id),
        deadline: Some(Instant::now() + DELIVERY_BUDGET),
        force_refresh: false,
    }
}

/// A funding check Rails queued: run like a PrepareFunding call, its outcome delivered
/// through the outbox like every funding check's.
async fn prepare_funding(underwriter: &Underwriter, job: &Job) -> Result<(), String> {
    let application_id = job
        .application_id
        .ok_or("prepare_funding job names no application")?;
    let terms: crate::underwriting::funding::FinalTerms = job
        .payload
        .clone()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| format!("the final terms of job {} do not decode: {e}", job.id))?
        .unwrap_or_default();
    let outcome = underwriter
        .prepare_funding(application_id, terms, None)
        .await;
    match outcome.as_ref() {
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}
