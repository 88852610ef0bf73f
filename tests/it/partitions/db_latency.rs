//! Two replicas 200 ms (each way) away from PostgreSQL.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use dossier_devkit::harness::TestDb;
use dossier_devkit::netns::proxy::Mode;
use dossier_devkit::sim::{SimConfig, Simulators};
use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;
use tonic_health::pb::health_check_response::ServingStatus;
use uuid::Uuid;

use super::{Host, namespaces_or_skip, start_placed};
use crate::fleet::clients::{NO_RETRY, Replicas, Tally, call_from, health, submission};
use crate::fleet::{Logs, assert_decided_once_and_delivered, bounded, load_sanctions};

/// Each way, between every replica and PostgreSQL.
const LATENCY: Duration = Duration::from_millis(200);
const SUBMISSIONS: usize = 16;
/// At 400 ms per round trip, an evaluation takes tens of seconds (dozens of statements,
/// each preceded by sqlx's ping of the connection it hands out): work there is bound by
/// latency, not CPU, so more workers and connections than the fleet tests' let the
/// batch settle within their bound. The job lease stays the fleet tests' 2 s, short
/// against those round trips: leases lapse and jobs run twice, which must not change
/// what is decided and delivered.
const TUNING: &[(&str, &str)] = &[
    ("DOSSIER_WORKERS", "8"),
    ("DOSSIER_DB_MAX_CONNECTIONS", "20"),
];

/// Two replicas, each in a namespace of its own, reach PostgreSQL over a link that
/// delivers every byte 200 ms late each way (from their start: a pod far from its
/// database). A batch of submissions is accepted, every one at the first attempt;
/// health answers SERVING on every probe throughout; and every application is decided
/// once and delivered once, although the job lease (2 s) is short against the round
/// trips and some jobs run twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_200ms_from_postgres_keep_every_invariant() {
    const NAME: &str = "replicas_200ms_from_postgres_keep_every_invariant";
    if namespaces_or_skip(NAME) {
        bounded(NAME, db_latency()).await;
    }
}

async fn db_latency() {
    let logs = Logs::new("dblatency");
    let db = TestDb::migrated().await;
    load_sanctions(&db.url).await;
    let sims = Simulators::start(SimConfig::default()).await.unwrap();
    let hosts = [
        Host::new(&db.url, &sims).await,
        Host::new(&db.url, &sims).await,
    ];
    for host in &hosts {
        host.db.set(Mode::Delay(LATENCY));
    }
    let started = Instant::now();
    let fleet = start_placed(
        &db.url,
        &sims,
        &logs,
        hosts.iter().map(|h| h.placement(&db.url)).collect(),
        TUNING,
    )
    .await;
    eprintln!(
        "2 replicas {LATENCY:?} from PostgreSQL each way SERVING {:?} after starting",
        started.elapsed()
    );
    let replicas = Replicas::new(&fleet.endpoints());

    // Health is asked of both replicas, back to back, for as long as the test runs;
    // every answer that is not SERVING is kept.
    let probing = CancellationToken::new();
    let not_serving = Mutex::new(Vec::<(usize, Option<ServingStatus>)>::new());
    let probes = async {
        let mut asked = 0u64;
        while !probing.is_cancelled() {
            for i in 0..replicas.len() {
                let status = health(replicas.channel(i)).await;
                if status != Some(ServingStatus::Serving) {
                    not_serving.lock().unwrap().push((i, status));
                }
                asked += 1;
            }
            // Pacing, not synchronisation: ten rounds a second is plenty of probes.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        asked
    };

    let tally = Tally::new(replicas.len());
    let work = async {
        let begun = Instant::now();
        let results: Vec<_> = futures::stream::iter(0..SUBMISSIONS)
            .map(|n| {
                let (replicas, tally) = (&replicas, &tally);
                async move {
                    let rails_id = format!("far-{n}");
                    call_from(n % 2, replicas, tally, NO_RETRY, "SubmitApplication", |ch| {
                        let request = submission(&rails_id);
                        async move {
                            dossier_service::proto::underwriting_service_client::UnderwritingServiceClient::new(ch)
                                .submit_application(request)
                                .await
                        }
                    })
                    .await
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        eprintln!(
            "{SUBMISSIONS} submissions answered in {:?}\n{}",
            begun.elapsed(),
            tally.summary()
        );
        let accepted: Vec<Uuid> = results
            .into_iter()
            .map(|r| {
                r.expect("every submission is accepted at the first attempt")
                    .application_id
                    .parse()
                    .unwrap()
            })
            .collect();
        // The test's own connection is direct: only the replicas are far away.
        let pool = dossier_store::connect(&db.url, 2).await.unwrap();
        let settling = Instant::now();
        assert_decided_once_and_delivered(&pool, &sims, &accepted).await;
        eprintln!("decided and delivered within {:?}", settling.elapsed());
        let lapsed: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE kind = 'evaluate' AND attempts > 1",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        eprintln!("{lapsed} evaluations ran more than once (a lease lapsed or a try failed)");
        pool.close().await;
        probing.cancel();
    };
    let (asked, ()) = tokio::join!(probes, work);
    let not_serving = not_serving.into_inner().unwrap();
    eprintln!(
        "{asked} health probes, {} not SERVING; {} and {} connections through the delayed links",
        not_serving.len(),
        hosts[0].db.connections(),
        hosts[1].db.connections()
    );
    assert!(
        not_serving.is_empty(),
        "health was not SERVING on {} of {asked} probes: {not_serving:?}",
        not_serving.len()
    );

    fleet.shutdown().await;
    sims.shutdown().await;
    drop(hosts);
}
