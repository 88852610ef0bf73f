//! The durable work queue's SQL: claim with `FOR UPDATE SKIP LOCKED` under a lease,
//! complete, fail with exponential back-off, and take over lapsed leases.

use std::time::Duration;

use dossier_core::domain::{DecidedBy, Decision, DecisionNotice};
use uuid::Uuid;

use super::{Store, StoreError};

/// Attempts a decision's delivery to Rails gets before it is dead-lettered. With the
/// back-off (2^n seconds, at most 5 minutes) that is about two hours of retrying: long
/// enough to ride out a Rails deploy or outage, short enough that an operator hears of a
/// delivery that cannot succeed (reporting.dead_letters, `dossier jobs retry`).
pub const DELIVERY_ATTEMPTS: i32 = 30;

/// The kinds of work in the queue: the registry the workers dispatch on and the claim
/// query filters by. Workers claim only the kinds their release knows, so a pod never
/// claims work it cannot do (a newer release's new kind waits for a newer pod). The
/// string forms are stored in `jobs.kind` (and written by the queries that queue work):
/// never change one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// Underwrite a submitted application.
    Evaluate,
    /// Deliver a decision to Rails (the outbox).
    Deliver,
    /// Deliver an underwriter's review to Rails.
    DeliverReview,
    /// Deliver a funding check to Rails.
    DeliverFunding,
    /// Deliver an underwriter's resolution of a funding HOLD to Rails.
    DeliverFundingReview,
    /// Screen the approved applications against a newly loaded sanctions list.
    MonitorSanctions,
    /// Deliver a sanctions monitoring alert to Rails.
    DeliverSanctionsAlert,
    /// Re-verify an approved application before funding, as Rails queued it.
    PrepareFunding,
}

impl JobKind {
    pub const ALL: [JobKind; 8] = [
        JobKind::Evaluate,
        JobKind::Deliver,
        JobKind::DeliverReview,
        JobKind::DeliverFunding,
        JobKind::DeliverFundingReview,
        JobKind::MonitorSanctions,
        JobKind::DeliverSanctionsAlert,
        JobKind::PrepareFunding,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            JobKind::Evaluate => "evaluate",
            JobKind::Deliver => "deliver",
            JobKind::DeliverReview => "deliver_review",
            JobKind::DeliverFunding => "deliver_funding",
            JobKind::DeliverFundingReview => "deliver_funding_review",
            JobKind::MonitorSanctions => "monitor_sanctions",
            JobKind::DeliverSanctionsAlert => "deliver_sanctions_alert",
            JobKind::PrepareFunding => "prepare_funding",
        }
    }

    pub fn parse(kind: &str) -> Option<JobKind> {
        JobKind::ALL.into_iter().find(|k| k.as_str() == kind)
    }

    /// Whether the job sends something to Rails: short, and what a caller of
    /// SubmitApplication is waiting for, so it never queues behind evaluations
    /// ([`Lane`]).
    pub const fn is_delivery(self) -> bool {
        match self {
            JobKind::Deliver
            | JobKind::DeliverReview
            | JobKind::DeliverFunding
            | JobKind::DeliverFundingReview
            | JobKind::DeliverSanctionsAlert => true,
            JobKind::Evaluate | JobKind::MonitorSanctions | JobKind::PrepareFunding => false,
        }
    }
}

/// Which jobs a worker claims. Deliveries take milliseconds and evaluations seconds (a
/// slow vendor, a backlog): if deliveries waited their turn behind evaluations, a
/// decision made in one second would reach Rails after the whole backlog. So every
/// worker takes a ready delivery before other work, and some workers take deliveries
/// only, so one is free for them even when every other worker is in a long evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Deliveries only (`--delivery-workers`).
    Deliveries,
    /// Every kind this release knows, deliveries first.
    All,
}

/// Where a job is in its life. The string forms are stored in `jobs.state` and used by
/// the queue's queries: never change one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Waiting for a worker (or for its `run_at`).
    Queued,
    /// Claimed by a worker under a lease.
    Running,
    /// Finished.
    Done,
    /// Out of attempts: a dead letter, re-run only by `dossier jobs retry`.
    Dead,
}

impl JobState {
    pub const ALL: [JobState; 4] = [
        JobState::Queued,
        JobState::Running,
        JobState::Done,
        JobState::Dead,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Dead => "dead",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: i64,
    pub kind: JobKind,
    pub application_id: Option<Uuid>,
    /// The decision a `deliver` job sends.
    pub run_id: Option<Uuid>,
    /// The funding check a `deliver_funding` job sends.
    pub funding_check_id: Option<Uuid>,
    /// The alert a `deliver_sanctions_alert` job sends.
    pub sanctions_alert_id: Option<Uuid>,
    /// The list version a `monitor_sanctions` job screens.
    pub sanctions_list_id: Option<i64>,
    /// Arguments that are no row id (the final terms of a `prepare_funding` job).
    pub payload: Option<serde_json::Value>,
    pub attempts: i32,
    /// The W3C `traceparent` of the call that queued the job, if it carried a trace.
    pub trace_parent: Option<String>,
}

/// A job as operators see it (`dossier jobs list`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JobRow {
    pub id: i64,
    pub kind: String,
    pub state: String,
    pub application_id: Option<Uuid>,
    pub run_id: Option<Uuid>,
    pub attempts: i32,
    pub max_attempts: i32,
    pub last_error: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// What `retry_job` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retried {
    /// Queued again with a fresh set of attempts.
    Requeued,
    NotFound,
    /// Only dead jobs are re-run; the job is in this state.
    NotDead,
}

impl Store {
    /// Claims the next ready job of `lane`, or a running one whose lease lapsed (its pod
    /// died): the oldest delivery if there is one, else (lane [`Lane::All`]) the oldest
    /// other job. One statement: the second look runs only when the first finds nothing.
    pub async fn claim_job(
        &self,
        worker: &str,
        lease: Duration,
        lane: Lane,
    ) -> Result<Option<Job>, StoreError> {
        /// A claimed row, before its kind is read (the claim asks only for known kinds).
        struct Claimed {
            id: i64,
            kind: String,
            application_id: Option<Uuid>,
            run_id: Option<Uuid>,
            funding_check_id: Option<Uuid>,
            sanctions_alert_id: Option<Uuid>,
            sanctions_list_id: Option<i64>,
            payload: Option<serde_json::Value>,
            attempts: i32,
            trace_parent: Option<String>,
        }
        let (deliveries, others): (Vec<JobKind>, Vec<JobKind>) =
            JobKind::ALL.into_iter().partition(|k| k.is_delivery());
        let names = |kinds: Vec<JobKind>| -> Vec<&'static str> {
            kinds.into_iter().map(JobKind::as_str).collect()
        };
        let deliveries = names(deliveries);
        let others = match lane {
            Lane::All => names(others),
            Lane::Deliveries => Vec::new(),
        };
        let claimed = sqlx::query_as!(
            Claimed,
            "WITH delivery AS (
                 SELECT id FROM jobs
                 WHERE ((state = 'queued' AND run_at <= now())
                     OR (state = 'running' AND lease_until < now() AND attempts < max_attempts))
                   AND kind = ANY($3)
                 ORDER BY run_at
                 FOR UPDATE SKIP LOCKED
                 LIMIT 1
             ), other AS (
                 SELECT id FROM jobs
                 WHERE ((state = 'queued' AND run_at <= now())
                     OR (state = 'running' AND lease_until < now() AND attempts < max_attempts))
                   AND kind = ANY($4)
                   AND NOT EXISTS (SELECT 1 FROM delivery)
                 ORDER BY run_at
                 FOR UPDATE SKIP LOCKED
                 LIMIT 1
             )
             UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_by = $1,
                             lease_until = now() + make_interval(secs => $2),
                             first_claimed_at = coalesce(first_claimed_at, clock_timestamp())
             WHERE id = (SELECT id FROM delivery UNION ALL SELECT id FROM other LIMIT 1)
             RETURNING id, kind, application_id, run_id, funding_check_id, sanctions_alert_id, sanctions_list_id, payload, attempts, trace_parent",
            worker,
            lease.as_secs_f64(),
            // `as _`: the macro checks a text[] parameter against Vec<String> only.
            &deliveries as _,
            &others as _,
        )
        .fetch_optional(&self.pool)
        .await?;
        claimed
            .map(|c| {
                Ok(Job {
                    kind: JobKind::parse(&c.kind).ok_or_else(|| {
                        StoreError::Corrupt(format!("job {} has unknown kind {:?}", c.id, c.kind))
                    })?,
                    id: c.id,
                    application_id: c.application_id,
                    run_id: c.run_id,
                    funding_check_id: c.funding_check_id,
                    sanctions_alert_id: c.sanctions_alert_id,
                    sanctions_list_id: c.sanctions_list_id,
                    payload: c.payload,
                    attempts: c.attempts,
                    trace_parent: c.trace_parent,
                })
            })
            .transpose()
    }

    /// Dead-letters jobs whose lease lapsed on their last allowed attempt (their pod
    /// died each time: the job itself may be what kills it). Returns how many.
    pub async fn bury_exhausted_jobs(&self) -> Result<u64, StoreError> {
        Ok(sqlx::query!(
            "UPDATE jobs SET state = 'dead', finished_at = now(), locked_by = NULL,
                             last_error = coalesce(last_error || '; ', '') || 'lease lapsed on the last attempt (the worker died)'
             WHERE state = 'running' AND lease_until < now() AND attempts >= max_attempts",
        )
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Extends a lease; false when the job is no longer ours (lease lapsed and taken).
    pub async fn renew_lease(
        &self,
        job_id: i64,
        worker: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query!(
            "UPDATE jobs SET lease_until = now() + make_interval(secs => $3)
             WHERE id = $1 AND locked_by = $2 AND state = 'running'",
            job_id,
            worker,
            lease.as_secs_f64(),
        )
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    pub async fn complete_job(&self, job_id: i64, worker: &str) -> Result<(), StoreError> {
        sqlx::query!(
            "UPDATE jobs SET state = 'done', finished_at = now(), lease_until = NULL
             WHERE id = $1 AND locked_by = $2",
            job_id,
            worker,
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a failed attempt: back to the queue after an exponential back-off, or
    /// into the dead-letter state once attempts are exhausted.
    pub async fn fail_job(&self, job_id: i64, worker: &str, error: &str) -> Result<(), StoreError> {
        sqlx::query!(
            "UPDATE jobs SET
                 state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END,
                 run_at = now() + make_interval(secs => least(300, power(2, least(attempts, 9))::int)),
                 lease_until = NULL, locked_by = NULL, last_error = $3,
                 finished_at = CASE WHEN attempts >= max_attempts THEN now() END
             WHERE id = $1 AND locked_by = $2",
            job_id,
            worker,
            error,
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Hands a job back untouched (shutdown): another worker may take it at once.
    pub async fn release_job(&self, job_id: i64, worker: &str) -> Result<(), StoreError> {
        sqlx::query!(
            "UPDATE jobs SET state = 'queued', attempts = greatest(attempts - 1, 0), run_at = now(),
                             lease_until = NULL, locked_by = NULL
             WHERE id = $1 AND locked_by = $2 AND state = 'running'",
            job_id,
            worker,
        )
        .execute(&self.pool)
        .await?;
        sqlx::query!("SELECT pg_notify($1, '')", super::JOBS_CHANNEL)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

impl Store {
    /// Queues a dead job again with a fresh set of attempts (`dossier jobs retry`). Its
    /// last error is kept until the next attempt overwrites it.
    pub async fn retry_job(&self, job_id: i64) -> Result<Retried, StoreError> {
        let mut tx = crate::transaction::begin(&self.pool, None).await?;
        let state = sqlx::query_scalar!("SELECT state FROM jobs WHERE id = $1 FOR UPDATE", job_id)
            .fetch_optional(&mut *tx)
            .await?;
        match state.as_deref() {
            None => return Ok(Retried::NotFound),
            Some("dead") => {}
            Some(_) => return Ok(Retried::NotDead),
        }
        sqlx::query!(
            "UPDATE jobs SET state = 'queued', attempts = 0, run_at = now(), finished_at = NULL,
                             lease_until = NULL, locked_by = NULL
             WHERE id = $1",
            job_id,
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!("SELECT pg_notify($1, '')", super::JOBS_CHANNEL)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Retried::Requeued)
    }

    /// Jobs in one state (or every state), newest first.
    pub async fn list_jobs(
        &self,
        state: Option<JobState>,
        limit: i64,
    ) -> Result<Vec<JobRow>, StoreError> {
        Ok(sqlx::query_as!(
            JobRow,
            "SELECT id, kind, state, application_id, run_id, attempts, max_attempts, last_error,
                    created_at, finished_at
             FROM jobs WHERE $1::text IS NULL OR state = $1
             ORDER BY id DESC LIMIT $2",
            state.map(JobState::as_str),
            limit,
        )
        .fetch_all(&self.pool)
        .await?)
    }
}

impl Store {
    /// The decision a `deliver` job announces; None if it is gone.
    pub async fn decision_delivery(
        &self,
        run_id: Uuid,
    ) -> Result<Option<DecisionNotice>, StoreError> {
        let row = sqlx::query!(
            "SELECT d.run_id, d.application_id, a.idempotency_key, a.rails_application_id,
                    d.decision, d.reason_codes, d.policy_version, d.decided_at,
                    d.evaluation_mode, d.vendor_cost_cents, d.vendor_cost_avoided_cents
             FROM decisions d JOIN applications a ON a.id = d.application_id
             WHERE d.run_id = $1",
            run_id,
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let decision = r.decision;
            Ok(DecisionNotice {
                decision_id: r.run_id,
                application_id: r.application_id,
                submission_key: r.idempotency_key,
                rails_application_id: r.rails_application_id,
                decision: Decision::parse(&decision).ok_or_else(|| {
                    StoreError::Corrupt(format!("decision {decision:?} of run {run_id}"))
                })?,
                reason_codes: r.reason_codes,
                policy_version: r.policy_version,
                decided_at: r.decided_at,
                decided_by: DecidedBy::Policy,
                replaces: None,
                reviewer: None,
                vendor_cost: super::reports::vendor_cost(
                    r.evaluation_mode,
                    r.vendor_cost_cents,
                    r.vendor_cost_avoided_cents,
                )?,
            })
        })
        .transpose()
    }

    /// An underwriter's review of a referred application, as announced: the final
    /// decision, replacing the REFER it resolves. None if there is no review.
    pub async fn review_delivery(
        &self,
        application_id: Uuid,
    ) -> Result<Option<DecisionNotice>, StoreError> {
        // reviews.id is a nullable column; "id!": the WHERE clause leaves out its NULLs.
        let row = sqlx::query!(
            r#"SELECT r.id AS "id!", r.run_id, r.outcome, r.reviewer, r.reviewed_at, a.idempotency_key,
                    a.rails_application_id, d.reason_codes, d.policy_version
             FROM reviews r
             JOIN applications a ON a.id = r.application_id
             JOIN decisions d ON d.run_id = r.run_id
             -- Reviews made before reviews.id existed were never queued for delivery.
             WHERE r.application_id = $1 AND r.id IS NOT NULL"#,
            application_id,
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| DecisionNotice {
            decision_id: r.id,
            application_id,
            submission_key: r.idempotency_key,
            rails_application_id: r.rails_application_id,
            decision: match r.outcome.as_str() {
                "approve" => Decision::Approved,
                _ => Decision::Declined,
            },
            reason_codes: r.reason_codes,
            policy_version: r.policy_version,
            decided_at: r.reviewed_at,
            decided_by: DecidedBy::Underwriter,
            replaces: Some(r.run_id),
            reviewer: Some(r.reviewer),
            vendor_cost: None,
        }))
    }
}
