//! Within one pod: identical questions asked at once share one request, and Rails
//! look-ups asked at once become one batch request.

use dossier_core::domain::CacheOutcome;
use dossier_devkit::sim::Upstream;
use futures::future::join_all;

use super::{Rig, address, ctx};

/// A thousand-caller burst asks the upstream each distinct question once.
#[tokio::test]
async fn concurrent_identical_questions_share_one_request() {
    let rig = Rig::new(|_, _| {}).await;
    rig.behave(Upstream::PropertyRecords, |b| b.latency_ms = 100);
    let calls = (0..200).map(|i| {
        let up = rig.upstreams.property_records.clone();
        async move { up.lookup(&address(i % 5), &ctx()).await }
    });
    let answers = join_all(calls).await;
    assert!(answers.iter().all(|a| matches!(a, Ok(Some(_)))));
    assert_eq!(
        rig.count(Upstream::PropertyRecords),
        5,
        "one request per distinct address"
    );
    let outcomes: Vec<CacheOutcome> = answers
        .iter()
        .map(|a| a.as_ref().unwrap().as_ref().unwrap().source.cache)
        .collect();
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == CacheOutcome::Fetched)
            .count(),
        5
    );
    assert!(outcomes.iter().all(|o| matches!(
        o,
        CacheOutcome::Fetched | CacheOutcome::Coalesced | CacheOutcome::L1Hit
    )));
}

/// Concurrent look-ups of different Rails applications become one batch request.
#[tokio::test]
async fn rails_lookups_are_batched() {
    let rig = Rig::new(|_, _| {}).await;
    let calls = (0..20).map(|i| {
        let rails = rig.upstreams.rails.clone();
        async move { rails.application(&format!("app-{i}"), &ctx()).await }
    });
    let answers = join_all(calls).await;
    assert!(
        answers.iter().all(|a| matches!(a, Ok(Some(_)))),
        "{answers:?}"
    );
    let stats = rig.sims.stats(Upstream::Rails);
    assert_eq!(stats.count("GET /api/v1/pace_applications/{id}"), 0);
    let batches = stats.count("GET /api/v1/pace_applications");
    assert!(
        (1..20).contains(&batches),
        "20 look-ups in {batches} batch requests"
    );
    let missing = rig
        .upstreams
        .rails
        .application("missing-1", &ctx())
        .await
        .unwrap();
    assert!(missing.is_none());
}
