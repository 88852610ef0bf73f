//! The audit trail of real upstream requests, written ahead of each request.
//!
//! A request's row is committed before the request leaves (outcome "in_flight") and
//! completed when it ends, so a process killed mid-request leaves its rows behind: the
//! trail and the vendors' own counts agree. Both writes go through one background task
//! that batches what many callers send at once, a group commit: one INSERT for the
//! requests about to leave, one UPDATE for those that ended, whatever the concurrency.
//! A commit per request would make PostgreSQL's flushes, not the upstreams, the
//! bottleneck. The bounded channel keeps memory flat; callers block only when it is full.

use std::time::Duration;

use dossier_upstream::shared::{AuditEnd, AuditEntry, AuditStart, AuditTrail, SharedError};
use futures::future::BoxFuture;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

const BATCH: usize = 256;
const CHANNEL: usize = 10_000;

/// Cheap to clone; every upstream client holds one.
#[derive(Debug, Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<Write>,
}

/// The writer task's handle: await `flush` on shutdown so no audit row is lost.
pub struct AuditWriter {
    handle: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
enum Write {
    Begin(AuditStart, oneshot::Sender<Result<AuditEntry, String>>),
    Finish(AuditEntry, AuditEnd),
}

impl AuditSink {
    pub fn start(pool: PgPool) -> (AuditSink, AuditWriter) {
        let (tx, rx) = mpsc::channel(CHANNEL);
        let handle = tokio::spawn(write_batches(pool, rx));
        (AuditSink { tx }, AuditWriter { handle })
    }

    async fn send(&self, write: Write) -> Result<(), SharedError> {
        self.tx
            .send(write)
            .await
            .map_err(|_| "the audit writer has stopped (the process is shutting down)".into())
    }
}

impl AuditTrail for AuditSink {
    fn begin(&self, start: AuditStart) -> BoxFuture<'_, Result<AuditEntry, SharedError>> {
        Box::pin(async move {
            let (reply, written) = oneshot::channel();
            self.send(Write::Begin(start, reply)).await?;
            match written.await {
                Ok(Ok(entry)) => Ok(entry),
                Ok(Err(e)) => Err(e.into()),
                Err(_) => Err("the audit writer stopped before writing the row".into()),
            }
        })
    }

    fn finish(&self, entry: AuditEntry, end: AuditEnd) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if self.send(Write::Finish(entry, end)).await.is_err() {
                tracing::warn!(
                    entry = entry.0,
                    "audit writer stopped; an upstream call's outcome was not recorded (its row stays in_flight)"
                );
            }
        })
    }

    fn abandon(&self, entry: AuditEntry) {
        let end = AuditEnd {
            http_status: None,
            outcome: "cancelled".into(),
            error: None,
            latency_ms: 0,
        };
        if let Err(mpsc::error::TrySendError::Full(write)) =
            self.tx.try_send(Write::Finish(entry, end))
        {
            // From a destructor: it cannot wait, so a task waits for room instead.
            let tx = self.tx.clone();
            tokio::spawn(async move { tx.send(write).await });
        }
    }
}

impl AuditWriter {
    /// Waits until every row sent before all sinks were dropped is written.
    pub async fn flush(self) {
        let _ = self.handle.await;
    }
}

async fn write_batches(pool: PgPool, mut rx: mpsc::Receiver<Write>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let (mut begins, mut finishes) = (Vec::new(), Vec::new());
        for write in batch.drain(..) {
            match write {
                Write::Begin(start, reply) => begins.push((start, reply)),
                Write::Finish(entry, end) => finishes.push((entry, end)),
            }
        }
        if !begins.is_empty() {
            // Not retried: each caller is waiting within its deadline and decides
            // itself (its request is not sent).
            let starts: Vec<&AuditStart> = begins.iter().map(|(s, _)| s).collect();
            match insert_started(&pool, &starts).await {
                Ok(entries) => {
                    for ((_, reply), entry) in begins.into_iter().zip(entries) {
                        let _ = reply.send(Ok(entry));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, rows = begins.len(), "audit rows could not be written; those upstream requests are not sent");
                    for (_, reply) in begins {
                        let _ = reply.send(Err(e.to_string()));
                    }
                }
            }
        }
        if !finishes.is_empty() {
            record_ends(&pool, &finishes).await;
        }
    }
}

/// Completes rows, retrying while the database is away: the requests were made, and
/// their outcomes matter to the audit. Rows whose outcome is lost stay "in_flight".
async fn record_ends(pool: &PgPool, finishes: &[(AuditEntry, AuditEnd)]) {
    let mut delay = Duration::from_millis(100);
    loop {
        match update_ended(pool, finishes).await {
            Ok(()) => return,
            Err(e) if pool.is_closed() => {
                tracing::error!(error = %e, rows = finishes.len(), "audit outcomes lost (rows stay in_flight): database pool closed");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, rows = finishes.len(), "audit write failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn insert_started(
    pool: &PgPool,
    starts: &[&AuditStart],
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    let col = |f: fn(&AuditStart) -> String| starts.iter().map(|s| f(s)).collect::<Vec<_>>();
    // The ids come from the sequence in the order the SELECT produces rows (ORDER BY
    // the input's position), so the ascending ids are the inputs' in order, whatever
    // order RETURNING lists them in.
    let mut ids = sqlx::query_scalar!(
        "INSERT INTO upstream_calls (upstream, endpoint, outcome, latency_ms, application_id, cache, cost_cents, called_at)
         SELECT s.upstream, s.endpoint, 'in_flight', 0, s.application_id, s.cache, s.cost_cents, s.called_at
           FROM UNNEST($1::text[], $2::text[], $3::uuid[], $4::text[], $5::int[], $6::timestamptz[])
                WITH ORDINALITY AS s(upstream, endpoint, application_id, cache, cost_cents, called_at, n)
          ORDER BY s.n
         RETURNING id",
        &col(|s| s.upstream.as_str().to_owned()),
        &col(|s| s.endpoint.to_owned()),
        // `as _`: the macro checks an array parameter against Vec<T> only, not
        // Vec<Option<T>>.
        starts.iter().map(|s| s.application_id).collect::<Vec<_>>() as _,
        &col(|s| s.cache.to_owned()),
        &starts.iter().map(|s| s.cost_cents).collect::<Vec<_>>(),
        &starts.iter().map(|s| s.called_at).collect::<Vec<_>>(),
    )
    .fetch_all(pool)
    .await?;
    ids.sort_unstable();
    Ok(ids.into_iter().map(AuditEntry).collect())
}

async fn update_ended(pool: &PgPool, ends: &[(AuditEntry, AuditEnd)]) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE upstream_calls c
            SET http_status = e.http_status, outcome = e.outcome, error = e.error, latency_ms = e.latency_ms
           FROM UNNEST($1::bigint[], $2::int[], $3::text[], $4::text[], $5::int[])
                AS e(id, http_status, outcome, error, latency_ms)
          WHERE c.id = e.id",
        &ends.iter().map(|(entry, _)| entry.0).collect::<Vec<_>>(),
        ends.iter()
            .map(|(_, e)| e.http_status.map(i32::from))
            .collect::<Vec<_>>() as _,
        &ends.iter().map(|(_, e)| e.outcome.clone()).collect::<Vec<_>>(),
        ends.iter().map(|(_, e)| e.error.clone()).collect::<Vec<_>>() as _,
        &ends
            .iter()
            .map(|(_, e)| e.latency_ms.min(i32::MAX as u32) as i32)
            .collect::<Vec<_>>(),
    )
    .execute(pool)
    .await?;
    Ok(())
}
