//! The next release's migration applied while the replicas serve.

use dossier_devkit::harness::TestDb;
use dossier_devkit::sim::{SimConfig, Simulators};
use sqlx::{Connection as _, Executor as _};

use super::clients::{Load, NO_RETRY, Replicas};
use super::{
    BINARY, Logs, assert_decided_once_and_delivered, bounded, load_sanctions, start_fleet,
};

/// The next release's migration runs while three replicas serve: an additive column,
/// an index built CONCURRENTLY, the migration recorded in `_sqlx_migrations` as sqlx
/// records it, and the real `dossier migrate` run twice at the same time (sqlx's
/// advisory lock serialises them; both succeed beside a migration they do not know).
/// No call fails, not even once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_applied_while_three_replicas_serve_fails_no_call() {
    bounded(
        "a_migration_applied_while_three_replicas_serve_fails_no_call",
        migration_while_serving(),
    )
    .await;
}

async fn migration_while_serving() {
    let logs = Logs::new("migration");
    let db = TestDb::migrated().await;
    load_sanctions(&db.url).await;
    let sims = Simulators::start(SimConfig::default()).await.unwrap();
    let fleet = start_fleet(&db.url, &sims, 3, &logs).await;
    let replicas = Replicas::new(&fleet.endpoints());

    let load = Load::start(&replicas, 4, NO_RETRY, "migration");
    load.until_answered(30, None, "the load to get going").await;

    // Each step is followed by calls answered on the schema it left, so the load
    // provably runs across the whole migration.
    let next_release = async {
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        conn.execute("ALTER TABLE applications ADD COLUMN next_release_note text")
            .await
            .unwrap();
        load.until_answered(5, None, "calls answered after ALTER TABLE")
            .await;
        conn.execute(
            "CREATE INDEX CONCURRENTLY applications_next_release_note_idx
             ON applications (next_release_note) WHERE next_release_note IS NOT NULL",
        )
        .await
        .unwrap();
        load.until_answered(5, None, "calls answered after CREATE INDEX CONCURRENTLY")
            .await;
        // Recorded as sqlx records a migration, under a version this binary does
        // not have: `dossier migrate` and `dossier serve` must accept it.
        sqlx::query(
            "INSERT INTO _sqlx_migrations
                 (version, description, installed_on, success, checksum, execution_time)
             VALUES (20991231000001, 'next release note', now(), true, sha384('next release note'::bytea), 1)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    };
    let migrate = || async {
        tokio::process::Command::new(BINARY)
            .arg("migrate")
            .env("DATABASE_URL", &db.url)
            .kill_on_drop(true)
            .output()
            .await
            .expect("run dossier migrate")
    };
    let ((), first, second) = tokio::join!(next_release, migrate(), migrate());
    for out in [first, second] {
        assert!(
            out.status.success(),
            "dossier migrate failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let column: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT FROM information_schema.columns
                        WHERE table_name = 'applications' AND column_name = 'next_release_note')",
    )
    .fetch_one(&dossier_store::connect(&db.url, 1).await.unwrap())
    .await
    .unwrap();
    assert!(column);

    // Every replica keeps answering on the new schema.
    for i in 0..replicas.len() {
        load.until_answered(
            10,
            Some(i),
            &format!("replica {i} to answer after the migration"),
        )
        .await;
    }
    let tally = load.stop().await;
    eprintln!("{}", tally.summary());
    let failed = tally.failed_attempts();
    assert!(
        failed.is_empty(),
        "calls failed while the migration ran: {failed:#?}\n{}",
        tally.summary()
    );

    let pool = dossier_store::connect(&db.url, 2).await.unwrap();
    assert_decided_once_and_delivered(&pool, &sims, &tally.accepted()).await;
    pool.close().await;
    fleet.shutdown().await;
    sims.shutdown().await;
}
