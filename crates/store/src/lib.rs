//! PostgreSQL: the only shared state of the fleet, and the only crate that writes SQL.
//!
//! It implements what the upstream stack asks of the shared state (the traits of
//! `dossier_upstream::shared`, in [`shared`]), so the stack never depends on it.

pub mod access_log;
pub mod applications;
pub mod audit;
mod bench;
mod cache;
mod crypto;
pub mod funding;
pub mod health;
pub mod jobs;
mod limits;
pub mod monitoring;
pub mod notify;
mod replay;
pub mod reporting;
pub mod reports;
pub mod retention;
pub mod rotation;
mod run_inputs;
pub mod sanctions;
mod shared;
mod stats;
mod transaction;

use std::collections::HashSet;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

pub use crypto::Vault;
pub use replay::StoredRun;
pub use stats::{JobGroup, ReviewQueue};

/// The migrations compiled into this binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// Channel on which check results and decisions are announced (payload: application id).
pub const REPORT_CHANNEL: &str = "dossier_report";
/// Channel on which new jobs are announced, so idle workers wake at once.
pub const JOBS_CHANNEL: &str = "dossier_jobs";
/// Channel on which a pod announces it filled the shared cache (payload: the hex of the
/// answer's key hash), so pods waiting on its fetch lease read the answer at once.
pub const CACHE_FILL_CHANNEL: &str = "dossier_cache_fill";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Crypto(#[from] crypto::CryptoError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database could not be reached by a background writer the call waited on.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// True when the database could not be reached or went away under the query (as
    /// opposed to a query failing): the caller may try again once it is back. SQLSTATE
    /// classes: 08 (connection exception), 57P (server shutting down, restarting or
    /// crashed: what a query in flight gets during a restart or failover), 53300 (too
    /// many connections), 25P03 (the server ended a session left idle in a transaction,
    /// as after a partition; see `IDLE_IN_TRANSACTION_TIMEOUT`).
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Unavailable(_) => true,
            StoreError::Database(
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Tls(_),
            ) => true,
            StoreError::Database(sqlx::Error::Database(e)) => e.code().is_some_and(|c| {
                c.starts_with("08") || c.starts_with("57P") || c == "53300" || c == "25P03"
            }),
            _ => false,
        }
    }
}

/// The application's handle on PostgreSQL: a pool plus the vault that seals PII.
#[derive(Debug, Clone)]
pub struct Store {
    pub pool: PgPool,
    pub vault: Vault,
}

impl Store {
    pub fn new(pool: PgPool, vault: Vault) -> Store {
        Store { pool, vault }
    }

    /// True when the database answers a trivial query within a second.
    pub async fn ping(&self) -> bool {
        matches!(
            tokio::time::timeout(
                Duration::from_secs(1),
                sqlx::query_scalar!("SELECT 1").fetch_one(&self.pool)
            )
            .await,
            Ok(Ok(_))
        )
    }
}

/// Run on every pooled connection when it opens. A pod cut off from PostgreSQL in the
/// middle of a transaction leaves its session "idle in transaction" on the server,
/// holding its row locks until the server notices the client is gone: with TCP
/// keepalive at the server's defaults that takes hours, and through a proxy or pooler
/// (which stays connected) it never happens. Meanwhile the pods taking over its jobs
/// wait on those locks (the partition test caught it: an application row locked by the
/// cut-off pod's unfinished `attach_fetched_application`). Dossier's transactions never
/// wait on anything but the database between two statements, so a session idle inside
/// one for 10 s is dead, and the server ends it (SQLSTATE 25P03), releasing its locks;
/// 10 s is well under the default job lease (30 s). A plain `SET` rather than a
/// start-up option, so that it also works through a session-mode PgBouncer.
const IDLE_IN_TRANSACTION_TIMEOUT: &str = "SET idle_in_transaction_session_timeout = '10s'";

/// Opens the pool. Fails fast with an operator-facing message when the URL is wrong
/// or the server is down.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = url.parse().map_err(|e| {
        anyhow::anyhow!("DATABASE_URL is not a valid PostgreSQL URL ({e}); expected postgres://user@host:port/db")
    })?;
    let options = options
        .application_name("dossier")
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1));
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .after_connect(|conn, _| {
            Box::pin(async move {
                use sqlx::Executor as _;
                conn.execute(sqlx::raw_sql(IDLE_IN_TRANSACTION_TIMEOUT))
                    .await
                    .map(drop)
            })
        })
        .connect_with(options)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot connect to PostgreSQL at {} ({e}); check DATABASE_URL and that the server is running",
                redact_url(url)
            )
        })
}

/// Applies pending migrations on a dedicated connection, never a pooled one: sqlx holds
/// a session advisory lock while migrating and does not release it when a migration
/// fails, and a pooled connection holding it would block every later migration. The
/// lock also serialises pods that migrate at the same time.
pub async fn migrate(url: &str) -> anyhow::Result<Vec<i64>> {
    let mut conn = PgConnection::connect(url).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot connect to PostgreSQL at {} to migrate ({e})",
            redact_url(url)
        )
    })?;
    let before = applied_versions(&mut conn).await.unwrap_or_default();
    let mut migrator = sqlx::migrate!("../../migrations");
    // Newer releases may have applied migrations this binary does not know; they are
    // additive, so this binary keeps working beside them.
    migrator.set_ignore_missing(true);
    migrator
        .run_direct(None, &mut conn, false)
        .await
        .map_err(|e| anyhow::anyhow!("migration failed: {e}; the schema is unchanged from the failed step on, fix and rerun `dossier migrate`"))?;
    let after = applied_versions(&mut conn).await?;
    let _ = conn.close().await;
    Ok(after.difference(&before).copied().collect())
}

async fn applied_versions(conn: &mut PgConnection) -> anyhow::Result<HashSet<i64>> {
    let exists =
        sqlx::query_scalar!(r#"SELECT to_regclass('_sqlx_migrations') IS NOT NULL AS "exists!""#)
            .fetch_one(&mut *conn)
            .await?;
    if !exists {
        return Ok(HashSet::new());
    }
    let rows = sqlx::query_scalar!("SELECT version FROM _sqlx_migrations WHERE success")
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Migrations this binary has that the database has not applied.
pub async fn pending_migrations(pool: &PgPool) -> anyhow::Result<Vec<(i64, String)>> {
    let mut conn = pool.acquire().await?;
    let applied = applied_versions(&mut conn).await?;
    Ok(MIGRATOR
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .map(|m| (m.version, m.description.to_string()))
        .collect())
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact_url("postgres://u:pw@h:5432/d"),
            "postgres://u:***@h:5432/d"
        );
        assert_eq!(super::redact_url("postgres://u@h/d"), "postgres://u@h/d");
    }
}
