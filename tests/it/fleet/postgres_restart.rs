//! PostgreSQL stopped and started again under load.

use std::time::Duration;

use dossier_devkit::devdb::PrivatePostgres;
use dossier_devkit::harness::eventually;
use dossier_devkit::sim::{SimConfig, Simulators};
use dossier_service::proto;
use dossier_service::proto::underwriting_service_client::UnderwritingServiceClient;
use futures::FutureExt as _;
use sqlx::{Connection as _, Executor as _};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use uuid::Uuid;

use super::clients::{Load, NO_RETRY, Replicas, health, submission, with_deadline};
use super::{
    Logs, assert_decided_once_and_delivered, assert_only_unavailable, bounded, load_sanctions,
    start_fleet,
};

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
                 WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO applications (%'",
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
