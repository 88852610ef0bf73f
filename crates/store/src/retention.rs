//! Retention: deleting the rows of the two tables that grow with every request, once
//! they are older than their retention period. `upstream_calls` (the audit trail) is
//! purged in whole UTC days, through the database function `purge_upstream_calls`
//! (migration 20261208100002), because the service role may not delete from it itself;
//! `jobs` loses its `done` rows only (dead letters wait for an operator, queued and
//! running jobs are work). Every pod runs the purges (crates/service/src/retention.rs).
//!
//! Each purge is a stream of batches, one short statement each: no statement holds many
//! row locks or writes a large burst of WAL, and the caller may stop between two. The
//! batches take their rows `FOR UPDATE SKIP LOCKED`, so pods purging at once share the
//! work instead of waiting on each other.

use std::time::Duration;

use futures::Stream;

use super::{Store, StoreError};

/// Rows one purge statement deletes at most.
pub const BATCH: u32 = 5_000;

/// The shortest retention of `upstream_calls`, in days, that `purge_upstream_calls`
/// accepts (the database refuses less, so that the service role cannot erase the
/// recent audit): a quarter of vendor invoices can always be checked against it.
pub const MIN_UPSTREAM_CALLS_DAYS: u32 = 90;

/// A table that retention purges: the `table` label of the purge metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purged {
    UpstreamCalls,
    Jobs,
}

impl Purged {
    pub const fn as_str(self) -> &'static str {
        match self {
            Purged::UpstreamCalls => "upstream_calls",
            Purged::Jobs => "jobs",
        }
    }
}

impl Store {
    /// Deletes the audit rows called before the UTC day `retain_days` days before today
    /// (so `reporting.upstream_usage` keeps whole days), at most `batch` (1 to 10,000)
    /// per statement. Each item is one statement's count; the stream ends after a
    /// statement that deleted fewer than `batch`, or after an error. The first batch
    /// records the horizon in `retention_horizons`, which the reporting view reads.
    /// `retain_days` below [`MIN_UPSTREAM_CALLS_DAYS`] is refused by the database.
    pub fn purge_upstream_calls(
        &self,
        retain_days: u32,
        batch: u32,
    ) -> impl Stream<Item = Result<u64, StoreError>> + Send + '_ {
        batches(batch, move || async move {
            let deleted = sqlx::query_scalar!(
                r#"SELECT purge_upstream_calls($1, $2) AS "deleted!""#,
                i32::try_from(retain_days).unwrap_or(i32::MAX),
                i32::try_from(batch).unwrap_or(i32::MAX),
            )
            .fetch_one(&self.pool)
            .await?;
            Ok(u64::try_from(deleted).unwrap_or(0))
        })
    }

    /// Deletes the `done` jobs that finished more than `retain` ago, at most `batch` per
    /// statement, as [`Store::purge_upstream_calls`] does. Nothing references a job
    /// row, so a finished one is of use only to someone reading the queue's history.
    pub fn purge_finished_jobs(
        &self,
        retain: Duration,
        batch: u32,
    ) -> impl Stream<Item = Result<u64, StoreError>> + Send + '_ {
        batches(batch, move || async move {
            Ok(sqlx::query!(
                "DELETE FROM jobs
                 WHERE id IN (SELECT id FROM jobs
                              WHERE state = 'done'
                                AND finished_at < now() - make_interval(secs => $1)
                              LIMIT $2
                              FOR UPDATE SKIP LOCKED)",
                retain.as_secs_f64(),
                i64::from(batch),
            )
            .execute(&self.pool)
            .await?
            .rows_affected())
        })
    }
}

/// Runs `delete` (one statement) again and again, yielding each count, until a
/// statement deletes fewer than `batch` rows (nothing left, or the rest locked by
/// another pod's batch) or fails.
fn batches<F, Fut>(batch: u32, delete: F) -> impl Stream<Item = Result<u64, StoreError>> + Send
where
    F: FnMut() -> Fut + Send,
    Fut: Future<Output = Result<u64, StoreError>> + Send,
{
    futures::stream::unfold(Some(delete), move |state| async move {
        let mut delete = state?;
        let result = delete().await;
        let more = matches!(result, Ok(n) if n >= u64::from(batch));
        Some((result, more.then_some(delete)))
    })
}
