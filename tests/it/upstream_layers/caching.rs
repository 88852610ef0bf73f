//! The caches: L1 (this pod's memory), L2 (PostgreSQL, shared by every pod), expiry,
//! force_refresh, stale-if-error, and failures never cached.

use std::collections::BTreeMap;
use std::time::Duration;

use dossier_core::domain::CacheOutcome;
use dossier_devkit::sim::{Fault, Upstream};
use dossier_upstream::CallContext;

use super::{Rig, address, ctx};

/// Answers are reused from memory, and other pods reuse them from PostgreSQL.
#[tokio::test]
async fn answers_come_from_l1_then_from_l2_on_another_pod() {
    let rig = Rig::new(|_, _| {}).await;
    let first = rig
        .upstreams
        .property_records
        .lookup(&address(1), &ctx())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.source.cache, CacheOutcome::Fetched);
    let again = rig
        .upstreams
        .property_records
        .lookup(&address(1), &ctx())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.source.cache, CacheOutcome::L1Hit);
    assert!(again.source.cached);
    let other_pod = rig.second_pod();
    let shared = other_pod
        .property_records
        .lookup(&address(1), &ctx())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(shared.source.cache, CacheOutcome::L2Hit);
    assert_eq!(shared.value, first.value);
    assert_eq!(
        shared.source.fetched_at.timestamp_micros(),
        first.source.fetched_at.timestamp_micros()
    );
    assert_eq!(rig.count(Upstream::PropertyRecords), 1);
    // Case and spacing do not make a new question.
    let mut shouted = address(1);
    shouted.line1 = "1  ORCHARD LN".into();
    rig.upstreams
        .property_records
        .lookup(&shouted, &ctx())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rig.count(Upstream::PropertyRecords), 1);
}

/// An expired answer is fetched again; force_refresh skips fresh caches.
#[tokio::test]
async fn expiry_and_force_refresh_refetch() {
    let rig = Rig::new(|name, p| {
        if name == Upstream::Valuation {
            p.ttl = BTreeMap::from([("default".into(), Duration::ZERO)]);
        }
    })
    .await;
    rig.upstreams
        .valuation
        .estimate(&address(2), &ctx())
        .await
        .unwrap();
    rig.upstreams
        .valuation
        .estimate(&address(2), &ctx())
        .await
        .unwrap();
    assert_eq!(
        rig.count(Upstream::Valuation),
        2,
        "a zero TTL means every call refetches"
    );

    rig.upstreams
        .property_records
        .lookup(&address(2), &ctx())
        .await
        .unwrap();
    let forced = CallContext {
        force_refresh: true,
        ..ctx()
    };
    let fresh = rig
        .upstreams
        .property_records
        .lookup(&address(2), &forced)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fresh.source.cache, CacheOutcome::Fetched);
    assert_eq!(rig.count(Upstream::PropertyRecords), 2);
}

/// When the upstream fails, an expired answer within its grace is served, marked stale.
#[tokio::test]
async fn stale_if_error_serves_and_marks_stale() {
    let rig = Rig::new(|name, p| {
        if name == Upstream::PropertyRecords {
            p.ttl = BTreeMap::from([("default".into(), Duration::ZERO)]);
            p.retry.max_attempts = 1;
        }
    })
    .await;
    let good = rig
        .upstreams
        .property_records
        .lookup(&address(3), &ctx())
        .await
        .unwrap()
        .unwrap();
    rig.behave(Upstream::PropertyRecords, |b| b.fault = Fault::HtmlError);
    let stale = rig
        .upstreams
        .property_records
        .lookup(&address(3), &ctx())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stale.source.cache, CacheOutcome::Stale);
    assert!(stale.source.stale);
    assert_eq!(stale.value, good.value);
    assert_eq!(
        stale.source.fetched_at, good.source.fetched_at,
        "the report shows when the data was really fetched"
    );
    // Without anything cached, the failure is the answer.
    let err = rig
        .upstreams
        .property_records
        .lookup(&address(4), &ctx())
        .await
        .unwrap_err();
    assert_eq!(err.reason_code(), "UPSTREAM_ERROR", "{err}");
}

/// A failed answer is never cached as a success.
#[tokio::test]
async fn failures_are_not_cached() {
    let rig = Rig::new(|_, p| p.retry.max_attempts = 1).await;
    for (round, fault) in [
        Fault::MalformedJson,
        Fault::ErrorIn200,
        Fault::TruncatedBody,
        Fault::HtmlError,
        Fault::ConnectionReset,
    ]
    .into_iter()
    .enumerate()
    {
        // A new licence number each round: nothing from an earlier round can answer.
        let number = format!("12345{round}");
        rig.behave(Upstream::Licensing, |b| b.fault = fault);
        let before = rig.count(Upstream::Licensing);
        let err = rig
            .upstreams
            .licensing
            .license("CA", &number, &ctx())
            .await
            .unwrap_err();
        assert_eq!(err.upstream(), Upstream::Licensing, "{fault:?}: {err}");
        rig.behave(Upstream::Licensing, |b| b.fault = Fault::None);
        let ok = rig
            .upstreams
            .licensing
            .license("CA", &number, &ctx())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            ok.source.cache,
            CacheOutcome::Fetched,
            "{fault:?}: the failure was not cached"
        );
        assert_eq!(rig.count(Upstream::Licensing), before + 2);
    }
}
