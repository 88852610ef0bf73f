//! The control endpoints (`/_sim/config`, `/_sim/stats`), the request counts and the
//! count of requests refused over the quota.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::*;

#[tokio::test]
async fn runtime_control_over_http() {
    let (sims, client) = start().await;
    let base = sims.base_url(Upstream::Registry);

    let (status, body) = get_json(&client, format!("{base}/_sim/config")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_value::<Behaviour>(body).unwrap(),
        Behaviour::default()
    );

    let response = client
        .put(format!("{base}/_sim/config"))
        .json(&json!({"fault": "error_in_200", "latency_ms": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(sims.behaviour(Upstream::Registry).fault, Fault::ErrorIn200);
    assert_eq!(sims.behaviour(Upstream::Registry).latency_ms, 5);
    let (_, body) = get_json(&client, format!("{base}/v1/businesses?name=Acme&state=CA")).await;
    assert_eq!(body, json!({"error": "internal"}));

    // Control routes are never faulted; bad settings are refused.
    for bad in [
        json!({"error_rate": 2.0}),
        json!({"fault": "explode"}),
        json!({"nope": 1}),
    ] {
        let response = client
            .put(format!("{base}/_sim/config"))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(
            response.json::<Value>().await.unwrap()["error"],
            json!("bad_request")
        );
    }
    assert_eq!(sims.behaviour(Upstream::Registry).fault, Fault::ErrorIn200);
    sims.shutdown().await;
}

#[tokio::test]
async fn stats_count_every_request_by_route() {
    let (sims, client) = start().await;
    let base = sims.base_url(Upstream::Licensing);

    get_json(&client, licence_url(&sims, "654321")).await;
    get_json(&client, licence_url(&sims, "123400")).await; // 404 counts
    sims.set_behaviour(Upstream::Licensing, Behaviour::with_fault(Fault::HtmlError));
    client
        .get(licence_url(&sims, "654321"))
        .send()
        .await
        .unwrap(); // faulted counts
    sims.set_behaviour(Upstream::Licensing, Behaviour::default());
    client.get(format!("{base}/nowhere")).send().await.unwrap(); // unmatched counts

    let (status, body) = get_json(&client, format!("{base}/_sim/stats")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({
            "requests": {"GET /v1/licenses/{state}/{number}": 3, "GET (unmatched)": 1},
            "total": 4,
            "refused": 0
        })
    );
    let stats = sims.stats(Upstream::Licensing);
    assert_eq!(stats.total(), 4);
    assert_eq!(stats.count("GET /v1/licenses/{state}/{number}"), 3);
    assert_eq!(serde_json::to_value(&stats).unwrap(), body);
    assert_eq!(sims.stats(Upstream::Valuation).total(), 0);

    let response = client
        .post(format!("{base}/_sim/stats/reset"))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    assert_eq!(sims.stats(Upstream::Licensing), Stats::default());
    let (_, body) = get_json(&client, format!("{base}/_sim/stats")).await;
    assert_eq!(body, json!({"requests": {}, "total": 0, "refused": 0}));

    get_json(&client, licence_url(&sims, "654321")).await;
    sims.reset_stats(Upstream::Licensing);
    assert_eq!(sims.stats(Upstream::Licensing).total(), 0);
    sims.shutdown().await;
}

/// Sends one licence look-up and returns its status.
async fn look_up_licence(client: &Client, sims: &Simulators) -> StatusCode {
    client
        .get(licence_url(sims, "654321"))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn stats_report_the_requests_refused_over_the_quota() {
    let (sims, client) = start().await;
    let base = sims.base_url(Upstream::Licensing);

    // One request per 1,000 s: the first is admitted, every other one in this test is
    // refused, whatever the machine's speed.
    let response = client
        .put(format!("{base}/_sim/config"))
        .json(&json!({"quota_per_second": 0.001}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(look_up_licence(&client, &sims).await, StatusCode::OK);
    for _ in 0..2 {
        assert_eq!(
            look_up_licence(&client, &sims).await,
            StatusCode::TOO_MANY_REQUESTS
        );
    }

    let (status, body) = get_json(&client, format!("{base}/_sim/stats")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({
            "requests": {"GET /v1/licenses/{state}/{number}": 3},
            "total": 3,
            "refused": 2
        })
    );
    let stats = sims.stats(Upstream::Licensing);
    assert_eq!((stats.total(), stats.refused), (3, 2));
    assert_eq!(serde_json::from_value::<Stats>(body).unwrap(), stats);

    // The reset over HTTP zeroes the refusals too…
    let response = client
        .post(format!("{base}/_sim/stats/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (_, body) = get_json(&client, format!("{base}/_sim/stats")).await;
    assert_eq!(body, json!({"requests": {}, "total": 0, "refused": 0}));

    // …as the reset from Rust does (the quota itself is not reset: still refused).
    assert_eq!(
        look_up_licence(&client, &sims).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(sims.stats(Upstream::Licensing).refused, 1);
    sims.reset_stats(Upstream::Licensing);
    assert_eq!(sims.stats(Upstream::Licensing), Stats::default());
    sims.shutdown().await;
}
