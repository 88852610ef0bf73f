//! One replica of two cut off from PostgreSQL while both serve.

use std::time::{Duration, Instant};

use dossier_devkit::fleet::Placement;
use dossier_devkit::harness::{TestDb, eventually};
use dossier_devkit::sim::{Behaviour, SimConfig, Simulators, Upstream};
use dossier_service::proto;
use dossier_service::proto::underwriting_service_client::UnderwritingServiceClient;
use sqlx::PgPool;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use uuid::Uuid;

use super::{Host, namespaces_or_skip, replica_log, start_placed};
use crate::fleet::clients::{Load, NO_RETRY, Replicas, health, submission, with_deadline};
use crate::fleet::{
    CALL_DEADLINE, Logs, assert_decided_once_and_delivered, bounded, load_sanctions,
};

/// The bound the issue sets for turning NOT_SERVING: one readiness probe period, at
/// the kubelet's default (`periodSeconds: 10`). Dossier checks its database every
/// second, so it is expected well within; the figure is printed.
const PROBE_PERIOD: Duration = Duration::from_secs(10);
/// How far past its deadline a call may end before it counts as hung: generous, since
/// the deadline is enforced by the server and the answer still has to travel back on a
/// loaded machine.
const DEADLINE_SLACK: Duration = Duration::from_secs(5);
/// Longest the other replica may take to finish what the victim held. Its job leases
/// lapse after 2 s, but the takeover then waits on what the victim still holds inside
/// PostgreSQL: row locks of a transaction it could not finish, until the server ends
/// the session (idle in transaction for 10 s, `dossier_store::connect`), and fetch
/// leases on the questions it was asking, until they lapse (a worker's question has a
/// 30 s budget). So up to about 35 s, with a margin for a loaded machine.
const TAKEOVER_WITHIN: Duration = Duration::from_secs(75);
/// Longest the healed replica may take to accept a submission again. Health turns
/// SERVING as soon as a fresh connection answers, but the pooled connections that
/// stalled in the cut resume (or find their session ended) only at their next TCP
/// retransmission, whose back-off grew during the cut; until then the pool may have no
/// connection to give, and calls get UNAVAILABLE.
const SERVES_AGAIN_WITHIN: Duration = Duration::from_secs(120);

/// Replica 1 of 2, in a namespace of its own, loses its link to PostgreSQL (packets
/// dropped, nothing reset) under a steady load of submissions and look-ups. It turns
/// NOT_SERVING within one probe period while the other stays SERVING; calls that need
/// the database answer UNAVAILABLE within their deadline (never INTERNAL, never a
/// hang); the jobs it held are taken over by the other replica while it is still cut
/// off; once the link is back it turns SERVING by itself and accepts a submission; and
/// every application either replica accepted is decided once and delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_cut_off_from_postgres_fails_over_and_recovers() {
    const NAME: &str = "replica_cut_off_from_postgres_fails_over_and_recovers";
    if namespaces_or_skip(NAME) {
        bounded(NAME, db_cut()).await;
    }
}

async fn db_cut() {
    const VICTIM: usize = 1;
    let logs = Logs::new("dbcut");
    let db = TestDb::migrated().await;
    load_sanctions(&db.url).await;
    let sims = Simulators::start(SimConfig::default()).await.unwrap();
    // Declared before the fleet, so dropped after it: the replica inside is stopped
    // before its namespace goes (Namespace's drop kills anything left inside anyway).
    let host = Host::new(&db.url, &sims).await;
    let fleet = start_placed(
        &db.url,
        &sims,
        &logs,
        vec![Placement::default(), host.placement(&db.url)],
        &[],
    )
    .await;
    let victim_name = fleet.replicas()[VICTIM].name.clone();
    eprintln!(
        "replica 0 on loopback, {victim_name} in namespace {} at {}",
        host.ns.name(),
        fleet.replicas()[VICTIM].grpc
    );
    let replicas = Replicas::new(&fleet.endpoints());
    let pool = dossier_store::connect(&db.url, 2).await.unwrap();

    // Paced (4 tasks, a call each per 500 ms: ~4 submissions a second): enough to keep
    // both replicas busy, little enough that two cores decide all of it in time.
    let load = Load::paced(&replicas, 4, NO_RETRY, "cut", Duration::from_millis(500));
    load.until_answered(20, Some(VICTIM), "the victim to answer calls")
        .await;

    // The victim must hold jobs when it is cut off. Evaluations ask the valuation
    // vendor, made slow for a moment so that a job the victim claimed is still running
    // at the cut (what it holds then can only be finished by someone else).
    sims.set_behaviour(
        Upstream::Valuation,
        Behaviour {
            latency_ms: 2000,
            ..Behaviour::default()
        },
    );
    let victim_workers = format!("{victim_name}:%");
    eventually(
        "the victim to be running a job",
        Duration::from_secs(60),
        || async { Some(running_on(&pool, &victim_workers).await).filter(|j| !j.is_empty()) },
    )
    .await;
    host.ns.cut("db").unwrap();
    let cut_at = Instant::now();
    // Nothing the victim sends reaches PostgreSQL any more: what is still running under
    // its name is orphaned.
    let orphans = running_on(&pool, &victim_workers).await;
    sims.set_behaviour(Upstream::Valuation, Behaviour::default());
    let failed_before_cut = load.tally.failed_attempts().len();
    eprintln!("cut {victim_name} off from PostgreSQL, holding jobs {orphans:?}");
    assert!(!orphans.is_empty(), "the victim held no job at the cut");

    eventually("the victim to report NOT_SERVING", PROBE_PERIOD, || async {
        (health(replicas.channel(VICTIM)).await == Some(ServingStatus::NotServing)).then_some(())
    })
    .await;
    let not_serving_after = cut_at.elapsed();
    eprintln!("{victim_name} reported NOT_SERVING {not_serving_after:?} after the cut");
    assert_eq!(
        health(replicas.channel(0)).await,
        Some(ServingStatus::Serving),
        "the replica that can reach PostgreSQL stays SERVING"
    );
    assert!(
        replica_log(&logs, &victim_name).contains("database unreachable: NOT_SERVING"),
        "the victim logs why it is NOT_SERVING"
    );

    // Calls that need the database, sent now, fail with UNAVAILABLE within their
    // deadline: a write and a read at the same time.
    let known = load.tally.accepted()[0];
    let probes_started = Instant::now();
    let (write, read) = tokio::join!(
        answered_within_deadline(async {
            UnderwritingServiceClient::new(replicas.channel(VICTIM))
                .submit_application(submission("cut-while-partitioned"))
                .await
                .map(|_| ())
        }),
        answered_within_deadline(async {
            UnderwritingServiceClient::new(replicas.channel(VICTIM))
                .get_report(with_deadline(proto::GetReportRequest {
                    application_id: known.to_string(),
                }))
                .await
                .map(|_| ())
        }),
    );
    for (method, result) in [("SubmitApplication", write), ("GetReport", read)] {
        let status = result.expect_err("no call needing the database succeeds while cut off");
        assert_eq!(
            status.code(),
            Code::Unavailable,
            "{method} on the cut-off replica: {}",
            status.message()
        );
    }
    eprintln!(
        "SubmitApplication and GetReport on the cut-off replica: UNAVAILABLE after {:?}",
        probes_started.elapsed()
    );

    // Its jobs are taken over once their lease lapses, while it is still cut off.
    let takeover = eventually(
        "the victim's jobs to be finished by the other replica",
        TAKEOVER_WITHIN + Duration::from_secs(5),
        || async {
            let jobs = jobs(&pool, &orphans).await;
            jobs.iter()
                .all(|(_, state, _, locked_by)| {
                    state == "done" && !locked_by.starts_with(&victim_name)
                })
                .then_some(jobs)
        },
    );
    let Ok(taken_over) = tokio::time::timeout(TAKEOVER_WITHIN, takeover).await else {
        panic!(
            "the victim's jobs were not taken over within {TAKEOVER_WITHIN:?} of the cut: {:?}\nthe database's sessions:\n{}",
            jobs(&pool, &orphans).await,
            super::sessions(&pool).await
        );
    };
    eprintln!(
        "the victim's jobs, finished by the other replica {:?} after the cut: {taken_over:?}",
        cut_at.elapsed()
    );
    for (id, _, attempts, _) in &taken_over {
        assert!(*attempts >= 2, "job {id} ran once only: {taken_over:?}");
    }

    host.ns.heal("db").unwrap();
    let healed_at = Instant::now();
    eventually(
        "the victim to report SERVING again on its own",
        Duration::from_secs(60),
        || async {
            (health(replicas.channel(VICTIM)).await == Some(ServingStatus::Serving)).then_some(())
        },
    )
    .await;
    eprintln!(
        "{victim_name} SERVING again {:?} after the link came back (cut off for {:?})",
        healed_at.elapsed(),
        healed_at - cut_at
    );
    // The same submission (one idempotency key) until it is accepted; every refusal
    // meanwhile must be UNAVAILABLE.
    let refused = std::sync::atomic::AtomicUsize::new(0);
    let back: Uuid = eventually(
        "the healed replica to accept a submission",
        SERVES_AGAIN_WITHIN,
        || async {
            let answer = answered_within_deadline(
                UnderwritingServiceClient::new(replicas.channel(VICTIM))
                    .submit_application(submission("cut-after-heal")),
            )
            .await;
            match answer {
                Ok(r) => Some(r.into_inner().application_id.parse().unwrap()),
                Err(status) => {
                    assert_eq!(
                        status.code(),
                        Code::Unavailable,
                        "a submission to the healed replica: {}",
                        status.message()
                    );
                    refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    None
                }
            }
        },
    )
    .await;
    eprintln!(
        "{victim_name} accepted a submission {:?} after the link came back ({} UNAVAILABLE before)",
        healed_at.elapsed(),
        refused.into_inner()
    );
    load.until_answered(10, Some(VICTIM), "the victim to serve the load again")
        .await;

    let tally = load.stop().await;
    let failures = tally.failed_attempts();
    eprintln!(
        "{} accepted in all; {} failed attempts, {} of them after the cut\n{}",
        tally.accepted().len(),
        failures.len(),
        failures.len() - failed_before_cut,
        tally.summary()
    );
    // Calls in flight when the link went were waiting on PostgreSQL: they may run out
    // their deadline (DEADLINE_EXCEEDED, or CANCELLED "Timeout expired", which is how
    // tonic's server answers a call it ended at its grpc-timeout); every other failure
    // is UNAVAILABLE. None may outlast its deadline by much: a partition must not hang
    // a caller.
    let wrong: Vec<_> = failures
        .iter()
        .filter(|f| {
            !(matches!(f.code, Code::Unavailable | Code::DeadlineExceeded)
                || (f.code == Code::Cancelled && f.message == "Timeout expired"))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "calls failed with something else than UNAVAILABLE or their deadline: {wrong:#?}"
    );
    let hung: Vec<_> = failures
        .iter()
        .filter(|f| f.took > CALL_DEADLINE + DEADLINE_SLACK)
        .collect();
    assert!(hung.is_empty(), "calls outlasted their deadline: {hung:#?}");

    let mut accepted = tally.accepted();
    accepted.push(back);
    assert_decided_once_and_delivered(&pool, &sims, &accepted).await;
    pool.close().await;
    fleet.shutdown().await;
    sims.shutdown().await;
    drop(host);
}

/// Fails the test if `call` is still waiting well past the caller's deadline: a call
/// to a partitioned replica must end, one way or another.
async fn answered_within_deadline<T>(
    call: impl Future<Output = Result<T, tonic::Status>>,
) -> Result<T, tonic::Status> {
    tokio::time::timeout(CALL_DEADLINE + DEADLINE_SLACK, call)
        .await
        .unwrap_or_else(|_| panic!("a call was still waiting {DEADLINE_SLACK:?} past its deadline"))
}

async fn running_on(pool: &PgPool, workers: &str) -> Vec<i64> {
    sqlx::query_scalar("SELECT id FROM jobs WHERE state = 'running' AND locked_by LIKE $1")
        .bind(workers)
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn jobs(pool: &PgPool, ids: &[i64]) -> Vec<(i64, String, i32, String)> {
    sqlx::query_as(
        "SELECT id, state, attempts, coalesce(locked_by, '') FROM jobs WHERE id = ANY($1) ORDER BY id",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
    .unwrap()
}
