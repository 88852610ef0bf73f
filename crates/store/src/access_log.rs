//! The access log: every access to an application or a person, by which caller.
//!
//! An access is recorded before its answer leaves (the handler awaits `record`), so an
//! answer a caller received always has its row, whatever happens to the process next.
//! Rows from many concurrent calls share one INSERT (a group commit by one writer
//! task): the cost per call is the wait for the batch it joins, not a commit of its own.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::StoreError;

const BATCH: usize = 256;
const CHANNEL: usize = 4_096;

/// One access, as the log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The access policy's name for the caller ("anonymous" without client
    /// authentication).
    pub caller: String,
    /// The SPIFFE ID the caller's connection proved.
    pub caller_id: Option<String>,
    /// `package.Service/Method`.
    pub method: &'static str,
    pub application_id: Option<Uuid>,
    /// A keyed hash of the person's SSN (`Vault::lookup_hash`), never the SSN.
    pub person_ref: Option<Vec<u8>>,
    /// The purpose the caller stated, for person look-ups.
    pub purpose: Option<String>,
    pub accessed_at: DateTime<Utc>,
}

type Reply = oneshot::Sender<Result<(), (bool, String)>>;

/// Cheap to clone; the API handlers hold one.
#[derive(Debug, Clone)]
pub struct AccessLog {
    tx: mpsc::Sender<(Vec<Access>, Reply)>,
}

/// The writer task: `flush` on shutdown, after the server has stopped answering.
pub struct AccessLogWriter {
    handle: tokio::task::JoinHandle<()>,
}

impl AccessLog {
    pub fn start(pool: PgPool) -> (AccessLog, AccessLogWriter) {
        let (tx, rx) = mpsc::channel(CHANNEL);
        let handle = tokio::spawn(write_batches(pool, rx));
        (AccessLog { tx }, AccessLogWriter { handle })
    }

    /// Records accesses and returns once they are committed. An error means the
    /// accesses are not recorded, and the caller must not be answered with the data.
    pub async fn record(&self, accesses: Vec<Access>) -> Result<(), StoreError> {
        if accesses.is_empty() {
            return Ok(());
        }
        let stopped = || StoreError::Unavailable("the access log writer has stopped".into());
        let (reply, written) = oneshot::channel();
        self.tx
            .send((accesses, reply))
            .await
            .map_err(|_| stopped())?;
        match written.await.map_err(|_| stopped())? {
            Ok(()) => Ok(()),
            Err((true, detail)) => Err(StoreError::Unavailable(detail)),
            Err((false, detail)) => Err(StoreError::Database(sqlx::Error::Protocol(detail))),
        }
    }
}

impl AccessLogWriter {
    /// Waits until every access sent before all handles were dropped is written.
    pub async fn flush(self) {
        let _ = self.handle.await;
    }
}

async fn write_batches(pool: PgPool, mut rx: mpsc::Receiver<(Vec<Access>, Reply)>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let rows: Vec<&Access> = batch.iter().flat_map(|(a, _)| a.iter()).collect();
        let result = insert(&pool, &rows).await.map_err(|e| {
            let e = StoreError::from(e);
            tracing::warn!(error = %e, rows = rows.len(), "access log rows could not be written; those calls are refused");
            (e.is_unavailable(), e.to_string())
        });
        for (_, reply) in batch.drain(..) {
            let _ = reply.send(result.clone());
        }
    }
}

async fn insert(pool: &PgPool, rows: &[&Access]) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO access_log (caller, caller_id, method, application_id, person_ref, purpose, accessed_at)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::uuid[], $5::bytea[], $6::text[], $7::timestamptz[])",
        &rows.iter().map(|r| r.caller.clone()).collect::<Vec<_>>(),
        // `as _`: the macro checks an array parameter against Vec<T> only, not
        // Vec<Option<T>>.
        rows.iter().map(|r| r.caller_id.clone()).collect::<Vec<_>>() as _,
        &rows.iter().map(|r| r.method.to_owned()).collect::<Vec<_>>(),
        rows.iter().map(|r| r.application_id).collect::<Vec<_>>() as _,
        rows.iter().map(|r| r.person_ref.clone()).collect::<Vec<_>>() as _,
        rows.iter().map(|r| r.purpose.clone()).collect::<Vec<_>>() as _,
        &rows.iter().map(|r| r.accessed_at).collect::<Vec<_>>(),
    )
    .execute(pool)
    .await?;
    Ok(())
}
