//! The circuit breaker: opens on consecutive failures, closes after a good probe.

use std::time::Duration;

use dossier_devkit::sim::Upstream;
use dossier_upstream::BreakerState;
use dossier_upstream::UpstreamError;

use super::{Rig, address, ctx};

/// The breaker opens on consecutive failures, refuses without calling, and closes
/// after a successful probe.
#[tokio::test]
async fn breaker_opens_and_recovers() {
    let rig = Rig::new(|name, p| {
        if name == Upstream::Registry {
            p.retry.max_attempts = 1;
            p.breaker.consecutive_failures = 3;
            p.breaker.open_for = Duration::from_secs(3600);
        }
        if name == Upstream::Valuation {
            p.retry.max_attempts = 1;
            p.breaker.consecutive_failures = 2;
            p.breaker.open_for = Duration::ZERO; // probe at once
        }
    })
    .await;
    rig.behave(Upstream::Registry, |b| b.error_rate = 1.0);
    for i in 0..3 {
        let e = rig
            .upstreams
            .registry
            .business(&format!("Biz {i}"), "CA", &ctx())
            .await
            .unwrap_err();
        assert!(
            matches!(e, UpstreamError::Status { status: 503, .. }),
            "{e}"
        );
    }
    assert_eq!(
        rig.upstreams.stacks[&Upstream::Registry].breaker().state(),
        BreakerState::Open
    );
    let refused = rig
        .upstreams
        .registry
        .business("Biz 9", "CA", &ctx())
        .await
        .unwrap_err();
    assert!(
        matches!(refused, UpstreamError::CircuitOpen { .. }),
        "{refused}"
    );
    assert_eq!(
        rig.count(Upstream::Registry),
        3,
        "an open breaker does not call"
    );

    rig.behave(Upstream::Valuation, |b| b.error_rate = 1.0);
    for i in 0..2 {
        rig.upstreams
            .valuation
            .estimate(&address(10 + i), &ctx())
            .await
            .unwrap_err();
    }
    assert_eq!(
        rig.upstreams.stacks[&Upstream::Valuation].breaker().state(),
        BreakerState::Open
    );
    rig.behave(Upstream::Valuation, |b| b.error_rate = 0.0);
    rig.upstreams
        .valuation
        .estimate(&address(20), &ctx())
        .await
        .unwrap();
    assert_eq!(
        rig.upstreams.stacks[&Upstream::Valuation].breaker().state(),
        BreakerState::Closed
    );
}
