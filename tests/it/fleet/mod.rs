//! Fault tests with real processes: a fleet of `dossier serve` replicas on loopback that
//! share one PostgreSQL and one set of simulators (`dossier_devkit::fleet`), put through what
//! production puts them through: SIGKILL mid-work (a spot reclaim), a rolling restart
//! (SIGTERM one by one), a migration applied while they serve, PostgreSQL restarting.
//!
//! Every wait is on a condition (rows in the database, a health answer, a counter of
//! answered calls); the bounds only decide when to give up. The machine these run on
//! may have two cores, so the tests take turns (`SERIAL`). Replica logs go to a
//! temporary directory whose path is printed, and kept, when a test fails.

pub(crate) mod clients;
mod kill_9_during_submissions;
mod migration_while_serving;
mod postgres_restart;
mod rolling_restart;
mod sanctions_monitoring;

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dossier_devkit::fleet::{Fleet, FleetSpec};
use dossier_devkit::harness::eventually;
use dossier_devkit::sim::Simulators;
use sqlx::PgPool;
use tonic::Code;
use uuid::Uuid;

use clients::{Failure, Tally};

pub(crate) const BINARY: &str = env!("CARGO_BIN_EXE_dossier");
/// Deadline of every call the tests make (the `grpc-timeout` the server sees).
pub(crate) const CALL_DEADLINE: Duration = Duration::from_secs(10);
/// Longest the fleet may take to decide and deliver everything it accepted, including
/// taking over the jobs of a dead replica once their lease lapses.
const SETTLE_WITHIN: Duration = Duration::from_secs(120);
/// Upper bound on each whole test, so a stuck test fails instead of hanging CI.
const TEST_WITHIN: Duration = Duration::from_secs(420);

/// One test at a time: each starts several server processes, which is all two cores
/// can take. A tokio mutex does not poison, so one failed test does not fail the rest.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs `test` alone and within TEST_WITHIN.
pub(crate) async fn bounded<F: Future<Output = ()>>(name: &str, test: F) {
    let _turn = SERIAL.lock().await;
    let started = Instant::now();
    tokio::time::timeout(TEST_WITHIN, test)
        .await
        .unwrap_or_else(|_| panic!("{name} did not finish within {TEST_WITHIN:?}"));
    eprintln!("{name} took {:?}", started.elapsed());
}

/// The replicas' log directory: deleted when the test passes, kept (and its path
/// printed) when it fails.
pub(crate) struct Logs(Option<tempfile::TempDir>);

impl Logs {
    pub(crate) fn new(test: &str) -> Logs {
        let dir = tempfile::Builder::new()
            .prefix(&format!("dossier-fleet-{test}-"))
            .tempdir()
            .expect("create a log directory");
        eprintln!("replica logs: {}", dir.path().display());
        Logs(Some(dir))
    }

    pub(crate) fn path(&self) -> PathBuf {
        self.0.as_ref().expect("log dir").path().to_path_buf()
    }
}

impl Drop for Logs {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(dir) = self.0.take() {
                eprintln!("test failed; replica logs kept in {}", dir.keep().display());
            }
        }
    }
}

/// Loads the sample sanctions list, as a deploy does once (`dossier sanctions load`);
/// without a list every application is referred.
pub(crate) async fn load_sanctions(database_url: &str) {
    // Migrating again is a no-op on a migrated database.
    dossier_devkit::fleet::prepare_database(database_url)
        .await
        .expect("migrate and load the sample sanctions list");
}

/// Starts `replicas` serve processes on a migrated database, with a short job lease so
/// a dead replica's jobs are taken over quickly.
async fn start_fleet(database_url: &str, sims: &Simulators, replicas: usize, logs: &Logs) -> Fleet {
    let mut env = FleetSpec::local_env(database_url, sims);
    env.extend(
        [
            ("DOSSIER_JOB_LEASE", "2s"),
            ("DOSSIER_SHUTDOWN_GRACE", "10s"),
            ("DOSSIER_WORKERS", "4"),
            ("DOSSIER_DB_MAX_CONNECTIONS", "10"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    Fleet::start(FleetSpec {
        binary: BINARY.into(),
        replicas,
        base_port: 0,
        env,
        log_dir: Some(logs.path()),
    })
    .await
    .unwrap_or_else(|e| panic!("the fleet did not start: {e:#}"))
}

/// Waits until every application in `ids` has its decision and no job is left to run,
/// then checks: one decision per application (ever), one decision per application at
/// the Rails callback whose id is the stored decision's run id, and every delivery job
/// done. Fails at once on a second decision or a dead-lettered job.
pub(crate) async fn assert_decided_once_and_delivered(
    pool: &PgPool,
    sims: &Simulators,
    ids: &[Uuid],
) {
    assert!(!ids.is_empty(), "no application was accepted");
    let decided: Vec<(Uuid, Uuid)> = eventually(
        "every accepted application to be decided and every job finished",
        SETTLE_WITHIN,
        || async {
            let twice: Vec<(Uuid, i64)> = sqlx::query_as(
                "SELECT application_id, count(*) FROM decisions
                 GROUP BY application_id HAVING count(*) > 1",
            )
            .fetch_all(pool)
            .await
            .unwrap();
            assert!(twice.is_empty(), "decided more than once: {twice:?}");
            let dead: Vec<(i64, String, Option<String>)> =
                sqlx::query_as("SELECT id, kind, last_error FROM jobs WHERE state = 'dead'")
                    .fetch_all(pool)
                    .await
                    .unwrap();
            assert!(dead.is_empty(), "dead-lettered jobs: {dead:?}");
            let unfinished: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')",
            )
            .fetch_one(pool)
            .await
            .unwrap();
            let decided: Vec<(Uuid, Uuid)> = sqlx::query_as(
                "SELECT application_id, run_id FROM decisions WHERE application_id = ANY($1)",
            )
            .bind(ids)
            .fetch_all(pool)
            .await
            .unwrap();
            (unfinished == 0 && decided.len() == ids.len()).then_some(decided)
        },
    )
    .await;

    let deliver_jobs: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, count(*) FROM jobs WHERE kind = 'deliver' GROUP BY state")
            .fetch_all(pool)
            .await
            .unwrap();
    let all_decisions: i64 = sqlx::query_scalar("SELECT count(*) FROM decisions")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(
        deliver_jobs,
        vec![("done".to_owned(), all_decisions)],
        "one delivery job per decision, every one done"
    );

    let ledger = sims.deliveries();
    for (application, run_id) in &decided {
        let mine = ledger.for_application(*application);
        assert_eq!(
            mine.len(),
            1,
            "application {application}: Rails recorded {} decisions: {mine:#?}",
            mine.len()
        );
        assert_eq!(
            mine[0].decision.decision_id, *run_id,
            "application {application}: Rails has another decision than the stored one"
        );
    }
    assert_eq!(
        ledger.decisions.len() as i64,
        all_decisions,
        "Rails recorded exactly the stored decisions"
    );
    let redelivered = ledger.decisions.values().filter(|d| d.received > 1).count();
    eprintln!(
        "{} accepted applications decided once and delivered ({} decisions in all, {redelivered} delivered more than once and recognised by their idempotency key)",
        ids.len(),
        all_decisions
    );
}

pub(crate) fn assert_only_unavailable(tally: &Tally) {
    let other: Vec<Failure> = tally
        .failed_attempts()
        .into_iter()
        .filter(|f| f.code != Code::Unavailable)
        .collect();
    assert!(
        other.is_empty(),
        "calls failed with something other than UNAVAILABLE: {other:#?}\n{}",
        tally.summary()
    );
}
