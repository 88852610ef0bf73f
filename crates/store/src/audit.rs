//! The audit trail of real upstream requests.
//!
//! Rows are written in batches by one background task: a commit per upstream call would
//! make PostgreSQL's flushes, not the upstreams, the bottleneck. A bounded channel keeps
//! memory flat; if PostgreSQL is down the writer retries the batch and callers only
//! block once the channel is full, so nothing is silently dropped.

use std::time::Duration;

use dossier_upstream::shared::{AuditRecord, AuditTrail};
use futures::future::BoxFuture;
use sqlx::PgPool;
use tokio::sync::mpsc;

const BATCH: usize = 256;
const CHANNEL: usize = 10_000;

/// Cheap to clone; every upstream client holds one.
#[derive(Debug, Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<AuditRecord>,
}

/// The writer task's handle: await `flush` on shutdown so no audit row is lost.
pub struct AuditWriter {
    handle: tokio::task::JoinHandle<()>,
}

impl AuditSink {
    pub fn start(pool: PgPool) -> (AuditSink, AuditWriter) {
        let (tx, rx) = mpsc::channel(CHANNEL);
        let handle = tokio::spawn(write_batches(pool, rx));
        (AuditSink { tx }, AuditWriter { handle })
    }

    pub async fn record(&self, record: AuditRecord) {
        // Only fails when the writer has stopped, i.e. during shutdown after flush.
        if self.tx.send(record).await.is_err() {
            tracing::warn!("audit writer stopped; an upstream call was not audited");
        }
    }
}

impl AuditTrail for AuditSink {
    fn record(&self, record: AuditRecord) -> BoxFuture<'_, ()> {
        Box::pin(AuditSink::record(self, record))
    }
}

impl AuditWriter {
    /// Waits until every row sent before all sinks were dropped is written.
    pub async fn flush(self) {
        let _ = self.handle.await;
    }
}

async fn write_batches(pool: PgPool, mut rx: mpsc::Receiver<AuditRecord>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut delay = Duration::from_millis(100);
        loop {
            match insert(&pool, &batch).await {
                Ok(()) => break,
                Err(e) if pool.is_closed() => {
                    tracing::error!(error = %e, rows = batch.len(), "audit rows lost: database pool closed");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, rows = batch.len(), "audit write failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        batch.clear();
    }
}

async fn insert(pool: &PgPool, batch: &[AuditRecord]) -> Result<(), sqlx::Error> {
    let col = |f: fn(&AuditRecord) -> String| batch.iter().map(f).collect::<Vec<_>>();
    // `as _` on the arrays with NULL elements: the macro checks an array parameter
    // against Vec<T> only, not Vec<Option<T>>.
    sqlx::query!(
        "INSERT INTO upstream_calls (upstream, endpoint, http_status, outcome, error, latency_ms, application_id, cache, cost_cents, called_at)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::int[], $7::uuid[], $8::text[], $9::int[], $10::timestamptz[])",
        &col(|r| r.upstream.as_str().to_owned()),
        &col(|r| r.endpoint.to_owned()),
        batch.iter().map(|r| r.http_status.map(i32::from)).collect::<Vec<_>>() as _,
        &col(|r| r.outcome.clone()),
        batch.iter().map(|r| r.error.clone()).collect::<Vec<_>>() as _,
        &batch.iter().map(|r| r.latency_ms as i32).collect::<Vec<_>>(),
        batch.iter().map(|r| r.application_id).collect::<Vec<_>>() as _,
        &col(|r| r.cache.to_owned()),
        &batch.iter().map(|r| r.cost_cents).collect::<Vec<_>>(),
        &batch.iter().map(|r| r.called_at).collect::<Vec<_>>(),
    )
    .execute(pool)
    .await?;
    Ok(())
}
