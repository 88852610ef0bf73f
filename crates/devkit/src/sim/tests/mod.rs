//! The simulators over real HTTP: servers on port 0, a reqwest client.

use std::time::Duration;

use chrono::NaiveDate;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use super::*;
use dossier_upstream::identity::{BankruptcySearch, IdentityResult, PersonQuery};
use dossier_upstream::licensing::LicenseRecord;
use dossier_upstream::property_records::{PropertyQuery, PropertyRecord};
use dossier_upstream::rails::RailsApplication;
use dossier_upstream::registry::BusinessRecord;
use dossier_upstream::valuation::AvmEstimate;

fn client() -> Client {
    // No proxy: the environment's HTTP_PROXY must not capture loopback requests.
    Client::builder().no_proxy().build().unwrap()
}

async fn start() -> (Simulators, Client) {
    (
        Simulators::start(SimConfig::default()).await.unwrap(),
        client(),
    )
}

fn address(line1: &str) -> PropertyQuery {
    PropertyQuery {
        line1: line1.to_string(),
        city: "Fresno".to_string(),
        state: "CA".to_string(),
        postal_code: "93721".to_string(),
        apn: String::new(),
    }
}

fn person(ssn: &str) -> PersonQuery {
    PersonQuery {
        first_name: "Maria".into(),
        middle_name: String::new(),
        last_name: "Garcia".into(),
        ssn: ssn.into(),
        date_of_birth: NaiveDate::from_ymd_opt(1970, 5, 17).unwrap(),
        line1: "12 Maple Ave".into(),
        city: "Fresno".into(),
        state: "CA".into(),
        postal_code: "93721".into(),
    }
}

fn property_url(sims: &Simulators, line1: &str) -> reqwest::Url {
    let q = address(line1);
    reqwest::Url::parse_with_params(
        &format!("{}/v1/properties", sims.base_url(Upstream::PropertyRecords)),
        [
            ("line1", q.line1.as_str()),
            ("city", &q.city),
            ("state", &q.state),
            ("postal_code", &q.postal_code),
        ],
    )
    .unwrap()
}

fn avm_url(sims: &Simulators, line1: &str) -> reqwest::Url {
    reqwest::Url::parse_with_params(
        &format!("{}/v1/avm", sims.base_url(Upstream::Valuation)),
        [
            ("line1", line1),
            ("city", "Fresno"),
            ("state", "CA"),
            ("postal_code", "93721"),
        ],
    )
    .unwrap()
}

fn licence_url(sims: &Simulators, number: &str) -> String {
    format!(
        "{}/v1/licenses/CA/{number}",
        sims.base_url(Upstream::Licensing)
    )
}

async fn get_json(client: &Client, url: impl reqwest::IntoUrl) -> (StatusCode, Value) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn base_urls_are_loopback_on_distinct_ports() {
    let (sims, _) = start().await;
    let mut ports = std::collections::HashSet::new();
    for (upstream, url) in sims.base_urls() {
        assert!(url.starts_with("http://127.0.0.1:"), "{upstream}: {url}");
        assert_eq!(url, sims.base_url(upstream));
        assert!(ports.insert(sims.addr(upstream).port()));
    }
    assert_eq!(ports.len(), 6);
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

    let verify_url = format!("{}/v1/identity/verify", sims.base_url(Upstream::Identity));
    let a: IdentityResult = client
        .post(&verify_url)
        .json(&person("523481234"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(a, identity::verify(&person("523481234")));

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

#[tokio::test]
async fn fault_error_in_200_and_html_error() {
    let (sims, client) = start().await;
    sims.set_behaviour(
        Upstream::Licensing,
        Behaviour::with_fault(Fault::ErrorIn200),
    );
    let (status, body) = get_json(&client, licence_url(&sims, "654321")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"error": "internal"}));

    sims.set_behaviour(Upstream::Licensing, Behaviour::with_fault(Fault::HtmlError));
    let response = client
        .get(licence_url(&sims, "654321"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(response.text().await.unwrap().contains("<html>"));
    sims.shutdown().await;
}

#[tokio::test]
async fn fault_malformed_json() {
    let (sims, client) = start().await;
    sims.set_behaviour(
        Upstream::Licensing,
        Behaviour::with_fault(Fault::MalformedJson),
    );
    let response = client
        .get(licence_url(&sims, "654321"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body = response.bytes().await.unwrap();
    let real = serde_json::to_vec(&licensing::license_for("CA", "654321").unwrap()).unwrap();
    assert_eq!(body.len(), real.len(), "complete body");
    assert!(serde_json::from_slice::<Value>(&body).is_err());
    sims.shutdown().await;
}

#[tokio::test]
async fn fault_truncated_body() {
    let (sims, client) = start().await;
    sims.set_behaviour(
        Upstream::Licensing,
        Behaviour::with_fault(Fault::TruncatedBody),
    );
    let response = client
        .get(licence_url(&sims, "654321"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let real = serde_json::to_vec(&licensing::license_for("CA", "654321").unwrap()).unwrap();
    assert_eq!(response.content_length(), Some(real.len() as u64));
    assert!(response.bytes().await.is_err(), "the body ends early");

    // The simulator still serves later requests.
    sims.set_behaviour(Upstream::Licensing, Behaviour::default());
    let (status, _) = get_json(&client, licence_url(&sims, "654321")).await;
    assert_eq!(status, StatusCode::OK);
    sims.shutdown().await;
}

#[tokio::test]
async fn fault_connection_reset() {
    let (sims, client) = start().await;
    sims.set_behaviour(
        Upstream::Licensing,
        Behaviour::with_fault(Fault::ConnectionReset),
    );
    let error = client
        .get(licence_url(&sims, "654321"))
        .send()
        .await
        .expect_err("no response at all");
    assert!(!error.is_status() && !error.is_timeout(), "{error:?}");
    assert_eq!(sims.stats(Upstream::Licensing).total(), 1);

    sims.set_behaviour(Upstream::Licensing, Behaviour::default());
    let (status, _) = get_json(&client, licence_url(&sims, "654321")).await;
    assert_eq!(status, StatusCode::OK);
    sims.shutdown().await;
}

#[tokio::test]
async fn fault_stalled_body_stalls_until_shutdown() {
    let (sims, client) = start().await;
    sims.set_behaviour(
        Upstream::Licensing,
        Behaviour::with_fault(Fault::StalledBody),
    );
    let mut response = client
        .get(licence_url(&sims, "654321"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let real = serde_json::to_vec(&licensing::license_for("CA", "654321").unwrap()).unwrap();
    assert_eq!(response.content_length(), Some(real.len() as u64));
    let first = response.chunk().await.unwrap().unwrap();
    assert_eq!(&first[..], &real[..real.len() / 2]);
    // Nothing more comes: a client would time out here.
    let more = tokio::time::timeout(Duration::from_millis(200), response.chunk()).await;
    assert!(more.is_err(), "the body stalls");

    // Shutting down releases the stalled connection instead of waiting for it.
    sims.shutdown().await;
    assert!(response.chunk().await.is_err());
}

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

#[test]
fn config_from_toml() {
    let config = SimConfig::from_toml_str(
        r#"
        bind = "127.0.0.1"

        [rails]
        port = 4001
        token = "local-token"

        [valuation]
        port = 4003
        latency_ms = 250
        error_rate = 0.1
        quota_per_second = 5
        fault = "stalled_body"
        fault_rate = 0.5
        "#,
    )
    .unwrap();
    assert_eq!(config.rails_token, "local-token");
    assert_eq!(config.rails.port, Some(4001));
    assert_eq!(config.settings(Upstream::Valuation).port, Some(4003));
    assert_eq!(
        config.valuation.behaviour,
        Behaviour {
            latency_ms: 250,
            error_rate: 0.1,
            quota_per_second: Some(5.0),
            fault: Fault::StalledBody,
            fault_rate: 0.5,
        }
    );
    assert_eq!(config.identity, UpstreamSettings::default());

    assert_eq!(SimConfig::from_toml_str("").unwrap(), SimConfig::default());
    assert!(SimConfig::from_toml_str("[valuation]\nlatncy_ms = 5").is_err());
    assert!(SimConfig::from_toml_str("[valuation]\ntoken = \"x\"").is_err());
    assert!(SimConfig::from_toml_str("[valuation]\nerror_rate = 3.0").is_err());
    assert!(SimConfig::from_toml_str("[sanctions]\nport = 1").is_err());
}

#[test]
fn upstream_names_round_trip() {
    for upstream in Upstream::ALL {
        assert_eq!(upstream.name().parse::<Upstream>().unwrap(), upstream);
        assert_eq!(
            serde_json::to_value(upstream).unwrap(),
            json!(upstream.name())
        );
    }
}

/// Send a raw HTTP/1.1 GET and read until the server closes: (bytes received, how it ended).
async fn raw_get(addr: std::net::SocketAddr, path: &str) -> (Vec<u8>, std::io::Result<usize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: sim\r\nconnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let end = socket.read_to_end(&mut received).await;
    (received, end)
}

#[tokio::test]
async fn connection_reset_sends_no_byte_and_resets() {
    let (sims, _) = start().await;
    sims.set_behaviour(
        Upstream::Licensing,
        Behaviour::with_fault(Fault::ConnectionReset),
    );
    let (received, end) = raw_get(sims.addr(Upstream::Licensing), "/v1/licenses/CA/654321").await;
    assert!(received.is_empty(), "no response bytes");
    assert_eq!(end.unwrap_err().kind(), std::io::ErrorKind::ConnectionReset);
    sims.shutdown().await;
}

#[tokio::test]
async fn truncated_body_sends_head_and_half_the_body() {
    let (sims, _) = start().await;
    sims.set_behaviour(
        Upstream::Licensing,
        Behaviour::with_fault(Fault::TruncatedBody),
    );
    let (received, _) = raw_get(sims.addr(Upstream::Licensing), "/v1/licenses/CA/654321").await;
    let text = String::from_utf8(received).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete head");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    let real = serde_json::to_string(&licensing::license_for("CA", "654321").unwrap()).unwrap();
    assert!(
        head.contains(&format!("content-length: {}", real.len())),
        "{head}"
    );
    assert_eq!(body, &real[..real.len() / 2]);
    sims.shutdown().await;
}
