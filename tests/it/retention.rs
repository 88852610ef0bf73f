//! Retention (migrations 20261208100001/2, `dossier_store::retention`, the server's
//! periodic purge): old audit days and old finished jobs go, everything else stays, the
//! reporting view keeps its retained window and says what it no longer knows, and the
//! service role purges only through the function that keeps the recent audit.

use std::collections::BTreeMap;
use std::time::Duration;

use dossier_devkit::harness::{TestApp, TestDb, count_jobs, evaluate_request, eventually};
use dossier_service::config::Retention;
use dossier_store::retention::BATCH;
use dossier_store::{Store, StoreError, Vault};
use futures::{Stream, TryStreamExt as _};
use serde_json::Value;
use sqlx::{Connection as _, PgPool};

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Each batch's count, or the first error.
async fn batches(s: impl Stream<Item = Result<u64, StoreError>>) -> Result<Vec<u64>, StoreError> {
    s.try_collect().await
}

async fn store_on(url: &str) -> Store {
    Store::new(
        dossier_store::connect(url, 5).await.unwrap(),
        Vault::ephemeral(),
    )
}

/// An audit row called at `at` (an SQL expression), tagged by its endpoint.
async fn audit_row(pool: &PgPool, endpoint: &str, at: &str) {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO upstream_calls (upstream, endpoint, outcome, latency_ms, cost_cents, called_at)
         VALUES ('valuation', '{endpoint}', 'ok', 10, 50, {at})"
    )))
    .execute(pool)
    .await
    .unwrap();
}

async fn endpoints_left(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT endpoint FROM upstream_calls ORDER BY endpoint")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Today's UTC midnight minus `days`, as SQL.
fn midnight_minus(days: u32) -> String {
    format!(
        "(date_trunc('day', now() AT TIME ZONE 'UTC') - interval '{days} days') AT TIME ZONE 'UTC'"
    )
}

#[tokio::test]
async fn audit_rows_before_the_retained_days_are_purged_in_batches_and_the_rest_kept() {
    let db = TestDb::migrated().await;
    let store = store_on(&db.url).await;
    let pool = &store.pool;
    // Seven rows of days before the cutoff (the last one a microsecond before it), and
    // rows from the cutoff on: its first instant, inside the window, today.
    for n in 0..6 {
        audit_row(
            pool,
            &format!("old-{n}"),
            &format!("now() - interval '{} days'", 150 + n),
        )
        .await;
    }
    audit_row(
        pool,
        "old-edge",
        &format!("{} - interval '1 microsecond'", midnight_minus(100)),
    )
    .await;
    audit_row(pool, "kept-edge", &midnight_minus(100)).await;
    audit_row(pool, "kept-window", "now() - interval '50 days'").await;
    audit_row(pool, "kept-today", "now()").await;

    // Batches of 3: full, full, then the last row and the end.
    assert_eq!(
        batches(store.purge_upstream_calls(100, 3)).await.unwrap(),
        [3, 3, 1]
    );
    assert_eq!(
        endpoints_left(pool).await,
        ["kept-edge", "kept-today", "kept-window"]
    );
    let horizon_is_the_cutoff: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT purged_before = {} FROM retention_horizons WHERE table_name = 'upstream_calls'",
        midnight_minus(100)
    )))
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(horizon_is_the_cutoff);

    // Nothing more to do; a longer retention later neither deletes nor moves the
    // horizon back (the rows before it are gone).
    assert_eq!(
        batches(store.purge_upstream_calls(100, BATCH))
            .await
            .unwrap(),
        [0]
    );
    assert_eq!(
        batches(store.purge_upstream_calls(400, BATCH))
            .await
            .unwrap(),
        [0]
    );
    let horizon_days_ago: i32 = sqlx::query_scalar(
        "SELECT ((now() AT TIME ZONE 'UTC')::date - (purged_before AT TIME ZONE 'UTC')::date)
         FROM retention_horizons",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(horizon_days_ago, 100);
    assert_eq!(endpoints_left(pool).await.len(), 3);

    // Fewer than 90 days, or an unbounded batch, is refused by the database itself.
    for (days, batch) in [(89, BATCH), (100, 10_001)] {
        let err = batches(store.purge_upstream_calls(days, batch))
            .await
            .unwrap_err();
        let code = match &err {
            StoreError::Database(e) => e
                .as_database_error()
                .and_then(|d| d.code())
                .map(|c| c.into_owned()),
            _ => None,
        };
        assert_eq!(
            code.as_deref(),
            Some("22023"),
            "{days} days, batch {batch}: {err}"
        );
    }
    assert_eq!(endpoints_left(pool).await.len(), 3);
}

/// A job in `state`, finished `finished` ago (an SQL interval; NULL for never), tagged
/// by its last_error.
async fn job(pool: &PgPool, tag: &str, state: &str, finished: Option<&str>) {
    let finished_at = finished.map_or("NULL".to_owned(), |ago| format!("now() - interval '{ago}'"));
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO jobs (kind, state, created_at, finished_at, last_error)
         VALUES ('monitor_sanctions', '{state}', now() - interval '30 days', {finished_at}, '{tag}')"
    )))
    .execute(pool)
    .await
    .unwrap();
}

async fn jobs_left(pool: &PgPool) -> Vec<String> {
    // Tagged ones only: a server queues jobs of its own (its seed list's monitoring).
    sqlx::query_scalar("SELECT last_error FROM jobs WHERE last_error IS NOT NULL ORDER BY 1")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn only_done_jobs_past_their_retention_are_purged_and_locked_ones_are_skipped() {
    let db = TestDb::migrated().await;
    let store = store_on(&db.url).await;
    let pool = &store.pool;
    for n in 0..5 {
        job(pool, &format!("done-old-{n}"), "done", Some("8 days")).await;
    }
    job(pool, "done-recent", "done", Some("6 days")).await;
    job(pool, "done-unstamped", "done", None).await;
    job(pool, "dead-old", "dead", Some("30 days")).await;
    job(pool, "queued-old", "queued", None).await;
    job(pool, "running-old", "running", None).await;

    // Another pod's batch holds one of the old rows: this purge skips it rather than
    // waiting, and ends (its last batch came back short).
    let mut other = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let mut held = other.begin().await.unwrap();
    sqlx::query("SELECT id FROM jobs WHERE last_error = 'done-old-0' FOR UPDATE")
        .execute(&mut *held)
        .await
        .unwrap();
    let purged = batches(store.purge_finished_jobs(DAY * 7, 2))
        .await
        .unwrap();
    assert_eq!(purged.iter().sum::<u64>(), 4, "{purged:?}");
    assert!(*purged.last().unwrap() < 2, "{purged:?}");
    assert_eq!(
        jobs_left(pool).await,
        [
            "dead-old",
            "done-old-0",
            "done-recent",
            "done-unstamped",
            "queued-old",
            "running-old"
        ]
    );
    held.rollback().await.unwrap();

    // Once released, the next purge takes it.
    assert_eq!(
        batches(store.purge_finished_jobs(DAY * 7, BATCH))
            .await
            .unwrap(),
        [1]
    );
    assert_eq!(
        jobs_left(pool).await,
        [
            "dead-old",
            "done-recent",
            "done-unstamped",
            "queued-old",
            "running-old"
        ]
    );
}

/// Every row of reporting.upstream_usage, keyed by (day, upstream).
async fn usage(pool: &PgPool) -> BTreeMap<(String, String), Value> {
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT to_jsonb(v)::text FROM reporting.upstream_usage v")
            .fetch_all(pool)
            .await
            .unwrap();
    rows.iter()
        .map(|t| {
            let v: Value = serde_json::from_str(t).unwrap();
            let key = (
                v["day"].as_str().unwrap().to_owned(),
                v["upstream"].as_str().unwrap().to_owned(),
            );
            (key, v)
        })
        .collect()
}

const AUDIT_COLUMNS: [&str; 7] = [
    "requests",
    "errors",
    "cost_cents",
    "mean_latency_ms",
    "p95_latency_ms",
    "unit_cost_cents",
    "cost_saved_cents",
];

#[tokio::test]
async fn upstream_usage_keeps_the_retained_days_and_shows_purged_ones_as_unknown() {
    // Only the test purges.
    let app = TestApp::spawn_with(|a| {
        a.retain_upstream_calls = Retention::Forever;
        a.retain_finished_jobs = Retention::Forever;
    })
    .await;
    let pool = &app.pool;
    let mut client = app.client().await;
    let mut ids = Vec::new();
    for (example, key) in [("approve", "ret-approve"), ("decline", "ret-decline")] {
        let report = client
            .evaluate_application(evaluate_request(example, key))
            .await
            .unwrap()
            .into_inner()
            .report
            .unwrap();
        ids.push(report.application_id.parse::<uuid::Uuid>().unwrap());
    }
    // Everything that writes audit rows is over: both deliveries acknowledged, and every
    // audit row completed (rows are written before their request, completed after it).
    eventually(
        "both decisions delivered and every audit row completed",
        Duration::from_secs(30),
        || async {
            let open: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM upstream_calls WHERE outcome = 'in_flight'",
            )
            .fetch_one(pool)
            .await
            .unwrap();
            (count_jobs(pool, "deliver", "done").await == 2 && open == 0).then_some(())
        },
    )
    .await;
    // The declined application as if it had been evaluated 200 days ago.
    for table_and_column in [
        "upstream_calls SET called_at = called_at",
        "check_results SET finished_at = finished_at",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table_and_column} - interval '200 days' WHERE application_id = $1"
        )))
        .bind(ids[1])
        .execute(pool)
        .await
        .unwrap();
    }
    let before = usage(pool).await;
    // The retained window: the 100 days before today, and today (a test that runs
    // over midnight still finds its "recent" rows in it).
    let first_kept: String =
        sqlx::query_scalar("SELECT ((now() AT TIME ZONE 'UTC')::date - 100)::text")
            .fetch_one(pool)
            .await
            .unwrap();
    let (recent, old): (Vec<_>, Vec<_>) = before
        .keys()
        .cloned()
        .partition(|(day, _)| *day >= first_kept);
    assert!(!recent.is_empty() && !old.is_empty(), "{before:?}");
    assert!(
        old.iter().any(|k| before[k]["requests"].as_i64() > Some(0)),
        "the old day had audited requests: {before:?}"
    );

    let purged = batches(app.store.purge_upstream_calls(100, BATCH))
        .await
        .unwrap();
    assert!(purged.iter().sum::<u64>() > 0, "{purged:?}");
    let after = usage(pool).await;
    for k in &recent {
        assert_eq!(after[k], before[k], "a retained row of {} changed", k.1);
    }
    for k in &old {
        let b = &before[k];
        match after.get(k) {
            Some(a) => {
                for column in AUDIT_COLUMNS {
                    assert!(a[column].is_null(), "{k:?} {column} after the purge: {a}");
                }
                // What underwriting runs used is not purged.
                for column in ["answers", "cache_hits", "cache_hit_rate"] {
                    assert_eq!(a[column], b[column], "{k:?} {column}");
                }
            }
            // A day of an upstream known from the audit only (the decision's delivery
            // to Rails) is gone with its rows.
            None => assert_eq!(b["answers"].as_i64(), Some(0), "{k:?} vanished: {b}"),
        }
    }
    assert!(
        old.iter().any(|k| after.contains_key(k)),
        "the old day's answers are still reported: {after:?}"
    );
}

use crate::identity::service_role::{LOGIN, create_service_login};

#[tokio::test]
async fn the_service_role_purges_only_through_the_function() {
    // As tests/it/identity/service_role.rs: the login is cluster-wide, created once.
    let db = TestDb::migrated().await;
    let mut admin = sqlx::PgConnection::connect(&db.url).await.unwrap();
    create_service_login(&mut admin).await;
    let owner = store_on(&db.url).await;
    audit_row(&owner.pool, "old", "now() - interval '200 days'").await;
    audit_row(&owner.pool, "recent", "now() - interval '10 days'").await;
    job(&owner.pool, "done-old", "done", Some("8 days")).await;

    let (scheme, rest) = db.url.split_once("://").unwrap();
    let host = rest.split_once('@').map_or(rest, |(_, host)| host);
    let service = store_on(&format!("{scheme}://{LOGIN}@{host}")).await;
    assert_eq!(
        batches(service.purge_upstream_calls(90, BATCH))
            .await
            .unwrap(),
        [1]
    );
    assert_eq!(
        batches(service.purge_finished_jobs(DAY * 7, BATCH))
            .await
            .unwrap(),
        [1]
    );
    assert_eq!(endpoints_left(&owner.pool).await, ["recent"]);
    for statement in [
        "DELETE FROM upstream_calls",
        "UPDATE retention_horizons SET purged_before = now()",
        "INSERT INTO retention_horizons VALUES ('upstream_calls', now())",
    ] {
        let err = sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&service.pool)
            .await
            .expect_err(statement);
        let code = err
            .as_database_error()
            .and_then(|e| e.code())
            .map(|c| c.into_owned());
        assert_eq!(code.as_deref(), Some("42501"), "{statement}: {err}");
    }
    // Nor can it erase the recent audit by asking for less.
    assert!(
        batches(service.purge_upstream_calls(9, BATCH))
            .await
            .is_err()
    );
    assert_eq!(endpoints_left(&owner.pool).await, ["recent"]);
    // PUBLIC may not run the function: only the service role and the owner.
    let public_may: bool = sqlx::query_scalar(
        "SELECT has_function_privilege('public', 'purge_upstream_calls(int, int)', 'EXECUTE')",
    )
    .fetch_one(&owner.pool)
    .await
    .unwrap();
    assert!(!public_may);
}

#[tokio::test]
async fn a_server_purges_on_its_own_and_counts_the_rows() {
    let app = TestApp::spawn_with(|a| {
        a.retain_upstream_calls = Retention::For(DAY * 90);
        a.retain_finished_jobs = Retention::For(DAY);
        // The first purge comes within a second, then one every second.
        a.retention_interval = Duration::from_secs(1);
    })
    .await;
    let pool = &app.pool;
    for n in 0..3 {
        audit_row(pool, &format!("old-{n}"), "now() - interval '120 days'").await;
    }
    audit_row(pool, "recent", "now() - interval '80 days'").await;
    job(pool, "done-old", "done", Some("2 days")).await;
    job(pool, "done-recent", "done", Some("1 hour")).await;
    job(pool, "dead-old", "dead", Some("2 days")).await;

    eventually(
        "the server's purge of the old rows",
        Duration::from_secs(30),
        || async {
            (endpoints_left(pool).await == ["recent"]
                && jobs_left(pool).await == ["dead-old", "done-recent"])
            .then_some(())
        },
    )
    .await;
    // The counter is per process and other tests' servers share it: at least this
    // server's rows.
    let metrics = app.metrics().await;
    let counted = |table: &str| {
        let series = format!("dossier_retention_purged_rows_total{{table=\"{table}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&series))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {series} in:\n{metrics}"))
    };
    assert!(counted("upstream_calls") >= 3.0);
    assert!(counted("jobs") >= 1.0);
    assert!(metrics.contains("# HELP dossier_retention_purged_rows_total"));
}
