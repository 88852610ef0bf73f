//! The simulators over real HTTP: servers on port 0, a reqwest client.
//!
//! One file per concern; the helpers here are shared by all of them, and `use super::*`
//! in each file brings them and the simulator module's items.

mod alt_vendors;
mod behaviour;
mod config;
mod control;
mod fault_injection;
mod rails_auth;
mod serving;
mod triggers;

use chrono::NaiveDate;
use reqwest::{Client, StatusCode};
use serde_json::Value;

use super::*;
use dossier_upstream::identity::PersonQuery;
use dossier_upstream::property_records::PropertyQuery;

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
    avm_url_at(sims, Upstream::Valuation, line1)
}

/// `GET /v1/avm` of either AVM vendor (they share the wire format).
fn avm_url_at(sims: &Simulators, vendor: Upstream, line1: &str) -> reqwest::Url {
    reqwest::Url::parse_with_params(
        &format!("{}/v1/avm", sims.base_url(vendor)),
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

/// POST a person to one of an identity vendor's endpoints (`"/v1/identity/verify"`, …).
async fn post_person(
    client: &Client,
    sims: &Simulators,
    vendor: Upstream,
    path: &str,
    ssn: &str,
) -> (StatusCode, Value) {
    let response = client
        .post(format!("{}{path}", sims.base_url(vendor)))
        .json(&person(ssn))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

async fn get_json(client: &Client, url: impl reqwest::IntoUrl) -> (StatusCode, Value) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}
