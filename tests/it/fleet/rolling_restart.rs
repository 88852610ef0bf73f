//! A rolling deploy: each replica stopped (SIGTERM) and started again under load.

use dossier_devkit::harness::TestDb;
use dossier_devkit::sim::{SimConfig, Simulators};

use super::clients::{Load, Replicas, STANDARD_RETRY};
use super::{
    Logs, assert_decided_once_and_delivered, assert_only_unavailable, bounded, load_sanctions,
    start_fleet,
};

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
