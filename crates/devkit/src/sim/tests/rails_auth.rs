//! The Rails simulator's bearer token.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::*;
use dossier_upstream::rails::RailsApplication;

#[tokio::test]
async fn rails_requires_the_bearer_token() {
    let config = SimConfig {
        rails_token: "s3cret".to_string(),
        ..SimConfig::default()
    };
    let sims = Simulators::start(config).await.unwrap();
    let client = client();
    assert_eq!(sims.rails_token(), "s3cret");
    let url = |id: &str| {
        format!(
            "{}/api/v1/pace_applications/{id}",
            sims.base_url(Upstream::Rails)
        )
    };

    let response = client.get(url("app-1")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"error": "unauthorized"})
    );
    let response = client
        .get(url("app-1"))
        .bearer_auth(DEFAULT_RAILS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = client
        .get(url("app-1"))
        .header("authorization", "s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let response = client
        .get(url("app-1"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let application: RailsApplication = response.json().await.unwrap();
    assert_eq!(application.id, "app-1");

    let response = client
        .get(url("missing-9"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"error": "not_found"})
    );

    let application: RailsApplication = client
        .get(url("decline-1"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(application.property.line1.contains("Delinquent"));
    sims.shutdown().await;
}
