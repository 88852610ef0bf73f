//! The scenario triggers of the vendor simulators, over HTTP.

use reqwest::StatusCode;
use serde_json::json;

use super::*;
use dossier_upstream::identity::{BankruptcySearch, IdentityResult};

#[tokio::test]
async fn property_and_valuation_triggers_over_http() {
    let (sims, client) = start().await;

    let (status, body) = get_json(&client, property_url(&sims, "9 Unknown Rd")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"error": "property_not_found"}));

    let (status, body) = get_json(&client, property_url(&sims, "9 Delinquent Way")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["tax"]["delinquent"], json!(true));
    assert_eq!(body["tax"]["late_payments"].as_array().unwrap().len(), 2);

    let (_, body) = get_json(&client, property_url(&sims, "9 Lien Pace Mortgage St")).await;
    assert_eq!(body["liens"][0]["kind"], json!("JUDGMENT"));
    assert_eq!(body["assessments"][0]["program"], json!("HERO"));
    assert_eq!(body["mortgages"][0]["notice_of_default"], json!(true));

    let (_, body) = get_json(&client, property_url(&sims, "9 Fourplex Ct")).await;
    assert_eq!(body["property_type"], json!("MULTI_FAMILY"));
    assert_eq!(body["units"], json!(4));

    let (status, body) = get_json(&client, avm_url(&sims, "9 Noavm St")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"error": "no_valuation"}));
    let (status, _) = get_json(&client, avm_url(&sims, "9 Unknown St")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, body) = get_json(&client, avm_url(&sims, "9 Lowconf St")).await;
    assert_eq!(body["confidence"], json!(40));

    // A missing required parameter is a JSON 400.
    let url = format!(
        "{}/v1/properties?line1=1%20Main",
        sims.base_url(Upstream::PropertyRecords)
    );
    let (status, body) = get_json(&client, &url).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], json!("bad_request"));
    sims.shutdown().await;
}

#[tokio::test]
async fn identity_licensing_registry_triggers_over_http() {
    let (sims, client) = start().await;
    let base = sims.base_url(Upstream::Identity);

    let r: IdentityResult = client
        .post(format!("{base}/v1/identity/verify"))
        .json(&person("523481111"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (r.score, r.flags),
        (45, vec!["SSN_MULTIPLE_IDENTITIES".to_string()])
    );
    let r: IdentityResult = client
        .post(format!("{base}/v1/identity/verify"))
        .json(&person("523485555"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((r.score, r.flags), (20, vec!["SSN_DECEASED".to_string()]));
    for (ssn, chapter, disposition) in [
        ("523482222", 7, "DISCHARGED"),
        ("523483333", 13, "DISMISSED"),
        ("523484444", 13, "OPEN"),
    ] {
        let s: BankruptcySearch = client
            .post(format!("{base}/v1/bankruptcies/search"))
            .json(&person(ssn))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(s.filings.len(), 1);
        assert_eq!(s.filings[0].chapter, chapter);
        assert_eq!(s.filings[0].disposition, disposition);
    }
    let response = client
        .post(format!("{base}/v1/identity/verify"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    let (status, body) = get_json(&client, licence_url(&sims, "123400")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"error": "license_not_found"}));
    let (_, body) = get_json(&client, licence_url(&sims, "123499")).await;
    assert_eq!(body["status"], json!("EXPIRED"));
    let (_, body) = get_json(&client, licence_url(&sims, "123498")).await;
    assert_eq!(body["status"], json!("SUSPENDED"));
    let (_, body) = get_json(&client, licence_url(&sims, "123497")).await;
    assert_eq!(body["bonded"], json!(false));
    let (_, body) = get_json(&client, licence_url(&sims, "123496")).await;
    assert_eq!(body["classifications"], json!(["C-10"]));

    let registry = sims.base_url(Upstream::Registry);
    let (status, body) = get_json(
        &client,
        format!("{registry}/v1/businesses?name=Acme%20Unregistered%20LLC&state=CA"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"error": "business_not_found"}));
    let (_, body) = get_json(
        &client,
        format!("{registry}/v1/businesses?name=Acme%20Dissolved%20LLC&state=CA"),
    )
    .await;
    assert_eq!(body["status"], json!("DISSOLVED"));
    let (_, body) = get_json(
        &client,
        format!("{registry}/v1/businesses?name=acme%20suspended&state=CA"),
    )
    .await;
    assert_eq!(body["status"], json!("SUSPENDED"));
    sims.shutdown().await;
}

/// Changes recorded after a first answer (the approval-to-funding scenario) show in
/// every later answer for that address, and only for it; a bad event is a JSON 400.
#[tokio::test]
async fn property_events_change_later_answers() {
    let (sims, client) = start().await;
    let (_, before) = get_json(&client, property_url(&sims, "12 Oak St")).await;
    assert_eq!(before["liens"], json!([]));
    let events = format!(
        "{}/_sim/property_records/events",
        sims.base_url(Upstream::PropertyRecords)
    );
    let property =
        json!({"line1": "12 oak st", "city": "Fresno", "state": "CA", "postal_code": "93721"});
    let response = client
        .post(&events)
        .json(&json!({"property": property, "event": {"kind": "lien_recorded", "lien_kind": "MECHANICS_LIEN", "amount_cents": 420000, "recorded_on": "2026-12-01"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    sims.record_property_event(
        &serde_json::from_value(property.clone()).unwrap(),
        crate::sim::property_records::PropertyEvent::OwnerChanged {
            owners: vec!["NEWMAN, PAT".into()],
        },
    );
    let (_, after) = get_json(&client, property_url(&sims, "12 Oak St")).await;
    assert_eq!(
        after["liens"],
        json!([{"kind": "MECHANICS_LIEN", "amount_cents": 420000, "recorded_on": "2026-12-01"}])
    );
    assert_eq!(after["owners"], json!(["NEWMAN, PAT"]));
    assert_eq!(after["apn"], before["apn"]);
    let (_, other) = get_json(&client, property_url(&sims, "14 Oak St")).await;
    assert_eq!(other["liens"], json!([]));

    let bad = client
        .post(&events)
        .json(&json!({"property": property, "event": {"kind": "meteor_strike"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    // Clearing them restores the deterministic record.
    client.delete(&events).send().await.unwrap();
    let (_, cleared) = get_json(&client, property_url(&sims, "12 Oak St")).await;
    assert_eq!(cleared, before);
}
