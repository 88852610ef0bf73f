//! Is the application pool healthy? The health reporter asks every second. A
//! connection that reaches the server but was left inside a transaction (a caller
//! cancelled at the wrong moment) would fail, or silently enclose, the statements of
//! every caller it is handed to: it is rolled back here; one that fails otherwise is
//! closed, so the pool opens a fresh one.

use std::time::Duration;

use sqlx::{Connection as _, PgPool};

const LIMIT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolHealth {
    /// A pooled connection ran a statement outside any transaction.
    Answering,
    /// No connection was free within the limit: busy, not broken.
    Busy,
    /// A connection was inside a transaction (`open` or `aborted`) and was rolled back.
    Mended(&'static str),
    /// A connection failed (the error); it was closed.
    Failing(String),
}

/// Takes one pooled connection and checks it.
pub async fn check_pool(pool: &PgPool) -> PoolHealth {
    let Ok(Ok(mut conn)) = tokio::time::timeout(LIMIT, pool.acquire()).await else {
        return PoolHealth::Busy;
    };
    // Inside a transaction begun earlier, now() is that transaction's start and differs
    // from this statement's; outside one they are the same instant. A simple query (one
    // message): the extended protocol's Parse and Execute may stamp different instants.
    let query = sqlx::raw_sql("SELECT now() <> statement_timestamp()");
    let answer = async {
        use sqlx::Row as _;
        query.fetch_one(&mut *conn).await?.try_get::<bool, _>(0)
    };
    match tokio::time::timeout(LIMIT, answer).await {
        Ok(Ok(false)) => PoolHealth::Answering,
        Ok(Ok(true)) => rollback(conn, "open").await,
        Ok(Err(e))
            if e.as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|code| code == "25P02") =>
        {
            rollback(conn, "aborted").await
        }
        Ok(Err(e)) => {
            let _ = conn.detach().close_hard().await;
            PoolHealth::Failing(e.to_string())
        }
        Err(_) => {
            let _ = conn.detach().close_hard().await;
            PoolHealth::Failing("no answer within 1s".into())
        }
    }
}

async fn rollback(
    mut conn: sqlx::pool::PoolConnection<sqlx::Postgres>,
    what: &'static str,
) -> PoolHealth {
    if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
        let _ = conn.detach().close_hard().await;
    }
    PoolHealth::Mended(what)
}
