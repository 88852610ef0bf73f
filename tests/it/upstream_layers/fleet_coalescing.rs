//! Across pods: the fetch lease makes one pod fetch a question the others missed at
//! the same moment, and a lease left by a dead pod lapses.

use dossier_core::domain::CacheOutcome;
use dossier_devkit::sim::Upstream;
use futures::future::join_all;

use super::{Rig, address, ctx};

/// Three pods miss the shared cache for the same addresses at the same time: one pod
/// fetches each, the others wait for its fill. The vendor sees each question once
/// (without the fetch lease it would see each question once per pod).
#[tokio::test]
async fn pods_that_miss_together_ask_the_vendor_once() {
    let rig = Rig::new(|_, _| {}).await;
    let pods = [rig.fleet_pod(), rig.fleet_pod(), rig.fleet_pod()];
    // Slow enough that every pod asks while the first fetch is in flight.
    rig.behave(Upstream::PropertyRecords, |b| b.latency_ms = 300);
    let calls = (0..60).map(|i| {
        let up = pods[i % 3].property_records.clone();
        async move { up.lookup(&address(i as u32 % 4), &ctx()).await }
    });
    let answers = join_all(calls).await;
    let mut fetched = 0;
    for a in &answers {
        let a = a.as_ref().unwrap().as_ref().unwrap();
        match a.source.cache {
            CacheOutcome::Fetched => fetched += 1,
            CacheOutcome::Coalesced | CacheOutcome::L2Hit => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        rig.count(Upstream::PropertyRecords),
        4,
        "one request per distinct address for the whole fleet"
    );
    assert_eq!(fetched, 4);
    // Every lease was released with its fill.
    let leases: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM upstream_fetch_leases WHERE until > now() OR fresh_until IS NULL",
    )
    .fetch_one(&rig.store.pool)
    .await
    .unwrap();
    assert_eq!(leases, 0);
}

/// A pod that died holding a fetch lease does not block the question: the next pod
/// waits for the lease to lapse, then fetches itself.
#[tokio::test]
async fn a_lease_left_by_a_dead_pod_lapses_and_another_pod_fetches() {
    let rig = Rig::new(|_, _| {}).await;
    let pod = rig.fleet_pod();
    // What the dead pod left: a lease on address 7 that lapses in a second.
    let key_hash = rig.store.vault.lookup_hash(
        "cache:property_records:property",
        serde_json::to_string(&dossier_upstream::property_records::normalised(&address(7)))
            .unwrap()
            .as_bytes(),
    );
    sqlx::query(
        "INSERT INTO upstream_fetch_leases (upstream, kind, key, holder, until)
         VALUES ('property_records', 'property', $1, 'dead-pod', clock_timestamp() + interval '1 second')",
    )
    .bind(&key_hash)
    .execute(&rig.store.pool)
    .await
    .unwrap();
    let answer = pod
        .property_records
        .lookup(&address(7), &ctx())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer.source.cache, CacheOutcome::Fetched);
    assert_eq!(rig.count(Upstream::PropertyRecords), 1);
    let holder: Option<String> = sqlx::query_scalar(
        "SELECT holder FROM upstream_fetch_leases WHERE until > now() OR fresh_until IS NULL",
    )
    .fetch_optional(&rig.store.pool)
    .await
    .unwrap();
    assert_eq!(
        holder, None,
        "the lease was taken over and released with the fill"
    );
}

/// A fetch that takes longer than a fetch lease (the vendor is slow) keeps its lease by
/// renewing it: the other pods wait for its answer instead of asking the vendor again.
#[tokio::test]
async fn a_slow_fetch_renews_its_lease_and_the_fleet_still_asks_once() {
    let rig = Rig::new(|_, _| {}).await;
    let (first, second) = (rig.fleet_pod(), rig.fleet_pod());
    // Longer than the lease, within the vendor timeout (5 s).
    let slow = dossier_upstream::FETCH_LEASE + std::time::Duration::from_secs(1);
    rig.behave(Upstream::PropertyRecords, |b| {
        b.latency_ms = slow.as_millis() as u64
    });
    let asking = tokio::spawn({
        let up = first.property_records.clone();
        async move { up.lookup(&address(1), &ctx()).await }
    });
    dossier_devkit::harness::eventually(
        "the first pod to ask the vendor",
        std::time::Duration::from_secs(10),
        || async { (rig.count(Upstream::PropertyRecords) == 1).then_some(()) },
    )
    .await;
    let waited = second
        .property_records
        .lookup(&address(1), &ctx())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(waited.source.cache, CacheOutcome::Coalesced);
    let fetched = asking.await.unwrap().unwrap().unwrap();
    assert_eq!(fetched.source.cache, CacheOutcome::Fetched);
    assert_eq!(rig.count(Upstream::PropertyRecords), 1, "asked once");
}
