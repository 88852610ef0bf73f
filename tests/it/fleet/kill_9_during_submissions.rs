//! A spot reclaim: a replica killed (SIGKILL) with submissions in flight.

use std::time::Duration;

use dossier_devkit::harness::{TestDb, eventually};
use dossier_devkit::sim::{SimConfig, Simulators};
use dossier_service::proto::underwriting_service_client::UnderwritingServiceClient;
use futures::StreamExt as _;
use uuid::Uuid;

use super::clients::{NO_RETRY, Replicas, Tally, call_from, submission};
use super::{Logs, assert_decided_once_and_delivered, bounded, load_sanctions, start_fleet};

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

    // The audit trail lost nothing to the kill: every request a vendor (simulator) saw
    // has its row, written before the request left; the victim's unfinished ones stay
    // "in_flight".
    fleet.shutdown().await;
    for upstream in dossier_core::domain::Upstream::HTTP {
        let seen = sims.stats(upstream).total() as i64;
        let (rows, in_flight): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE outcome = 'in_flight') FROM upstream_calls WHERE upstream = $1",
        )
        .bind(upstream.as_str())
        .fetch_one(&pool)
        .await
        .unwrap();
        eprintln!(
            "{upstream}: {seen} requests seen by the simulator, {rows} audited ({in_flight} in flight when the replica was killed)"
        );
        assert!(
            rows >= seen,
            "{upstream}: the simulator saw {seen} requests but only {rows} are in upstream_calls"
        );
    }
    pool.close().await;
    sims.shutdown().await;
}
