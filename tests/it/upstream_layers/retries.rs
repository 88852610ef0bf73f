//! Retries: after a 429's Retry-After, and never past the caller's deadline.

use std::time::{Duration, Instant};

use dossier_devkit::sim::Upstream;
use dossier_upstream::{CallContext, UpstreamError};

use super::{Rig, ctx};

/// A 429 is retried after its Retry-After, and the caller gets the answer.
#[tokio::test]
async fn a_429_is_retried_after_retry_after() {
    let mut rig = Rig::new(|name, p| {
        if name == Upstream::Licensing {
            p.retry.max_attempts = 3;
        }
    })
    .await;
    rig.behave(Upstream::Licensing, |b| b.quota_per_second = Some(1.0));
    rig.upstreams
        .licensing
        .license("CA", "111111", &ctx())
        .await
        .unwrap();
    let second = rig
        .upstreams
        .licensing
        .license("CA", "222222", &ctx())
        .await
        .unwrap();
    assert!(second.is_some());
    assert_eq!(rig.count(Upstream::Licensing), 3, "first, refused, retried");
    rig.flush_audit().await;
    let statuses: Vec<Option<i32>> = sqlx::query_scalar(
        "SELECT http_status FROM upstream_calls WHERE upstream = 'licensing' ORDER BY id",
    )
    .fetch_all(&rig.store.pool)
    .await
    .unwrap();
    assert_eq!(statuses, vec![Some(200), Some(429), Some(200)]);
}

/// Retries stop at the caller's deadline.
#[tokio::test]
async fn the_deadline_stops_retries() {
    let rig = Rig::new(|name, p| {
        if name == Upstream::Identity {
            p.retry.max_attempts = 50;
            p.retry.base_backoff = Duration::from_millis(50);
            p.retry.max_backoff = Duration::from_millis(100);
            p.breaker.consecutive_failures = 1000;
        }
    })
    .await;
    rig.behave(Upstream::Identity, |b| b.error_rate = 1.0);
    let query = dossier_upstream::identity::PersonQuery {
        first_name: "Ana".into(),
        middle_name: String::new(),
        last_name: "Lopez".into(),
        ssn: "123456789".into(),
        date_of_birth: chrono::NaiveDate::from_ymd_opt(1980, 1, 1).unwrap(),
        line1: "1 Main St".into(),
        city: "Fresno".into(),
        state: "CA".into(),
        postal_code: "93701".into(),
    };
    let short = CallContext {
        deadline: Some(Instant::now() + Duration::from_millis(400)),
        ..Default::default()
    };
    let err = rig
        .upstreams
        .identity
        .verify(&query, &short)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            UpstreamError::Status { status: 503, .. } | UpstreamError::DeadlineExceeded { .. }
        ),
        "{err}"
    );
    assert!(
        rig.count(Upstream::Identity) < 50,
        "retries stopped before max_attempts"
    );
}
