//! Fleet-wide figures for the metrics: the job queue, the outbox to Rails and the
//! review queue, as PostgreSQL holds them. Every pod asks on an interval
//! (`dossier-service`'s `fleet_metrics`), so each statement must stay cheap however
//! large the tables grow: finished jobs are left out through the partial index
//! `jobs_unfinished_idx`, and only REFER decisions are read, through
//! `decisions_refer_idx` (migrations `20261203100001` and `…02`).
//!
//! Ages are computed by the database from its own clock, so a pod whose clock drifts
//! still reports the same ages as its neighbours.

use super::jobs::{JobKind, JobState};
use super::{Store, StoreError};

/// The unfinished jobs of one kind in one state.
#[derive(Debug, Clone, PartialEq)]
pub struct JobGroup {
    pub kind: JobKind,
    pub state: JobState,
    pub jobs: i64,
    /// Seconds since the longest-waiting claimable job of the group became claimable:
    /// a queued job whose `run_at` has passed, or a running job whose lease lapsed (its
    /// pod died) and may be taken over. None when no job of the group is claimable.
    pub oldest_ready_seconds: Option<f64>,
    /// For running jobs, seconds since the longest-held one was claimed, at least: the
    /// claim time is not stored, so this counts from the later of its first claim and
    /// its last `run_at` (which a retry moves past the previous attempt).
    pub oldest_claim_seconds: Option<f64>,
    /// Seconds since the oldest job of the group was created (for deliveries: since the
    /// decision was recorded, as the outbox row is written with it).
    pub oldest_created_seconds: Option<f64>,
}

/// The REFER decisions awaiting an underwriter (what `reporting.review_queue` lists).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReviewQueue {
    pub applications: i64,
    /// Seconds since the oldest of them was decided; None when the queue is empty.
    pub oldest_seconds: Option<f64>,
}

impl Store {
    /// Every kind and state of unfinished job (`done` is left out: it only grows).
    /// Groups with no job are absent; kinds a newer release added are skipped.
    pub async fn job_groups(&self) -> Result<Vec<JobGroup>, StoreError> {
        let rows = sqlx::query!(
            r#"SELECT kind AS "kind!", state AS "state!", count(*) AS "jobs!",
                      extract(epoch FROM now() - min(CASE
                          WHEN state = 'queued' AND run_at <= now() THEN run_at
                          WHEN state = 'running' AND lease_until < now()
                               AND attempts < max_attempts THEN lease_until
                      END))::float8 AS oldest_ready_seconds,
                      extract(epoch FROM now() - min(CASE
                          WHEN state = 'running' THEN greatest(run_at, first_claimed_at)
                      END))::float8 AS oldest_claim_seconds,
                      extract(epoch FROM now() - min(created_at))::float8 AS oldest_created_seconds
               FROM jobs
               WHERE state <> 'done'
               GROUP BY kind, state"#,
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                Some(JobGroup {
                    kind: JobKind::parse(&r.kind)?,
                    state: JobState::ALL.into_iter().find(|s| s.as_str() == r.state)?,
                    jobs: r.jobs,
                    oldest_ready_seconds: r.oldest_ready_seconds.map(non_negative),
                    oldest_claim_seconds: r.oldest_claim_seconds.map(non_negative),
                    oldest_created_seconds: r.oldest_created_seconds.map(non_negative),
                })
            })
            .collect())
    }

    /// Applications whose current decision is REFER and that no underwriter has
    /// reviewed: the same rows as the `reporting.review_queue` view, which the service
    /// role may not read.
    pub async fn review_queue_stats(&self) -> Result<ReviewQueue, StoreError> {
        let row = sqlx::query!(
            r#"SELECT count(*) AS "applications!",
                      extract(epoch FROM now() - min(d.decided_at))::float8 AS oldest_seconds
               FROM decisions d
               WHERE d.decision = 'refer'
                 AND NOT EXISTS (
                     SELECT 1 FROM decisions later
                     WHERE later.application_id = d.application_id
                       AND (later.decided_at, later.run_id) > (d.decided_at, d.run_id))
                 AND NOT EXISTS (SELECT 1 FROM reviews r WHERE r.application_id = d.application_id)"#,
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(ReviewQueue {
            applications: row.applications,
            oldest_seconds: row.oldest_seconds.map(non_negative),
        })
    }
}

/// A row stamped a moment after the statement began (`clock_timestamp()` at claim) is
/// younger than `now()`: an age of zero, not a negative one.
fn non_negative(seconds: f64) -> f64 {
    seconds.max(0.0)
}
