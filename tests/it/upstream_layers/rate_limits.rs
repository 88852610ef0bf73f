//! Rate limits: this pod's own quota, and the quota the fleet shares (`fleet_limit`).

use std::time::{Duration, Instant};

use dossier_devkit::sim::Upstream;
use dossier_upstream::{CallContext, UpstreamError, UpstreamPolicy};

use super::{Rig, ctx};

/// Past the quota, callers wait for a permit within their deadline or are refused with
/// a retry delay; the upstream never sees the excess.
#[tokio::test]
async fn the_rate_limit_refuses_what_cannot_wait() {
    let rig = Rig::new(|name, p| {
        if name == Upstream::Registry {
            p.rate_per_second = 0.5;
            p.burst = 1;
        }
    })
    .await;
    rig.upstreams
        .registry
        .business("First Co", "CA", &ctx())
        .await
        .unwrap();
    let hurried = CallContext {
        deadline: Some(Instant::now() + Duration::from_millis(200)),
        ..Default::default()
    };
    let err = rig
        .upstreams
        .registry
        .business("Second Co", "CA", &hurried)
        .await
        .unwrap_err();
    match err {
        UpstreamError::RateLimited {
            retry_after: Some(d),
            ..
        } => assert!(d > Duration::ZERO),
        other => panic!("expected RateLimited, got {other}"),
    }
    assert_eq!(rig.count(Upstream::Registry), 1);
}

/// With `fleet_limit`, the quota holds for all pods together: two pods, each whose own
/// limiter would allow a burst of 2, together get 2 permits (the rate is so low that no
/// permit refills during the test).
#[tokio::test]
async fn the_fleet_shares_one_quota() {
    let fleet = |name: Upstream, p: &mut UpstreamPolicy| {
        if name == Upstream::Registry {
            p.rate_per_second = 0.01;
            p.burst = 2;
            p.fleet_limit = true;
            p.retry.max_attempts = 1;
        }
    };
    let rig = Rig::new(fleet).await;
    let other = rig.pod_with(fleet);
    let hurried = || CallContext {
        deadline: Some(Instant::now() + Duration::from_millis(300)),
        ..Default::default()
    };
    let mut granted = 0;
    let mut refused = 0;
    for i in 0..3 {
        for pod in [&rig.upstreams, &other] {
            match pod
                .registry
                .business(
                    &format!("Fleet Co {i} {}", granted + refused),
                    "CA",
                    &hurried(),
                )
                .await
            {
                Ok(_) => granted += 1,
                Err(UpstreamError::RateLimited {
                    retry_after: Some(wait),
                    ..
                }) => {
                    assert!(wait > Duration::from_secs(1), "{wait:?}");
                    refused += 1;
                }
                Err(e) => panic!("unexpected {e}"),
            }
        }
    }
    assert_eq!((granted, refused), (2, 4));
    assert_eq!(
        rig.count(Upstream::Registry),
        2,
        "the vendor saw the fleet's quota, not twice it"
    );
}
