//! Every simulator on its own loopback port, answering what its pure function says.

use reqwest::StatusCode;

use super::*;
use dossier_upstream::identity::IdentityResult;
use dossier_upstream::licensing::LicenseRecord;
use dossier_upstream::property_records::PropertyRecord;
use dossier_upstream::rails::RailsApplication;
use dossier_upstream::registry::BusinessRecord;
use dossier_upstream::valuation::AvmEstimate;

#[tokio::test]
async fn base_urls_are_loopback_on_distinct_ports() {
    let (sims, _) = start().await;
    let mut ports = std::collections::HashSet::new();
    for (upstream, url) in sims.base_urls() {
        assert!(url.starts_with("http://127.0.0.1:"), "{upstream}: {url}");
        assert_eq!(url, sims.base_url(upstream));
        assert!(ports.insert(sims.addr(upstream).port()));
    }
    assert_eq!(ports.len(), Upstream::HTTP.len());
    sims.shutdown().await;
}

#[tokio::test]
async fn same_request_same_body_and_handlers_agree_with_pure_functions() {
    let (sims, client) = start().await;

    let first = client
        .get(property_url(&sims, "12 Maple Ave"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let first = first.bytes().await.unwrap();
    let second = client
        .get(property_url(&sims, "  12   MAPLE ave"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(first, second);
    let record: PropertyRecord = serde_json::from_slice(&first).unwrap();
    assert_eq!(
        Some(record),
        property_records::record_for(&address("12 Maple Ave"))
    );

    let (_, avm) = get_json(&client, avm_url(&sims, "12 Maple Ave")).await;
    let avm: AvmEstimate = serde_json::from_value(avm).unwrap();
    assert_eq!(
        Some(avm),
        valuation::estimate_for("12 Maple Ave", "Fresno", "CA", "93721")
    );

    let (_, avm) = get_json(
        &client,
        avm_url_at(&sims, Upstream::AltValuation, "12 Maple Ave"),
    )
    .await;
    let avm: AvmEstimate = serde_json::from_value(avm).unwrap();
    assert_eq!(
        Some(avm),
        alt_valuation::estimate_for("12 Maple Ave", "Fresno", "CA", "93721")
    );

    for (vendor, verify) in [
        (
            Upstream::Identity,
            identity::verify as fn(&PersonQuery) -> IdentityResult,
        ),
        (Upstream::AltIdentity, alt_identity::verify),
    ] {
        let (_, a) = post_person(&client, &sims, vendor, "/v1/identity/verify", "523481234").await;
        let a: IdentityResult = serde_json::from_value(a).unwrap();
        assert_eq!(a, verify(&person("523481234")), "{vendor}");
    }

    let (_, licence) = get_json(&client, licence_url(&sims, "654321")).await;
    let licence: LicenseRecord = serde_json::from_value(licence).unwrap();
    assert_eq!(Some(licence), licensing::license_for("CA", "654321"));

    let url = format!(
        "{}/v1/businesses?name=Golden%20State%20Solar%20Inc&state=CA",
        sims.base_url(Upstream::Registry)
    );
    let (_, business) = get_json(&client, &url).await;
    let business: BusinessRecord = serde_json::from_value(business).unwrap();
    assert_eq!(
        Some(business),
        registry::business_for("Golden State Solar Inc", "CA")
    );

    let url = format!(
        "{}/api/v1/pace_applications/app-42",
        sims.base_url(Upstream::Rails)
    );
    let application: RailsApplication = client
        .get(&url)
        .bearer_auth(DEFAULT_RAILS_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(Some(application), rails::application_for("app-42"));
    sims.shutdown().await;
}
