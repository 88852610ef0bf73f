//! The durable work queue's SQL: claim with `FOR UPDATE SKIP LOCKED` under a lease,
//! complete, fail with exponential back-off, and take over lapsed leases.

use std::time::Duration;

use sqlx::Row;
use uuid::Uuid;

use super::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub application_id: Option<Uuid>,
    pub attempts: i32,
}

impl Store {
    /// Claims the next ready job, or a running one whose lease lapsed (its pod died).
    pub async fn claim_job(
        &self,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_by = $1,
                             lease_until = now() + make_interval(secs => $2)
             WHERE id = (
                 SELECT id FROM jobs
                 WHERE (state = 'queued' AND run_at <= now())
                    OR (state = 'running' AND lease_until < now() AND attempts < max_attempts)
                 ORDER BY run_at
                 FOR UPDATE SKIP LOCKED
                 LIMIT 1
             )
             RETURNING id, kind, application_id, attempts",
        )
        .bind(worker)
        .bind(lease.as_secs_f64())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Job {
                id: r.try_get("id")?,
                kind: r.try_get("kind")?,
                application_id: r.try_get("application_id")?,
                attempts: r.try_get("attempts")?,
            })
        })
        .transpose()
    }

    /// Dead-letters jobs whose lease lapsed on their last allowed attempt (their pod
    /// died each time: the job itself may be what kills it). Returns how many.
    pub async fn bury_exhausted_jobs(&self) -> Result<u64, StoreError> {
        Ok(sqlx::query(
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
        Ok(sqlx::query(
            "UPDATE jobs SET lease_until = now() + make_interval(secs => $3)
             WHERE id = $1 AND locked_by = $2 AND state = 'running'",
        )
        .bind(job_id)
        .bind(worker)
        .bind(lease.as_secs_f64())
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    pub async fn complete_job(&self, job_id: i64, worker: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE jobs SET state = 'done', finished_at = now(), lease_until = NULL
             WHERE id = $1 AND locked_by = $2",
        )
        .bind(job_id)
        .bind(worker)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a failed attempt: back to the queue after an exponential back-off, or
    /// into the dead-letter state once attempts are exhausted.
    pub async fn fail_job(&self, job_id: i64, worker: &str, error: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE jobs SET
                 state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END,
                 run_at = now() + make_interval(secs => least(300, power(2, attempts)::int)),
                 lease_until = NULL, locked_by = NULL, last_error = $3,
                 finished_at = CASE WHEN attempts >= max_attempts THEN now() END
             WHERE id = $1 AND locked_by = $2",
        )
        .bind(job_id)
        .bind(worker)
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Hands a job back untouched (shutdown): another worker may take it at once.
    pub async fn release_job(&self, job_id: i64, worker: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE jobs SET state = 'queued', attempts = greatest(attempts - 1, 0), run_at = now(),
                             lease_until = NULL, locked_by = NULL
             WHERE id = $1 AND locked_by = $2 AND state = 'running'",
        )
        .bind(job_id)
        .bind(worker)
        .execute(&self.pool)
        .await?;
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(super::JOBS_CHANNEL)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether a job for this application is still queued or running.
    pub async fn has_open_job(&self, application_id: Uuid) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM jobs WHERE application_id = $1 AND state IN ('queued', 'running'))",
        )
        .bind(application_id)
        .fetch_one(&self.pool)
        .await?)
    }
}
