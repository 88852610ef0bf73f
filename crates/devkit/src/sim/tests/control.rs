//! The control endpoints (`/_sim/config`, `/_sim/stats`) and the request counts.

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
            "total": 4
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
    assert_eq!(body, json!({"requests": {}, "total": 0}));

    get_json(&client, licence_url(&sims, "654321")).await;
    sims.reset_stats(Upstream::Licensing);
    assert_eq!(sims.stats(Upstream::Licensing).total(), 0);
    sims.shutdown().await;
}
