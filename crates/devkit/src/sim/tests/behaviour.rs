//! Behaviour other than faults: the quota (429 with Retry-After), error rate, latency.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::*;

#[tokio::test]
async fn over_quota_is_429_with_retry_after() {
    let (sims, client) = start().await;

    // A quota so small that the second request is always refused.
    sims.set_behaviour(
        Upstream::Licensing,
        Behaviour {
            quota_per_second: Some(0.001),
            ..Behaviour::default()
        },
    );
    let first = client
        .get(licence_url(&sims, "654321"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let second = client
        .get(licence_url(&sims, "654321"))
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = second.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    assert_eq!(
        second.json::<Value>().await.unwrap(),
        json!({"error": "rate_limited"})
    );

    // At one request per second, a burst is refused with `Retry-After: 1`.
    sims.set_behaviour(
        Upstream::Licensing,
        Behaviour {
            quota_per_second: Some(1.0),
            ..Behaviour::default()
        },
    );
    let mut refused = None;
    for _ in 0..50 {
        let response = client
            .get(licence_url(&sims, "654321"))
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(response);
            break;
        }
    }
    let refused = refused.expect("a burst above the quota is refused");
    assert_eq!(refused.headers()["retry-after"], "1");

    // Refused requests are counted too.
    assert!(sims.stats(Upstream::Licensing).total() >= 4);
    sims.shutdown().await;
}

#[tokio::test]
async fn error_rate_and_latency() {
    let (sims, client) = start().await;
    sims.set_behaviour(
        Upstream::Valuation,
        Behaviour {
            error_rate: 1.0,
            ..Behaviour::default()
        },
    );
    let (status, body) = get_json(&client, avm_url(&sims, "12 Maple Ave")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, json!({"error": "unavailable"}));

    sims.set_behaviour(
        Upstream::Valuation,
        Behaviour {
            latency_ms: 20,
            ..Behaviour::default()
        },
    );
    let (status, _) = get_json(&client, avm_url(&sims, "12 Maple Ave")).await;
    assert_eq!(status, StatusCode::OK);
    sims.shutdown().await;
}
