//! Simulated Rails backend: `GET /api/v1/pace_applications/{id}` (and the batch form)
//! and the decision callback `POST /api/v1/underwriting_decisions`, with
//! `Authorization: Bearer {token}`.
//!
//! The callback keeps a ledger by idempotency key: how many times each decision arrived
//! and what it said (`GET /_sim/deliveries`, [`super::Simulators::deliveries`]), so
//! fault tests can assert "exactly one decision recorded per application".
//!
//! An application is built deterministically from its id. Its applicants are exactly the
//! owners of record the property records simulator returns for the generated address, its
//! contractor's licence and business are ones the licensing and registry simulators
//! approve, so an ordinary id describes an application that passes underwriting.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::identity::TRIGGER_LAST_FOURS;
use super::seed::{self, Dice, dollars, title_case};
use super::{SimState, licensing, property_records};
use dossier_upstream::property_records::PropertyQuery;
use dossier_upstream::rails::{
    DECISIONS_PATH, FUNDING_CHECKS_PATH, FUNDING_RESOLUTIONS_PATH, RailsApplicant,
    RailsApplication, RailsContractor, RailsDecision, RailsDecisionAck, RailsFundingCheck,
    RailsFundingCheckAck, RailsFundingResolution, RailsMeasure, RailsProperty, RailsSanctionsAlert,
    RailsSanctionsAlertAck, SANCTIONS_ALERTS_PATH,
};

/// Street names that contain no trigger word of any simulator.
const STREETS: &[&str] = &[
    "Maple",
    "Oak",
    "Cedar",
    "Sycamore",
    "Vista",
    "Mission",
    "Lincoln",
    "Jefferson",
    "Hillcrest",
    "Sunset",
    "Magnolia",
    "Willow",
    "Juniper",
    "Laurel",
    "Pine",
    "Canyon",
    "Harbor",
    "Mesa",
    "Palm",
    "Orchard",
    "Olive",
    "Walnut",
    "Madrone",
    "Manzanita",
    "Acacia",
    "Poppy",
    "Sequoia",
    "Alder",
    "Buena Vista",
    "El Camino",
];
const STREET_SUFFIXES: &[&str] = &["St", "Ave", "Dr", "Ln", "Ct", "Way", "Blvd", "Pl", "Rd"];
/// Californian cities with a postal code in each.
const CITIES: &[(&str, &str)] = &[
    ("Sacramento", "95814"),
    ("Fresno", "93721"),
    ("Riverside", "92501"),
    ("San Diego", "92101"),
    ("Bakersfield", "93301"),
    ("Temecula", "92590"),
    ("Ontario", "91761"),
    ("Fontana", "92335"),
    ("Modesto", "95354"),
    ("Stockton", "95202"),
    ("Oakland", "94612"),
    ("Santa Rosa", "95401"),
    ("Pasadena", "91101"),
    ("Irvine", "92618"),
    ("Chula Vista", "91910"),
    ("Long Beach", "90802"),
    ("Anaheim", "92805"),
    ("San Jose", "95113"),
];

pub(crate) fn routes() -> Router<Arc<SimState>> {
    Router::new()
        .route("/api/v1/pace_applications/{id}", get(get_application))
        .route("/api/v1/pace_applications", get(get_applications))
        .route(DECISIONS_PATH, post(post_decision))
        .route(FUNDING_CHECKS_PATH, post(post_funding_check))
        .route(FUNDING_RESOLUTIONS_PATH, post(post_funding_resolution))
        .route(SANCTIONS_ALERTS_PATH, post(post_sanctions_alert))
}

/// One decision as the Rails simulator recorded it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Delivery {
    pub decision: RailsDecision,
    /// Times it arrived: 1, or more when Dossier redelivered it (each acknowledged).
    pub received: u32,
}

/// One funding check as the Rails simulator recorded it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FundingDelivery {
    pub check: RailsFundingCheck,
    /// Times it arrived.
    pub received: u32,
}

/// Everything the decision and funding-check callbacks have recorded, by idempotency key.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Deliveries {
    pub decisions: std::collections::BTreeMap<String, Delivery>,
    #[serde(default)]
    pub funding_checks: std::collections::BTreeMap<String, FundingDelivery>,
    /// Underwriters' resolutions of funding HOLDs, by funding check id.
    #[serde(default)]
    pub funding_resolutions: std::collections::BTreeMap<String, RailsFundingResolution>,
    /// Sanctions monitoring alerts, by alert id, with the times each arrived.
    #[serde(default)]
    pub sanctions_alerts: std::collections::BTreeMap<String, (RailsSanctionsAlert, u32)>,
}

impl Deliveries {
    /// Requests that reached the callback with a valid decision, redeliveries included.
    pub fn received(&self) -> u64 {
        self.decisions.values().map(|d| u64::from(d.received)).sum()
    }

    /// Decisions recorded for one Dossier application.
    pub fn for_application(&self, id: uuid::Uuid) -> Vec<&Delivery> {
        self.decisions
            .values()
            .filter(|d| d.decision.application_id == id)
            .collect()
    }
}

/// The live ledger of the decision callback.
#[derive(Debug, Default)]
pub(crate) struct Ledger(std::sync::Mutex<Deliveries>);

impl Ledger {
    pub(crate) fn snapshot(&self) -> Deliveries {
        self.0.lock().expect("ledger lock").clone()
    }

    pub(crate) fn reset(&self) {
        *self.0.lock().expect("ledger lock") = Deliveries::default();
    }
}

/// `POST /api/v1/underwriting_decisions`: records a decision once per idempotency key and
/// acknowledges every delivery of it. The same key with a different decision is a 409,
/// as a real idempotent endpoint would answer.
async fn post_decision(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    body: Result<Json<RailsDecision>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Some(response) = denied(&state, &headers) {
        return response;
    }
    let Some(key) = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty())
    else {
        return super::bad_request("the Idempotency-Key header is required");
    };
    let decision = match body {
        Ok(Json(decision)) => decision,
        Err(rejection) => return super::bad_request(rejection.body_text()),
    };
    if key != decision.decision_id.to_string() {
        return super::bad_request("Idempotency-Key must be the decision_id");
    }
    let mut ledger = state.deliveries.0.lock().expect("ledger lock");
    let entry = ledger
        .decisions
        .entry(key.to_owned())
        .or_insert_with(|| Delivery {
            decision: decision.clone(),
            received: 0,
        });
    if entry.decision != decision {
        return super::json_error(StatusCode::CONFLICT, "idempotency_key_reused");
    }
    entry.received += 1;
    Json(RailsDecisionAck {
        decision_id: decision.decision_id,
        duplicate: entry.received > 1,
    })
    .into_response()
}

/// `POST /api/v1/funding_checks`: records a funding check once per idempotency key and
/// acknowledges every delivery of it, like the decision callback.
async fn post_funding_check(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    body: Result<Json<RailsFundingCheck>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Some(response) = denied(&state, &headers) {
        return response;
    }
    let check = match body {
        Ok(Json(check)) => check,
        Err(rejection) => return super::bad_request(rejection.body_text()),
    };
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
    if key != Some(check.funding_check_id.to_string().as_str()) {
        return super::bad_request("Idempotency-Key must be the funding_check_id");
    }
    let mut ledger = state.deliveries.0.lock().expect("ledger lock");
    let entry = ledger
        .funding_checks
        .entry(check.funding_check_id.to_string())
        .or_insert_with(|| FundingDelivery {
            check: check.clone(),
            received: 0,
        });
    if entry.check != check {
        return super::json_error(StatusCode::CONFLICT, "idempotency_key_reused");
    }
    entry.received += 1;
    Json(RailsFundingCheckAck {
        funding_check_id: check.funding_check_id,
        duplicate: entry.received > 1,
    })
    .into_response()
}

/// `POST /api/v1/funding_check_resolutions`: records the resolution of a funding HOLD
/// once per funding check; the same key with another resolution is a 409.
async fn post_funding_resolution(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    body: Result<Json<RailsFundingResolution>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Some(response) = denied(&state, &headers) {
        return response;
    }
    let resolution = match body {
        Ok(Json(r)) => r,
        Err(rejection) => return super::bad_request(rejection.body_text()),
    };
    let key = resolution.funding_check_id.to_string();
    if headers.get("idempotency-key").and_then(|v| v.to_str().ok()) != Some(key.as_str()) {
        return super::bad_request("Idempotency-Key must be the funding_check_id");
    }
    let mut ledger = state.deliveries.0.lock().expect("ledger lock");
    let entry = ledger
        .funding_resolutions
        .entry(key)
        .or_insert_with(|| resolution.clone());
    if *entry != resolution {
        return super::json_error(StatusCode::CONFLICT, "idempotency_key_reused");
    }
    Json(RailsFundingCheckAck {
        funding_check_id: resolution.funding_check_id,
        duplicate: false,
    })
    .into_response()
}

/// `POST /api/v1/sanctions_alerts`: records an alert once per idempotency key.
async fn post_sanctions_alert(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    body: Result<Json<RailsSanctionsAlert>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Some(response) = denied(&state, &headers) {
        return response;
    }
    let alert = match body {
        Ok(Json(a)) => a,
        Err(rejection) => return super::bad_request(rejection.body_text()),
    };
    let key = alert.alert_id.to_string();
    if headers.get("idempotency-key").and_then(|v| v.to_str().ok()) != Some(key.as_str()) {
        return super::bad_request("Idempotency-Key must be the alert_id");
    }
    let mut ledger = state.deliveries.0.lock().expect("ledger lock");
    let entry = ledger
        .sanctions_alerts
        .entry(key)
        .or_insert_with(|| (alert.clone(), 0));
    if entry.0 != alert {
        return super::json_error(StatusCode::CONFLICT, "idempotency_key_reused");
    }
    entry.1 += 1;
    Json(RailsSanctionsAlertAck {
        alert_id: alert.alert_id,
    })
    .into_response()
}

/// Most ids one batch request may ask for.
pub const MAX_BATCH: usize = 100;

/// `Some(401 response)` unless the request carries the expected bearer token.
fn denied(state: &SimState, headers: &HeaderMap) -> Option<Response> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if presented != Some(state.rails_token.as_str()) {
        let mut response = super::json_error(StatusCode::UNAUTHORIZED, "unauthorized");
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return Some(response);
    }
    None
}

#[derive(serde::Deserialize)]
struct BatchQuery {
    #[serde(default)]
    ids: String,
}

/// `GET /api/v1/pace_applications?ids=a,b,c`: many applications in one request.
async fn get_applications(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<BatchQuery>,
) -> Response {
    if let Some(response) = denied(&state, &headers) {
        return response;
    }
    let ids: Vec<&str> = q
        .ids
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if ids.is_empty() || ids.len() > MAX_BATCH {
        return super::json_error(
            StatusCode::BAD_REQUEST,
            "ids must list 1 to 100 comma-separated ids",
        );
    }
    let mut batch = dossier_upstream::rails::RailsApplicationBatch {
        applications: Vec::new(),
        missing: Vec::new(),
    };
    for id in ids {
        match application_for(id) {
            Some(a) => batch.applications.push(a),
            None => batch.missing.push(id.to_owned()),
        }
    }
    Json(batch).into_response()
}

async fn get_application(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(response) = denied(&state, &headers) {
        return response;
    }
    match application_for(&id) {
        Some(application) => Json(application).into_response(),
        None => super::json_error(StatusCode::NOT_FOUND, "not_found"),
    }
}

/// What the Rails simulator answers for an application id; `None` means 404.
///
/// Ids starting with "missing" do not exist; ids starting with "decline-" get an address
/// on "Delinquent Way", whose taxes are delinquent.
pub fn application_for(id: &str) -> Option<RailsApplication> {
    let key = id.trim();
    let lower = key.to_lowercase();
    if key.is_empty() || lower.starts_with("missing") {
        return None;
    }
    let mut d = Dice::new("rails", &[key]);

    // The property.
    let number = d.range(100, 19_999);
    let line1 = if lower.starts_with("decline-") {
        format!("{number} Delinquent Way")
    } else {
        format!("{number} {} {}", d.pick(STREETS), d.pick(STREET_SUFFIXES))
    };
    let (city, postal_code) = *d.pick(CITIES);
    let record = property_records::record_for(&PropertyQuery {
        line1: line1.clone(),
        city: city.to_string(),
        state: "CA".to_string(),
        postal_code: postal_code.to_string(),
        apn: String::new(),
    })
    .expect("generated addresses always have a property record");

    // The applicants: the owners of record.
    let applicants = record
        .owners
        .iter()
        .filter_map(|owner| property_records::split_owner(owner))
        .map(|(first, middle, last)| applicant(&mut d, &first, &middle, &last))
        .collect();

    // The contractor: a licence number not ending in a licensing trigger (01–95).
    let license_number = (d.range(1_000, 9_999) * 100 + d.range(1, 95)).to_string();
    let contractor = RailsContractor {
        business_name: licensing::business_name_for("CA", &license_number),
        license_number,
        license_state: "CA".to_string(),
    };

    // The measures.
    let mut measures = Vec::new();
    let which = d.range(0, 2); // 0: solar, 1: hvac, 2: both
    if which != 1 {
        let cost_cents = d.range(150, 350) * dollars(100);
        let kw = cost_cents as f64 / 100.0 / 3_000.0;
        measures.push(RailsMeasure {
            kind: "solar_pv".to_string(),
            cost_cents,
            description: format!("{kw:.1} kW rooftop solar"),
        });
    }
    if which != 0 {
        let cost_cents = d.range(80, 200) * dollars(100);
        measures.push(RailsMeasure {
            kind: "hvac".to_string(),
            cost_cents,
            description: "Heat pump HVAC replacement".to_string(),
        });
    }
    let amount_cents = measures.iter().map(|m| m.cost_cents).sum();

    Some(RailsApplication {
        id: id.to_string(),
        applicants,
        property: RailsProperty {
            line1,
            line2: String::new(),
            city: city.to_string(),
            state: "CA".to_string(),
            postal_code: postal_code.to_string(),
            apn: record.apn,
        },
        contractor,
        amount_cents,
        term_years: term_within_useful_life(&measures),
        measures,
    })
}

/// At most 20 years and within the cost-weighted useful life of what is financed (solar
/// 25 years, HVAC 15, as in the default policy), so a generated application passes the
/// term check unless a trigger says otherwise.
fn term_within_useful_life(measures: &[RailsMeasure]) -> i32 {
    let life = |kind: &str| if kind == "solar_pv" { 25 } else { 15 };
    let cost: i64 = measures.iter().map(|m| m.cost_cents).sum();
    let weighted: i64 = measures.iter().map(|m| m.cost_cents * life(&m.kind)).sum();
    ((weighted / cost.max(1)) as i32).min(20)
}

fn applicant(d: &mut Dice, first: &str, middle: &str, last: &str) -> RailsApplicant {
    // A valid-looking SSN: area 001–665 or 667–899, group 01–99, serial 0001–9999, and
    // never one of the identity vendors' trigger last-fours.
    let area = loop {
        let area = d.range(1, 899);
        if area != 666 {
            break area;
        }
    };
    let group = d.range(1, 99);
    let serial = loop {
        let serial = format!("{:04}", d.range(1, 9_999));
        if !TRIGGER_LAST_FOURS.contains(&serial.as_str()) {
            break serial;
        }
    };
    // Aged 30–75 today.
    let age = d.range(30, 75) as u32;
    let date_of_birth = seed::months_ago(age * 12) - chrono::Days::new(d.range(1, 360) as u64);
    let first = title_case(first);
    let last = title_case(last);
    RailsApplicant {
        email: format!(
            "{}.{}@example.com",
            first.to_lowercase(),
            last.to_lowercase()
        ),
        first_name: first,
        middle_name: middle.to_string(),
        last_name: last,
        suffix: String::new(),
        ssn: format!("{area:03}{group:02}{serial}"),
        date_of_birth,
        stated_annual_income_cents: d.range(60, 250) * dollars(1_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::seed::has_word;
    use crate::sim::{alt_identity, alt_valuation, identity, registry, valuation};
    use dossier_upstream::identity::PersonQuery;

    const TRIGGER_WORDS: &[&str] = &[
        "UNKNOWN",
        "DELINQUENT",
        "LATE",
        "LIEN",
        "PACE",
        "MORTGAGE",
        "TRUST",
        "CONDO",
        "COMMERCIAL",
        "DUPLEX",
        "FOURPLEX",
        "LAND",
        "MANSION",
        "LOWCONF",
        "NOAVM",
        "ALTLOWCONF",
        "NOALTAVM",
    ];

    #[test]
    fn street_lists_contain_no_trigger_word() {
        for street in STREETS.iter().chain(STREET_SUFFIXES) {
            for word in TRIGGER_WORDS {
                assert!(!has_word(street, word), "{street} contains {word}");
            }
        }
    }

    #[test]
    fn ordinary_applications_pass_every_simulator() {
        for n in 0..300 {
            let id = format!("app-{n}");
            let app = application_for(&id).unwrap();
            assert_eq!(app, application_for(&id).unwrap(), "deterministic");
            assert_eq!(app.id, id);
            assert_eq!(app.property.state, "CA");
            for word in TRIGGER_WORDS {
                assert!(!has_word(&app.property.line1, word));
            }
            let p = &app.property;
            let query = PropertyQuery {
                line1: p.line1.clone(),
                city: p.city.clone(),
                state: p.state.clone(),
                postal_code: p.postal_code.clone(),
                apn: String::new(),
            };
            let record = property_records::record_for(&query).unwrap();
            assert_eq!(record.apn, p.apn);
            assert!(!record.tax.delinquent);
            assert!(valuation::estimate_for(&p.line1, &p.city, &p.state, &p.postal_code).is_some());
            assert!(
                alt_valuation::estimate_for(&p.line1, &p.city, &p.state, &p.postal_code).is_some()
            );

            // Applicants are the owners of record.
            assert_eq!(app.applicants.len(), record.owners.len());
            for (a, owner) in app.applicants.iter().zip(&record.owners) {
                let county = if a.middle_name.is_empty() {
                    format!("{}, {}", a.last_name, a.first_name)
                } else {
                    format!("{}, {} {}", a.last_name, a.first_name, a.middle_name)
                };
                assert_eq!(county.to_uppercase(), *owner);

                let ssn = &a.ssn;
                assert_eq!(ssn.len(), 9);
                let area: u32 = ssn[..3].parse().unwrap();
                assert!((1..=899).contains(&area) && area != 666);
                assert_ne!(&ssn[3..5], "00");
                assert_ne!(&ssn[5..], "0000");
                assert!(!identity::TRIGGER_LAST_FOURS.contains(&&ssn[5..]));
                let age = seed::today().years_since(a.date_of_birth).unwrap();
                assert!((30..=75).contains(&age), "age {age}");

                let person = PersonQuery {
                    first_name: a.first_name.clone(),
                    middle_name: a.middle_name.clone(),
                    last_name: a.last_name.clone(),
                    ssn: a.ssn.clone(),
                    date_of_birth: a.date_of_birth,
                    line1: p.line1.clone(),
                    city: p.city.clone(),
                    state: p.state.clone(),
                    postal_code: p.postal_code.clone(),
                };
                assert!(identity::verify(&person).flags.is_empty());
                assert!(identity::bankruptcies(&person).filings.is_empty());
                assert!(alt_identity::verify(&person).flags.is_empty());
            }

            let c = &app.contractor;
            assert_eq!(c.license_number.len(), 6);
            assert!(!licensing::TRIGGER_ENDINGS.contains(&&c.license_number[4..]));
            let licence = licensing::license_for(&c.license_state, &c.license_number).unwrap();
            assert_eq!(licence.status, "ACTIVE");
            assert_eq!(licence.business_name, c.business_name);
            let business = registry::business_for(&c.business_name, "CA").unwrap();
            assert_eq!(business.status, "ACTIVE");

            assert!((1..=2).contains(&app.measures.len()));
            for m in &app.measures {
                match m.kind.as_str() {
                    "solar_pv" => {
                        assert!((dollars(15_000)..=dollars(35_000)).contains(&m.cost_cents))
                    }
                    "hvac" => assert!((dollars(8_000)..=dollars(20_000)).contains(&m.cost_cents)),
                    other => panic!("unexpected measure {other}"),
                }
            }
            assert_eq!(
                app.amount_cents,
                app.measures.iter().map(|m| m.cost_cents).sum::<i64>()
            );
            let life = |kind: &str| if kind == "solar_pv" { 25 } else { 15 };
            let cost: i64 = app.measures.iter().map(|m| m.cost_cents).sum();
            let weighted: i64 = app
                .measures
                .iter()
                .map(|m| m.cost_cents * life(&m.kind))
                .sum();
            assert!(
                app.term_years <= 20 && i64::from(app.term_years) * cost <= weighted,
                "{app:?}"
            );
        }
    }

    #[test]
    fn triggers() {
        assert!(application_for("missing-123").is_none());
        let app = application_for("decline-7").unwrap();
        assert!(app.property.line1.contains("Delinquent"));
        let p = &app.property;
        let record = property_records::record_for(&PropertyQuery {
            line1: p.line1.clone(),
            city: p.city.clone(),
            state: p.state.clone(),
            postal_code: p.postal_code.clone(),
            apn: String::new(),
        })
        .unwrap();
        assert!(record.tax.delinquent);
        assert_eq!(app.applicants.len(), record.owners.len());
    }
}
