//! Beginning a transaction so that a cancelled caller cannot leave a pooled connection
//! inside one.
//!
//! sqlx 0.9's `Pool::begin` sends `BEGIN` and counts the transaction only once the
//! answer is in. A caller dropped in between (an RPC cancelled, a deadline fired, a
//! connection reset) drops the guard while the depth is still 0, so no `ROLLBACK` is
//! queued: the pool's release ping then waits for `BEGIN` to complete and hands the
//! connection out again *inside* a transaction it does not know of. Every later
//! statement on it runs in that transaction (read-only, for a report's snapshot), and
//! an error there leaves it "idle in transaction (aborted)".
//!
//! Running `BEGIN` in a task of its own closes that window: the task finishes `BEGIN`
//! whatever happens to the caller, and if nobody takes the transaction it is dropped
//! *counted*, which queues the `ROLLBACK` the release ping then flushes. Once a
//! transaction is counted, sqlx's own drop guard is cancellation-safe (a dropped
//! `COMMIT` is followed by a harmless `ROLLBACK`).

use sqlx::{PgPool, Postgres, Transaction};

/// `BEGIN` (or `statement`, e.g. `BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY`)
/// on a pooled connection, safe against the caller being cancelled at any point.
pub(crate) async fn begin(
    pool: &PgPool,
    statement: Option<&'static str>,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let pool = pool.clone();
    let task = tokio::spawn(async move {
        match statement {
            Some(statement) => pool.begin_with(statement).await,
            None => pool.begin().await,
        }
    });
    match task.await {
        Ok(begun) => begun,
        Err(join) => Err(sqlx::Error::Protocol(format!(
            "the task beginning a transaction failed: {join}"
        ))),
    }
}
