//! The second AVM and identity vendors over HTTP: their own data, answering where the
//! primary vendor cannot, their own triggers, and misbehaviour set apart from the
//! primary's.

use reqwest::StatusCode;
use serde_json::json;

use super::*;
use dossier_upstream::identity::{BankruptcySearch, IdentityResult, IncomeVerification};
use dossier_upstream::valuation::AvmEstimate;

fn always_unavailable() -> Behaviour {
    Behaviour {
        error_rate: 1.0,
        ..Behaviour::default()
    }
}

#[tokio::test]
async fn alt_valuation_values_what_the_primary_cannot_and_has_its_own_triggers() {
    let (sims, client) = start().await;
    let alt = Upstream::AltValuation;

    let (status, _) = get_json(&client, avm_url(&sims, "9 Noavm St")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = get_json(&client, avm_url_at(&sims, alt, "9 Noavm St")).await;
    assert_eq!(status, StatusCode::OK);
    let estimate: AvmEstimate = serde_json::from_value(body).unwrap();
    assert_eq!(
        Some(&estimate),
        alt_valuation::estimate_for("9 Noavm St", "Fresno", "CA", "93721").as_ref()
    );
    assert!(estimate.confidence >= 78, "{estimate:?}");

    let (_, body) = get_json(&client, avm_url(&sims, "9 Lowconf St")).await;
    assert_eq!(body["confidence"], json!(40));
    let (_, body) = get_json(&client, avm_url_at(&sims, alt, "9 Lowconf St")).await;
    assert!(body["confidence"].as_u64().unwrap() >= 78, "{body}");

    let (status, body) = get_json(&client, avm_url_at(&sims, alt, "9 Noaltavm St")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"error": "no_valuation"}));
    let (status, _) = get_json(&client, avm_url(&sims, "9 Noaltavm St")).await;
    assert_eq!(status, StatusCode::OK);

    let (_, body) = get_json(&client, avm_url_at(&sims, alt, "9 Altlowconf St")).await;
    assert_eq!(body["confidence"], json!(40));
    let (_, body) = get_json(&client, avm_url(&sims, "9 Altlowconf St")).await;
    assert!(body["confidence"].as_u64().unwrap() >= 80, "{body}");

    let (status, _) = get_json(&client, avm_url_at(&sims, alt, "9 Unknown St")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Counted where they were asked: a waterfall's calls show per vendor.
    assert_eq!(sims.stats(alt).count("GET /v1/avm"), 5);
    assert_eq!(sims.stats(Upstream::Valuation).count("GET /v1/avm"), 4);
    sims.shutdown().await;
}

#[tokio::test]
async fn a_fault_on_one_avm_vendor_leaves_the_other_answering() {
    let (sims, client) = start().await;
    let alt = Upstream::AltValuation;
    let status = |url: reqwest::Url| {
        let client = client.clone();
        async move { client.get(url).send().await.unwrap().status() }
    };

    sims.set_behaviour(Upstream::Valuation, always_unavailable());
    assert_eq!(
        status(avm_url(&sims, "12 Maple Ave")).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        status(avm_url_at(&sims, alt, "12 Maple Ave")).await,
        StatusCode::OK
    );

    sims.set_behaviour(Upstream::Valuation, Behaviour::default());
    sims.set_behaviour(alt, Behaviour::with_fault(Fault::HtmlError));
    assert_eq!(
        status(avm_url_at(&sims, alt, "12 Maple Ave")).await,
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(status(avm_url(&sims, "12 Maple Ave")).await, StatusCode::OK);
    sims.shutdown().await;
}

#[tokio::test]
async fn alt_identity_verifies_whom_the_primary_mixes_up_and_agrees_on_facts() {
    let (sims, client) = start().await;
    let alt = Upstream::AltIdentity;
    let verify = "/v1/identity/verify";

    let (_, body) = post_person(&client, &sims, Upstream::Identity, verify, "523481111").await;
    assert_eq!(body["flags"], json!(["SSN_MULTIPLE_IDENTITIES"]));
    let (status, body) = post_person(&client, &sims, alt, verify, "523481111").await;
    assert_eq!(status, StatusCode::OK);
    let result: IdentityResult = serde_json::from_value(body).unwrap();
    assert_eq!(result, alt_identity::verify(&person("523481111")));
    assert!(result.score >= 85 && result.flags.is_empty(), "{result:?}");

    let (_, body) = post_person(&client, &sims, alt, verify, "523487777").await;
    assert_eq!(
        body,
        json!({"score": 45, "flags": ["SSN_MULTIPLE_IDENTITIES"]})
    );
    let (_, body) = post_person(&client, &sims, Upstream::Identity, verify, "523487777").await;
    assert_eq!(body["flags"], json!([]));

    let (_, body) = post_person(&client, &sims, alt, verify, "523485555").await;
    assert_eq!(body, json!({"score": 20, "flags": ["SSN_DECEASED"]}));

    let (_, body) = post_person(&client, &sims, alt, "/v1/bankruptcies/search", "523484444").await;
    let search: BankruptcySearch = serde_json::from_value(body).unwrap();
    assert_eq!(search, identity::bankruptcies(&person("523484444")));
    assert_eq!(search.filings[0].disposition, "OPEN");

    let (_, body) = post_person(&client, &sims, alt, "/v1/income/verify", "523481234").await;
    let income: IncomeVerification = serde_json::from_value(body).unwrap();
    assert_eq!(income, alt_identity::income(&person("523481234")));

    let response = client
        .post(format!("{}{verify}", sims.base_url(alt)))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    assert_eq!(sims.stats(alt).count("POST /v1/identity/verify"), 4);
    assert_eq!(sims.stats(Upstream::Identity).total(), 2);
    sims.shutdown().await;
}

#[tokio::test]
async fn a_fault_on_one_identity_vendor_leaves_the_other_answering() {
    let (sims, client) = start().await;
    let alt = Upstream::AltIdentity;
    let verify = "/v1/identity/verify";

    sims.set_behaviour(Upstream::Identity, always_unavailable());
    let (status, _) = post_person(&client, &sims, Upstream::Identity, verify, "523481234").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _) = post_person(&client, &sims, alt, verify, "523481234").await;
    assert_eq!(status, StatusCode::OK);

    sims.set_behaviour(Upstream::Identity, Behaviour::default());
    sims.set_behaviour(alt, always_unavailable());
    let (status, _) = post_person(&client, &sims, alt, verify, "523481234").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _) = post_person(&client, &sims, Upstream::Identity, verify, "523481234").await;
    assert_eq!(status, StatusCode::OK);
    sims.shutdown().await;
}
