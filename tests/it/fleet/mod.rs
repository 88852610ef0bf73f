//! Fault tests with real processes: a fleet of `dossier serve` replicas on loopback that
//! share one PostgreSQL and one set of simulators (`dossier_devkit::fleet`), put through what
//! production puts them through: SIGKILL mid-work (a spot reclaim), a rolling restart
//! (SIGTERM one by one), a migration applied while they serve, PostgreSQL restarting.
//!
//! Every wait is on a condition (rows in the database, a health answer, a counter of
//! answered calls); the bounds only decide when to give up. The machine these run on
//! may have two cores, so the tests take turns (`SERIAL`). Replica logs go to a
//! temporary directory whose path is printed, and kept, when a test fails.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dossier_devkit::devdb::PrivatePostgres;
use dossier_devkit::fleet::{Fleet, FleetSpec};
use dossier_devkit::harness::{TestDb, eventually};
use dossier_devkit::sim::{SimConfig, Simulators};
use dossier_service::proto;
use dossier_service::proto::data_service_client::DataServiceClient;
use dossier_service::proto::underwriting_service_client::UnderwritingServiceClient;
use futures::{FutureExt as _, StreamExt as _};
use rand::Rng;
use sqlx::{Connection as _, Executor as _, PgPool};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use uuid::Uuid;

const BINARY: &str = env!("CARGO_BIN_EXE_dossier");
/// Deadline of every call the tests make (the `grpc-timeout` the server sees).
const CALL_DEADLINE: Duration = Duration::from_secs(10);
/// Longest the fleet may take to decide and deliver everything it accepted, including
/// taking over the jobs of a dead replica once their lease lapses.
const SETTLE_WITHIN: Duration = Duration::from_secs(120);
/// Upper bound on each whole test, so a stuck test fails instead of hanging CI.
const TEST_WITHIN: Duration = Duration::from_secs(420);

/// One test at a time: each starts several server processes, which is all two cores
/// can take. A tokio mutex does not poison, so one failed test does not fail the rest.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs `test` alone and within TEST_WITHIN.
async fn bounded<F: Future<Output = ()>>(name: &str, test: F) {
    let _turn = SERIAL.lock().await;
    let started = Instant::now();
    tokio::time::timeout(TEST_WITHIN, test)
        .await
        .unwrap_or_else(|_| panic!("{name} did not finish within {TEST_WITHIN:?}"));
    eprintln!("{name} took {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------------
// Fleet set-up
// ---------------------------------------------------------------------------------

/// The replicas' log directory: deleted when the test passes, kept (and its path
/// printed) when it fails.
struct Logs(Option<tempfile::TempDir>);

impl Logs {
    fn new(test: &str) -> Logs {
        let dir = tempfile::Builder::new()
            .prefix(&format!("dossier-fleet-{test}-"))
            .tempdir()
            .expect("create a log directory");
        eprintln!("replica logs: {}", dir.path().display());
        Logs(Some(dir))
    }

    fn path(&self) -> PathBuf {
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
async fn load_sanctions(database_url: &str) {
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

// ---------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------

/// One lazily connected channel per replica, picked round robin by the caller, rather
/// than one `Channel::balance_list` over all of them. The balanced channel picks by
/// power of two choices on in-flight load and keeps an endpoint whose connection was
/// refused in its set (tonic's lazy reconnect reports the refusal from the call, not
/// from readiness), so a stopped replica answers every call at once and looks like the
/// least loaded one; and a retry through it cannot be sent to *another* replica. With a
/// channel per replica the test knows which replica answered every attempt, and a
/// retry goes to the next replica, as a gRPC client's round_robin policy does when a
/// subchannel fails.
#[derive(Clone)]
struct Replicas {
    channels: Arc<Vec<Channel>>,
}

impl Replicas {
    fn new(endpoints: &[String]) -> Replicas {
        let channels = endpoints
            .iter()
            .map(|e| {
                Endpoint::from_shared(e.clone())
                    .expect("endpoint URL")
                    .connect_timeout(Duration::from_secs(1))
                    .tcp_nodelay(true)
                    .connect_lazy()
            })
            .collect();
        Replicas {
            channels: Arc::new(channels),
        }
    }

    fn len(&self) -> usize {
        self.channels.len()
    }

    fn channel(&self, i: usize) -> Channel {
        self.channels[i].clone()
    }
}

/// gRPC's retry policy (gRFC A6): which codes to retry, how many attempts, and the
/// exponential backoff between them (the delay before retry n is uniformly random in
/// [0, min(initial * multiplier^(n-1), max))).
#[derive(Clone, Copy, Debug)]
struct RetryPolicy {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    multiplier: u32,
}

/// `retryableStatusCodes: [UNAVAILABLE], maxAttempts: 5, initialBackoff: 0.1s,
/// maxBackoff: 1s, backoffMultiplier: 2`: what a well-behaved client is configured with.
const STANDARD_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 5,
    initial_backoff: Duration::from_millis(100),
    max_backoff: Duration::from_secs(1),
    multiplier: 2,
};

/// One attempt per call: every failure is the caller's to see.
const NO_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 1,
    ..STANDARD_RETRY
};

/// A failed attempt (or call), with where and how it failed.
#[derive(Debug, Clone)]
struct Failure {
    replica: usize,
    method: &'static str,
    code: Code,
    message: String,
    /// How long the attempt took (for the failure report only).
    took: Duration,
}

/// What a load has seen: answered attempts per replica, every failed attempt, every
/// call that failed after its retries, and the applications accepted.
struct Tally {
    ok_by_replica: Vec<AtomicU64>,
    failed_attempts: Mutex<Vec<Failure>>,
    failed_calls: Mutex<Vec<Failure>>,
    accepted: Mutex<Vec<Uuid>>,
}

impl Tally {
    fn new(replicas: usize) -> Tally {
        Tally {
            ok_by_replica: (0..replicas).map(|_| AtomicU64::new(0)).collect(),
            failed_attempts: Mutex::default(),
            failed_calls: Mutex::default(),
            accepted: Mutex::default(),
        }
    }

    fn ok(&self) -> u64 {
        self.ok_by_replica
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    fn ok_at(&self, replica: usize) -> u64 {
        self.ok_by_replica[replica].load(Ordering::Relaxed)
    }

    fn accepted(&self) -> Vec<Uuid> {
        self.accepted.lock().unwrap().clone()
    }

    fn failed_attempts(&self) -> Vec<Failure> {
        self.failed_attempts.lock().unwrap().clone()
    }

    fn failed_calls(&self) -> Vec<Failure> {
        self.failed_calls.lock().unwrap().clone()
    }

    /// Failed attempts grouped by (method, code, message), with the replicas they were
    /// sent to and the longest one, for reports.
    fn summary(&self) -> String {
        type Group = (usize, std::collections::BTreeSet<usize>, Duration);
        let mut groups = std::collections::BTreeMap::<(&str, String, String), Group>::new();
        for f in self.failed_attempts() {
            let g = groups
                .entry((f.method, format!("{:?}", f.code), f.message.clone()))
                .or_default();
            g.0 += 1;
            g.1.insert(f.replica);
            g.2 = g.2.max(f.took);
        }
        let mut s = format!(
            "{} answered attempts, {} failed attempts, {} failed calls",
            self.ok(),
            self.failed_attempts.lock().unwrap().len(),
            self.failed_calls.lock().unwrap().len()
        );
        for ((method, code, message), (n, replicas, longest)) in groups {
            s.push_str(&format!(
                "\n  {n:>5} x {method} {code} (replicas {replicas:?}, longest {longest:?}): {message}"
            ));
        }
        s
    }
}

/// Makes one call under `policy`: the first attempt goes to replica `first`, and after
/// an UNAVAILABLE, once the backoff has passed, the next attempt goes to the replica
/// after it. Every attempt is tallied.
async fn call_from<T, F, Fut>(
    first: usize,
    replicas: &Replicas,
    tally: &Tally,
    policy: RetryPolicy,
    method: &'static str,
    mut attempt: F,
) -> Result<T, Status>
where
    F: FnMut(Channel) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, Status>>,
{
    let mut replica = first;
    let mut backoff = policy.initial_backoff;
    let mut n = 1;
    loop {
        let started = Instant::now();
        match attempt(replicas.channel(replica)).await {
            Ok(response) => {
                tally.ok_by_replica[replica].fetch_add(1, Ordering::Relaxed);
                return Ok(response.into_inner());
            }
            Err(status) => {
                let status = as_grpc_reports_it(status);
                let failure = Failure {
                    replica,
                    method,
                    code: status.code(),
                    message: status.message().to_owned(),
                    took: started.elapsed(),
                };
                tally.failed_attempts.lock().unwrap().push(failure.clone());
                if status.code() != Code::Unavailable || n >= policy.max_attempts {
                    tally.failed_calls.lock().unwrap().push(failure);
                    return Err(status);
                }
                let pause = rand::thread_rng().gen_range(Duration::ZERO..backoff);
                tokio::time::sleep(pause).await;
                backoff = (backoff * policy.multiplier).min(policy.max_backoff);
                replica = (replica + 1) % replicas.len();
                n += 1;
            }
        }
    }
}

/// tonic 0.14 (over hyper 1) reports a request that never left the client, because the
/// HTTP/2 connection it was queued on closed after the server's GOAWAY, as CANCELLED
/// "operation was canceled", its source `hyper::Error(Canceled, "connection closed")`
/// or `(Canceled, "connection was not ready")` (seen and worked around by others, e.g.
/// s2-streamstore/s2-sdk-rust#149). gRPC's own clients (grpc-core, grpc-java, grpc-go,
/// which the lender's Ruby and Scala services use) report an RPC that never left the
/// client as UNAVAILABLE and retry it transparently (gRFC A6). This translates exactly
/// that case, identified by its source, to UNAVAILABLE, so the test judges the server
/// and not tonic's mapping; any other CANCELLED (our own deadline is one:
/// "Timeout expired") stays CANCELLED and fails the test.
fn as_grpc_reports_it(status: Status) -> Status {
    if status.code() != Code::Cancelled {
        return status;
    }
    let mut source = std::error::Error::source(&status);
    while let Some(e) = source {
        if format!("{e:?}").contains("hyper::Error(Canceled") {
            return Status::unavailable(format!(
                "never sent: its connection closed after GOAWAY (tonic says CANCELLED: {}; {e:?})",
                status.message()
            ));
        }
        source = e.source();
    }
    status
}

fn with_deadline<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(CALL_DEADLINE);
    request
}

/// SubmitApplication of the Rails application `rails_id`, with the id as the
/// idempotency key (so a retried call is a replay, not a second application).
fn submission(rails_id: &str) -> tonic::Request<proto::SubmitApplicationRequest> {
    with_deadline(proto::SubmitApplicationRequest {
        idempotency_key: rails_id.to_owned(),
        source: Some(
            proto::submit_application_request::Source::RailsApplicationId(rails_id.to_owned()),
        ),
    })
}

/// Submits the Rails application `rails_id`, first to replica `first`.
async fn submit(
    replicas: &Replicas,
    first: usize,
    tally: &Tally,
    policy: RetryPolicy,
    rails_id: &str,
) -> Result<Uuid, Status> {
    let response = call_from(
        first,
        replicas,
        tally,
        policy,
        "SubmitApplication",
        |channel| async {
            UnderwritingServiceClient::new(channel)
                .submit_application(submission(rails_id))
                .await
        },
    )
    .await?;
    let id: Uuid = response.application_id.parse().expect("application id");
    tally.accepted.lock().unwrap().push(id);
    Ok(id)
}

fn property_address() -> proto::Address {
    dossier_devkit::harness::example_application("approve")
        .property
        .and_then(|p| p.address)
        .expect("the approve example has an address")
}

/// Steady load until stopped: each task alternates SubmitApplication (a new Rails
/// application each time: a write, a job) and GetPropertyProfile (an upstream look-up
/// through the caches), back to back.
struct Load {
    stop: CancellationToken,
    tasks: tokio::task::JoinSet<()>,
    tally: Arc<Tally>,
}

impl Load {
    fn start(replicas: &Replicas, tasks: usize, policy: RetryPolicy, prefix: &str) -> Load {
        let stop = CancellationToken::new();
        let tally = Arc::new(Tally::new(replicas.len()));
        let counter = Arc::new(AtomicU64::new(0));
        let address = property_address();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..tasks {
            let (stop, tally, counter, replicas, address) = (
                stop.clone(),
                tally.clone(),
                counter.clone(),
                replicas.clone(),
                address.clone(),
            );
            let prefix = prefix.to_owned();
            set.spawn(async move {
                while !stop.is_cancelled() {
                    // Pairs of calls (one of each kind) go to the replicas in turn.
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let first = usize::try_from(n / 2).unwrap() % replicas.len();
                    if n % 2 == 0 {
                        let id = format!("{prefix}-{n}");
                        let _ = submit(&replicas, first, &tally, policy, &id).await;
                    } else {
                        let _ = call_from(
                            first,
                            &replicas,
                            &tally,
                            policy,
                            "GetPropertyProfile",
                            |channel| {
                                let address = address.clone();
                                async move {
                                    DataServiceClient::new(channel)
                                        .get_property_profile(with_deadline(
                                            proto::GetPropertyProfileRequest {
                                                address: Some(address),
                                                ..Default::default()
                                            },
                                        ))
                                        .await
                                }
                            },
                        )
                        .await;
                    }
                }
            });
        }
        Load {
            stop,
            tasks: set,
            tally,
        }
    }

    /// Waits until `more` further attempts have been answered (by any replica, or by
    /// replica `only`).
    async fn until_answered(&self, more: u64, only: Option<usize>, what: &str) {
        let count = |t: &Tally| match only {
            Some(i) => t.ok_at(i),
            None => t.ok(),
        };
        let target = count(&self.tally) + more;
        eventually(what, Duration::from_secs(60), || async {
            (count(&self.tally) >= target).then_some(())
        })
        .await;
    }

    /// Stops the load and waits for calls in flight to finish.
    async fn stop(mut self) -> Arc<Tally> {
        self.stop.cancel();
        while let Some(joined) = self.tasks.join_next().await {
            joined.expect("a load task panicked");
        }
        self.tally
    }
}

async fn health(channel: Channel) -> Option<ServingStatus> {
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    request.set_timeout(Duration::from_secs(2));
    HealthClient::new(channel)
        .check(request)
        .await
        .ok()
        .map(|r| r.into_inner().status())
}

// ---------------------------------------------------------------------------------
// Outcome checks
// ---------------------------------------------------------------------------------

/// Waits until every application in `ids` has its decision and no job is left to run,
/// then checks: one decision per application (ever), one decision per application at
/// the Rails callback whose id is the stored decision's run id, and every delivery job
/// done. Fails at once on a second decision or a dead-lettered job.
async fn assert_decided_once_and_delivered(pool: &PgPool, sims: &Simulators, ids: &[Uuid]) {
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

fn assert_only_unavailable(tally: &Tally) {
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

// ---------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------

/// A spot reclaim: SIGKILL one of three replicas while 300 submissions are in flight.
/// Whatever a replica acknowledged is decided exactly once and delivered to Rails
/// exactly once (per idempotency key), the killed replica's leased jobs taken over by
/// the others when their lease lapses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_submissions_loses_nothing_and_decides_once() {
    bounded(
        "kill_9_during_submissions_loses_nothing_and_decides_once",
        kill_9(),
    )
    .await;
}

async fn kill_9() {
    const SUBMISSIONS: usize = 300;
    const KILL_AFTER_OK: usize = 100;
    const VICTIM: usize = 1;
    let logs = Logs::new("kill9");
    let db = TestDb::migrated().await;
    load_sanctions(&db.url).await;
    let sims = Simulators::start(SimConfig::default()).await.unwrap();
    let mut fleet = start_fleet(&db.url, &sims, 3, &logs).await;
    let replicas = Replicas::new(&fleet.endpoints());
    let tally = Tally::new(3);

    // Submissions go to replica n % 3, 16 at a time; once 100 have been answered,
    // the victim is killed with the rest in flight.
    let (answered, mut answered_rx) = tokio::sync::watch::channel(0usize);
    let submissions = futures::stream::iter(0..SUBMISSIONS)
        .map(|n| {
            let (replicas, tally, answered) = (&replicas, &tally, &answered);
            async move {
                let rails_id = format!("fleet-{n}");
                let result = call_from(
                    n % 3,
                    replicas,
                    tally,
                    NO_RETRY,
                    "SubmitApplication",
                    |channel| {
                        let request = submission(&rails_id);
                        async move {
                            UnderwritingServiceClient::new(channel)
                                .submit_application(request)
                                .await
                        }
                    },
                )
                .await;
                if result.is_ok() {
                    answered.send_modify(|a| *a += 1);
                }
                (n, result)
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>();
    // Killed once 100 submissions were answered and it holds a running job, so a
    // lease is left to lapse; the jobs it held at that moment are its orphans.
    let pool = dossier_store::connect(&db.url, 2).await.unwrap();
    // Worker names (jobs.locked_by) are "<replica name>:<pid>/<n>".
    let victim_prefix = format!("{}:", fleet.replicas()[VICTIM].name);
    let victim_jobs = format!("{victim_prefix}%");
    let running_on_victim = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT id FROM jobs WHERE state = 'running' AND locked_by LIKE $1",
        )
        .bind(&victim_jobs)
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    let killer = async {
        answered_rx
            .wait_for(|a| *a >= KILL_AFTER_OK)
            .await
            .expect("submissions running");
        eventually(
            "the victim to be running a job",
            Duration::from_secs(60),
            || async { Some(running_on_victim().await).filter(|jobs| !jobs.is_empty()) },
        )
        .await;
        let pid = fleet.replicas()[VICTIM].pid();
        fleet.kill(VICTIM).await.unwrap();
        let orphans = running_on_victim().await;
        eprintln!(
            "killed replica {VICTIM} (pid {pid:?}) after {KILL_AFTER_OK} answered submissions, holding jobs {orphans:?}"
        );
        orphans
    };
    let (results, orphans) = tokio::join!(submissions, killer);

    let accepted: Vec<Uuid> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .map(|r| r.application_id.parse().unwrap())
        .collect();
    let refused: Vec<usize> = results
        .iter()
        .filter(|(_, r)| r.is_err())
        .map(|(n, _)| *n)
        .collect();
    eprintln!(
        "{} submissions answered OK, {} failed (all sent to the killed replica: {})\n{}",
        accepted.len(),
        refused.len(),
        refused.iter().all(|n| n % 3 == VICTIM),
        tally.summary()
    );
    assert!(
        refused.iter().all(|n| n % 3 == VICTIM),
        "only submissions to the killed replica may fail: {refused:?}\n{}",
        tally.summary()
    );

    assert_decided_once_and_delivered(&pool, &sims, &accepted).await;
    // What the victim held was finished by another replica after its lease lapsed.
    let taken_over: Vec<(i64, String, i32, String)> = sqlx::query_as(
        "SELECT id, state, attempts, coalesce(locked_by, '') FROM jobs WHERE id = ANY($1)",
    )
    .bind(&orphans)
    .fetch_all(&pool)
    .await
    .unwrap();
    eprintln!("the victim's jobs ended as {taken_over:?}");
    for (id, state, attempts, locked_by) in &taken_over {
        assert!(
            state == "done" && *attempts >= 2 && !locked_by.starts_with(&victim_prefix),
            "job {id} held by the killed replica was not taken over: {state}, {attempts} attempts, {locked_by}"
        );
    }

    // The replica comes back (as its ReplicaSet would start it) and serves.
    fleet.start_replica(VICTIM).await.unwrap();
    let back = UnderwritingServiceClient::new(replicas.channel(VICTIM))
        .submit_application(submission("fleet-after-restart"))
        .await
        .expect("the restarted replica accepts submissions");
    let back_id: Uuid = back.into_inner().application_id.parse().unwrap();
    let mut all = accepted.clone();
    all.push(back_id);
    assert_decided_once_and_delivered(&pool, &sims, &all).await;

    pool.close().await;
    fleet.shutdown().await;
    sims.shutdown().await;
}

/// A rolling deploy: SIGTERM each of three replicas in turn under steady load, start it
/// again, next one. A call may fail only with UNAVAILABLE (refused connection, GOAWAY),
/// and a client with gRPC's standard retry policy sees no failure at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_under_load_fails_no_call_a_retrying_client_would_see() {
    bounded(
        "rolling_restart_under_load_fails_no_call_a_retrying_client_would_see",
        rolling_restart(),
    )
    .await;
}

async fn rolling_restart() {
    let logs = Logs::new("rolling");
    let db = TestDb::migrated().await;
    load_sanctions(&db.url).await;
    let sims = Simulators::start(SimConfig::default()).await.unwrap();
    let mut fleet = start_fleet(&db.url, &sims, 3, &logs).await;
    let replicas = Replicas::new(&fleet.endpoints());

    let load = Load::start(&replicas, 4, STANDARD_RETRY, "rolling");
    load.until_answered(30, None, "the load to get going").await;
    for i in 0..fleet.replicas().len() {
        let status = fleet.terminate(i).await.unwrap();
        assert!(
            status.success(),
            "replica {i} exited with {status} on SIGTERM"
        );
        fleet.start_replica(i).await.unwrap();
        // The restarted replica is back in rotation before the next one goes.
        load.until_answered(
            10,
            Some(i),
            &format!("replica {i} to answer again after its restart"),
        )
        .await;
    }
    load.until_answered(30, None, "the load to continue after the last restart")
        .await;
    let tally = load.stop().await;
    eprintln!("{}", tally.summary());

    assert_only_unavailable(&tally);
    let failed_calls = tally.failed_calls();
    assert!(
        failed_calls.is_empty(),
        "a client retrying UNAVAILABLE (5 attempts, exponential backoff, next replica) still saw failures: {failed_calls:#?}\n{}",
        tally.summary()
    );

    let pool = dossier_store::connect(&db.url, 2).await.unwrap();
    assert_decided_once_and_delivered(&pool, &sims, &tally.accepted()).await;
    pool.close().await;
    fleet.shutdown().await;
    sims.shutdown().await;
}

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

/// PostgreSQL restarts (`pg_ctl stop -m fast`, start again on the same port) under
/// load. While it is down, calls fail with UNAVAILABLE within their deadline and health
/// turns NOT_SERVING; once it is back, health turns SERVING by itself and everything a
/// replica accepted, before or after, is decided once and delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_under_load_fails_cleanly_and_recovers() {
    bounded(
        "postgres_restart_under_load_fails_cleanly_and_recovers",
        postgres_restart(),
    )
    .await;
}

async fn postgres_restart() {
    let logs = Logs::new("pgrestart");
    let pg = tokio::task::spawn_blocking(PrivatePostgres::start)
        .await
        .unwrap()
        .expect("start a private PostgreSQL");
    let url = pg.url();
    dossier_store::migrate(&url).await.unwrap();
    load_sanctions(&url).await;
    let sims = Simulators::start(SimConfig::default()).await.unwrap();
    let fleet = start_fleet(&url, &sims, 2, &logs).await;
    let replicas = Replicas::new(&fleet.endpoints());

    let load = Load::start(&replicas, 2, NO_RETRY, "pg");
    load.until_answered(20, None, "the load to get going").await;
    let accepted_before = load.tally.accepted().len();

    // Calls in flight inside PostgreSQL when it goes down: the test holds a lock
    // that makes INSERTs into applications wait, sends one submission to each
    // replica, and halts PostgreSQL once they are waiting on it.
    let mut blocker = sqlx::PgConnection::connect(&url).await.unwrap();
    blocker.execute("BEGIN").await.unwrap();
    blocker
        .execute("LOCK TABLE applications IN SHARE ROW EXCLUSIVE MODE")
        .await
        .unwrap();
    let in_flight: Vec<_> = (0..replicas.len())
        .map(|i| {
            let mut client = UnderwritingServiceClient::new(replicas.channel(i));
            tokio::spawn(async move {
                client
                    .submit_application(submission(&format!("pg-in-flight-{i}")))
                    .await
            })
        })
        .collect();
    let watcher = dossier_store::connect(&url, 1).await.unwrap();
    let expected = i64::try_from(replicas.len()).unwrap();
    eventually(
        "the submissions to wait on the lock inside PostgreSQL",
        Duration::from_secs(30),
        || async {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO applications%'",
            )
            .fetch_one(&watcher)
            .await
            .unwrap();
            (waiting >= expected).then_some(())
        },
    )
    .await;
    watcher.close().await;

    let pg = tokio::task::spawn_blocking(move || {
        let mut pg = pg;
        pg.halt().map(|()| pg)
    })
    .await
    .unwrap()
    .expect("halt PostgreSQL");
    eprintln!("PostgreSQL halted");
    drop(blocker);
    // A transaction in flight at a fast shutdown may still commit (the lock holder
    // dies first, a waiter can get the lock and commit before it handles its own
    // termination): then the call succeeded and the application must be decided like
    // any other. Otherwise it failed, with UNAVAILABLE and nothing else.
    let mut accepted_in_flight = Vec::new();
    for (i, call) in in_flight.into_iter().enumerate() {
        match call.await.unwrap() {
            Ok(r) => {
                accepted_in_flight.push(r.into_inner().application_id.parse::<Uuid>().unwrap())
            }
            Err(status) => assert_eq!(
                status.code(),
                Code::Unavailable,
                "SubmitApplication on replica {i}, in flight inside PostgreSQL when it went down: {}",
                status.message()
            ),
        }
    }
    for i in 0..replicas.len() {
        eventually(
            &format!("replica {i} to report NOT_SERVING"),
            Duration::from_secs(30),
            || async {
                (health(replicas.channel(i)).await == Some(ServingStatus::NotServing)).then_some(())
            },
        )
        .await;
    }
    // Calls that need the database fail with UNAVAILABLE, within their deadline
    // (a write and a read on every replica, at the same time).
    let known = load.tally.accepted()[0];
    let probes = (0..replicas.len()).flat_map(|i| {
        let channel = replicas.channel(i);
        let write = {
            let mut client = UnderwritingServiceClient::new(channel.clone());
            async move {
                let r = client
                    .submit_application(submission(&format!("pg-while-down-{i}")))
                    .await;
                (i, "SubmitApplication", r.map(|_| ()))
            }
            .boxed()
        };
        let read = {
            let mut client = UnderwritingServiceClient::new(channel);
            async move {
                let r = client
                    .get_report(with_deadline(proto::GetReportRequest {
                        application_id: known.to_string(),
                    }))
                    .await;
                (i, "GetReport", r.map(|_| ()))
            }
            .boxed()
        };
        [write, read]
    });
    for (i, method, result) in futures::future::join_all(probes).await {
        let status = result.expect_err("no call needing the database succeeds while it is down");
        assert_eq!(
            status.code(),
            Code::Unavailable,
            "{method} on replica {i} while PostgreSQL is down: {}",
            status.message()
        );
    }

    let pg = tokio::task::spawn_blocking(move || {
        let mut pg = pg;
        pg.resume().map(|()| pg)
    })
    .await
    .unwrap()
    .expect("start PostgreSQL again");
    eprintln!("PostgreSQL started again");
    for i in 0..replicas.len() {
        eventually(
            &format!("replica {i} to report SERVING again"),
            Duration::from_secs(60),
            || async {
                (health(replicas.channel(i)).await == Some(ServingStatus::Serving)).then_some(())
            },
        )
        .await;
    }
    let target = load.tally.accepted().len() + 10;
    eventually(
        "submissions to be accepted again",
        Duration::from_secs(60),
        || async { (load.tally.accepted().len() >= target).then_some(()) },
    )
    .await;
    let tally = load.stop().await;
    eprintln!(
        "{} accepted before the halt, {} in all\n{}",
        accepted_before,
        tally.accepted().len(),
        tally.summary()
    );
    assert_only_unavailable(&tally);

    let pool = dossier_store::connect(&url, 2).await.unwrap();
    let mut accepted = tally.accepted();
    accepted.extend(accepted_in_flight);
    assert_decided_once_and_delivered(&pool, &sims, &accepted).await;
    pool.close().await;
    fleet.shutdown().await;
    sims.shutdown().await;
    tokio::task::spawn_blocking(move || drop(pg)).await.unwrap();
}
