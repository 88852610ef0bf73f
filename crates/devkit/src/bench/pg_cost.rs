//! What work costs PostgreSQL, counted by PostgreSQL: statements (`pg_stat_statements`)
//! and WAL bytes (`pg_stat_wal`) over a scenario, per unit of work. Counts, not times:
//! they hold on any machine. `pg_stat_statements` must be preloaded (the bench's private
//! PostgreSQL is; a server given by DATABASE_URL may not be): without it the figures are
//! reported as unavailable.

use sqlx::{Connection as _, PgConnection};

/// The cluster's counters at one moment, for one database's statements.
pub(super) struct PgCounters {
    statements: i64,
    wal_bytes: i64,
}

/// Statements and WAL between two snapshots, with the statements run most often.
pub(super) struct PgCost {
    pub statements: i64,
    pub wal_bytes: i64,
    /// (calls, statement text shortened), most calls first.
    pub top: Vec<(i64, String)>,
}

impl PgCost {
    /// "n statements, b WAL bytes per <unit>", for `units` units of work.
    pub(super) fn per(&self, units: usize, unit: &str) -> String {
        let n = units.max(1) as f64;
        format!(
            "{:.1} statements and {:.0} WAL bytes per {unit}",
            self.statements as f64 / n,
            self.wal_bytes as f64 / n
        )
    }

    /// The most frequent statements, as "calls per unit × text".
    pub(super) fn breakdown(&self, units: usize, shown: usize) -> String {
        let n = units.max(1) as f64;
        self.top
            .iter()
            .take(shown)
            .map(|(calls, text)| format!("{:.1} × `{text}`", *calls as f64 / n))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Connects to `db_url` and starts counting from zero. None when pg_stat_statements is
/// not loaded in this PostgreSQL.
pub(super) async fn start(db_url: &str) -> Option<(PgConnection, PgCounters)> {
    let mut conn = PgConnection::connect(db_url).await.ok()?;
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(&mut conn)
        .await
        .ok()?;
    sqlx::query("SELECT pg_stat_statements_reset()")
        .execute(&mut conn)
        .await
        .ok()?;
    let counters = snapshot(&mut conn).await?;
    Some((conn, counters))
}

/// What ran in this database since `start`.
pub(super) async fn since(conn: &mut PgConnection, start: &PgCounters) -> Option<PgCost> {
    let now = snapshot(conn).await?;
    let top: Vec<(i64, String)> = sqlx::query_as(
        "SELECT calls, left(regexp_replace(query, '\\s+', ' ', 'g'), 70)
         FROM pg_stat_statements
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND query NOT LIKE '%pg_stat_%'
         ORDER BY calls DESC LIMIT 12",
    )
    .fetch_all(&mut *conn)
    .await
    .ok()?;
    Some(PgCost {
        statements: now.statements - start.statements,
        wal_bytes: now.wal_bytes - start.wal_bytes,
        top,
    })
}

async fn snapshot(conn: &mut PgConnection) -> Option<PgCounters> {
    let (statements, wal_bytes): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT coalesce(sum(calls), 0)::int8 FROM pg_stat_statements
                 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                   AND query NOT LIKE '%pg_stat_%'),
                (SELECT wal_bytes::int8 FROM pg_stat_wal)",
    )
    .fetch_one(&mut *conn)
    .await
    .ok()?;
    Some(PgCounters {
        statements,
        wal_bytes,
    })
}
