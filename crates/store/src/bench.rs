//! Figures `dossier bench` reads from the database: the queue's latencies, measured on
//! the database's own clock so that several processes' clocks never mix. Each looks at
//! the applications whose idempotency key starts with a scenario's prefix.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreError};

impl Store {
    /// Queue pickup latency, in milliseconds from a job's creation to its first claim,
    /// of the evaluation jobs of the applications whose idempotency key starts with
    /// `key_prefix`; None for a job not claimed yet.
    pub async fn pickup_latencies_ms(
        &self,
        key_prefix: &str,
    ) -> Result<Vec<Option<f64>>, StoreError> {
        Ok(sqlx::query_scalar!(
            "SELECT extract(epoch FROM j.first_claimed_at - j.created_at)::float8 * 1000
             FROM jobs j JOIN applications a ON a.id = j.application_id
             WHERE j.kind = 'evaluate' AND starts_with(a.idempotency_key, $1)",
            key_prefix,
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Delivery lag, in milliseconds from the transaction that recorded a decision (and
    /// queued its delivery) to the delivery's completion (Rails acknowledged it), of the
    /// decisions of the applications whose key starts with `key_prefix`; None for a
    /// delivery not done yet.
    pub async fn delivery_lags_ms(&self, key_prefix: &str) -> Result<Vec<Option<f64>>, StoreError> {
        Ok(sqlx::query_scalar!(
            "SELECT extract(epoch FROM j.finished_at - j.created_at)::float8 * 1000
             FROM jobs j JOIN applications a ON a.id = j.application_id
             WHERE j.kind = 'deliver' AND starts_with(a.idempotency_key, $1)",
            key_prefix,
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// The applications whose evaluation jobs are running under the workers of process
    /// `pid` (workers are named `<host>:<pid>/<n>`).
    pub async fn applications_held_by(&self, pid: u32) -> Result<Vec<Uuid>, StoreError> {
        let tag = format!(":{pid}/");
        Ok(sqlx::query_scalar!(
            r#"SELECT application_id AS "application_id!" FROM jobs
               WHERE kind = 'evaluate' AND state = 'running' AND application_id IS NOT NULL
                 AND strpos(locked_by, $1) > 0"#,
            tag,
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// How many of `applications` are decided, and when the last of them was.
    pub async fn decided_of(
        &self,
        applications: &[Uuid],
    ) -> Result<(i64, Option<DateTime<Utc>>), StoreError> {
        let r = sqlx::query!(
            r#"SELECT count(*) FILTER (WHERE status = 'decided') AS "decided!",
                      max(decided_at) AS last
               FROM applications WHERE id = ANY($1)"#,
            applications,
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((r.decided, r.last))
    }

    /// Fetch leases that process `pid` holds and has not filled (holders are named
    /// `<pid>/<uuid>`): the questions it is fetching for the fleet.
    pub async fn fetch_leases_held_by(&self, pid: u32) -> Result<i64, StoreError> {
        let prefix = format!("{pid}/");
        Ok(sqlx::query_scalar!(
            r#"SELECT count(*) AS "held!" FROM upstream_fetch_leases
               WHERE starts_with(holder, $1) AND fresh_until IS NULL"#,
            prefix,
        )
        .fetch_one(&self.pool)
        .await?)
    }
}
