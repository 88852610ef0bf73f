//! Simulated county property records: `GET /v1/properties?line1=&city=&state=&postal_code=[&apn=]`.
//!
//! [`record_for`] is the whole simulator; the handler only adapts it to HTTP. Triggers are
//! whole words in the upper-cased `line1` (see `docs/simulators.md`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::SimState;
use super::seed::{self, Dice, FIRST_NAMES, INITIALS, LAST_NAMES, dollars, has_word, normalise};
use chrono::NaiveDate;
use dossier_upstream::property_records::{
    AssessmentRecord, LienRecord, MortgageRecord, PropertyQuery, PropertyRecord, TaxStatus,
};
use serde::{Deserialize, Serialize};

const LENDERS: &[&str] = &[
    "WELLS FARGO BANK NA",
    "ROCKET MORTGAGE LLC",
    "JPMORGAN CHASE BANK NA",
    "UNITED WHOLESALE MORTGAGE LLC",
    "BANK OF AMERICA NA",
    "U S BANK NA",
    "PENNYMAC LOAN SERVICES LLC",
    "GOLDEN 1 CREDIT UNION",
];

pub(crate) fn routes() -> Router<Arc<SimState>> {
    Router::new()
        .route("/v1/properties", get(get_property))
        .route(
            "/_sim/property_records/events",
            post(post_event).delete(delete_events),
        )
}

async fn get_property(
    State(state): State<Arc<SimState>>,
    query: Result<Query<PropertyQuery>, QueryRejection>,
) -> Response {
    let Query(query) = match query {
        Ok(q) => q,
        Err(rejection) => return super::bad_request(rejection.body_text()),
    };
    if query.line1.trim().is_empty() {
        return super::bad_request("line1 must not be empty");
    }
    let events = state.property_events.of(&query);
    match record_for(&query).map(|r| with_events(r, &events)) {
        Some(record) => Json(record).into_response(),
        None => super::json_error(StatusCode::NOT_FOUND, "property_not_found"),
    }
}

/// Something recorded against a property after the simulator first answered for it:
/// what changes between an approval and funding. Events apply in the order recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PropertyEvent {
    /// A lien is recorded (`lien_kind`: "MECHANICS_LIEN", "JUDGMENT", "TAX_LIEN").
    LienRecorded {
        lien_kind: String,
        amount_cents: i64,
        recorded_on: NaiveDate,
    },
    /// The property is sold or re-titled: these are the owners of record now.
    OwnerChanged { owners: Vec<String> },
    /// The property taxes fall delinquent.
    TaxDelinquent,
    /// Every mortgage on the property is now this many days late.
    MortgageLate { days_late: u32 },
}

/// The body of `POST /_sim/property_records/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedEvent {
    /// The property, as Dossier asks for it (`apn` is ignored).
    pub property: PropertyQuery,
    pub event: PropertyEvent,
}

/// The events recorded so far, by normalised address.
#[derive(Debug, Default)]
pub(crate) struct PropertyEvents(Mutex<HashMap<String, Vec<PropertyEvent>>>);

fn address_key(q: &PropertyQuery) -> String {
    [&q.line1, &q.city, &q.state, &q.postal_code]
        .map(|part| normalise(part))
        .join("|")
}

impl PropertyEvents {
    pub(crate) fn record(&self, property: &PropertyQuery, event: PropertyEvent) {
        let mut events = self.0.lock().expect("events lock");
        events.entry(address_key(property)).or_default().push(event);
    }

    pub(crate) fn of(&self, property: &PropertyQuery) -> Vec<PropertyEvent> {
        let events = self.0.lock().expect("events lock");
        events
            .get(&address_key(property))
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn clear(&self) {
        self.0.lock().expect("events lock").clear();
    }
}

/// The record with the recorded events applied.
pub fn with_events(mut record: PropertyRecord, events: &[PropertyEvent]) -> PropertyRecord {
    for event in events {
        match event {
            PropertyEvent::LienRecorded {
                lien_kind,
                amount_cents,
                recorded_on,
            } => record.liens.push(LienRecord {
                kind: lien_kind.clone(),
                amount_cents: *amount_cents,
                recorded_on: *recorded_on,
            }),
            PropertyEvent::OwnerChanged { owners } => record.owners = owners.clone(),
            PropertyEvent::TaxDelinquent => {
                record.tax.delinquent = true;
                record.tax.late_payments.push(seed::days_ago(0));
            }
            PropertyEvent::MortgageLate { days_late } => {
                for m in &mut record.mortgages {
                    m.days_late = *days_late;
                }
            }
        }
    }
    record
}

async fn post_event(
    State(state): State<Arc<SimState>>,
    body: Result<Json<RecordedEvent>, axum::extract::rejection::JsonRejection>,
) -> Response {
    match body {
        Ok(Json(recorded)) => {
            tracing::info!(event = ?recorded.event, "simulator: property event recorded");
            state
                .property_events
                .record(&recorded.property, recorded.event);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(rejection) => super::bad_request(rejection.body_text()),
    }
}

async fn delete_events(State(state): State<Arc<SimState>>) -> StatusCode {
    state.property_events.clear();
    StatusCode::NO_CONTENT
}

/// What the property records simulator answers for `q`; `None` means 404.
///
/// Everything is derived from a hash of the normalised `line1`, `city`, `state` and
/// `postal_code` (the `apn` is ignored for the look-up: the county's own APN is returned).
pub fn record_for(q: &PropertyQuery) -> Option<PropertyRecord> {
    let line1 = normalise(&q.line1);
    let city = normalise(&q.city);
    let state = normalise(&q.state);
    let postal_code = normalise(&q.postal_code);
    let word = |w: &str| has_word(&line1, w);

    if line1.is_empty() || word("UNKNOWN") {
        return None;
    }

    let mut d = Dice::new("property_records", &[&line1, &city, &state, &postal_code]);
    let apn = format!(
        "{:03}-{:03}-{:03}",
        d.range(100, 999),
        d.range(0, 999),
        d.range(0, 999)
    );

    // Owners and vesting.
    let last = *d.pick(LAST_NAMES);
    let first = *d.pick(FIRST_NAMES);
    let two_owners = d.chance(50);
    let mut second_first = *d.pick(FIRST_NAMES);
    while second_first == first {
        second_first = *d.pick(FIRST_NAMES);
    }
    let (owners, vesting) = if word("TRUST") {
        (vec![format!("THE {last} FAMILY TRUST")], "TRUST")
    } else if two_owners {
        let owners = vec![
            owner_name(&mut d, last, first),
            owner_name(&mut d, last, second_first),
        ];
        let vesting = if d.chance(50) {
            "JOINT_TENANTS"
        } else {
            "COMMUNITY_PROPERTY"
        };
        (owners, vesting)
    } else {
        (vec![owner_name(&mut d, last, first)], "INDIVIDUAL")
    };

    // Property type.
    let (property_type, units) = if word("CONDO") {
        ("CONDOMINIUM", 1)
    } else if word("COMMERCIAL") {
        ("COMMERCIAL", 1)
    } else if word("DUPLEX") {
        ("MULTI_FAMILY", 2)
    } else if word("FOURPLEX") {
        ("MULTI_FAMILY", 4)
    } else if word("LAND") {
        ("VACANT_LAND", 0)
    } else {
        ("SINGLE_FAMILY", 1)
    };

    // Value and taxes: assessed value in whole thousands of dollars.
    let assessed_dollars = if word("MANSION") {
        d.range(3_200, 6_000) * 1_000
    } else {
        d.range(350, 1_200) * 1_000
    };
    let assessed_value_cents = assessed_dollars * 100;
    // 1.10 %–1.25 % of assessed value (California's 1 % plus voter-approved debt).
    let annual_tax_cents = assessed_value_cents * d.range(110, 125) / 10_000;

    let tax = if word("DELINQUENT") {
        TaxStatus {
            delinquent: true,
            late_payments: vec![seed::days_ago(400), seed::days_ago(90)],
        }
    } else if word("LATE") {
        TaxStatus {
            delinquent: false,
            late_payments: vec![seed::days_ago(820), seed::days_ago(210)],
        }
    } else {
        TaxStatus {
            delinquent: false,
            late_payments: vec![],
        }
    };

    // One current mortgage with a balance of 30–60 % of the assessed value.
    let lender = d.pick(LENDERS).to_string();
    let balance_cents = assessed_value_cents * d.range(30, 60) / 100 / 100 * 100;
    let mortgages = if property_type == "VACANT_LAND" {
        vec![]
    } else if word("MORTGAGE") {
        vec![MortgageRecord {
            lender,
            balance_cents,
            days_late: 60,
            late_payments_12m: 2,
            notice_of_default: true,
        }]
    } else {
        vec![MortgageRecord {
            lender,
            balance_cents,
            days_late: 0,
            late_payments_12m: 0,
            notice_of_default: false,
        }]
    };

    let liens = if word("LIEN") {
        vec![LienRecord {
            kind: "JUDGMENT".to_string(),
            amount_cents: dollars(5_000),
            recorded_on: seed::days_ago(365),
        }]
    } else {
        vec![]
    };

    let assessments = if word("PACE") {
        vec![AssessmentRecord {
            program: "HERO".to_string(),
            balance_cents: dollars(25_000),
            annual_payment_cents: dollars(2_500),
        }]
    } else {
        vec![]
    };

    Some(PropertyRecord {
        apn,
        line1,
        city,
        state,
        postal_code,
        owners,
        vesting: vesting.to_string(),
        property_type: property_type.to_string(),
        units,
        assessed_value_cents,
        annual_tax_cents,
        tax,
        mortgages,
        liens,
        assessments,
    })
}

/// "LAST, FIRST" or, sometimes, "LAST, FIRST M".
fn owner_name(d: &mut Dice, last: &str, first: &str) -> String {
    if d.chance(40) {
        format!("{last}, {first} {}", d.pick(INITIALS))
    } else {
        format!("{last}, {first}")
    }
}

/// An owner of record split back into its parts: `(first, middle_initial, last)`.
/// `None` for owners that are not people ("THE SMITH FAMILY TRUST").
pub(crate) fn split_owner(owner: &str) -> Option<(String, String, String)> {
    let (last, rest) = owner.split_once(", ")?;
    let mut given = rest.split_whitespace();
    let first = given.next()?.to_string();
    let middle = given.next().unwrap_or_default().to_string();
    Some((first, middle, last.to_string()))
}

/// The market value the simulators agree on: 1.2 × the assessed value.
pub(crate) fn market_value_cents(record: &PropertyRecord) -> i64 {
    record.assessed_value_cents * 6 / 5
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn query(line1: &str) -> PropertyQuery {
        PropertyQuery {
            line1: line1.to_string(),
            city: "Fresno".to_string(),
            state: "CA".to_string(),
            postal_code: "93721".to_string(),
            apn: String::new(),
        }
    }

    #[test]
    fn ordinary_address_passes_underwriting() {
        for n in 0..200 {
            let r = record_for(&query(&format!("{} Maple Ave", 100 + n))).unwrap();
            assert!(!r.tax.delinquent && r.tax.late_payments.is_empty());
            assert_eq!(r.property_type, "SINGLE_FAMILY");
            assert_eq!(r.units, 1);
            assert!((dollars(350_000)..=dollars(1_200_000)).contains(&r.assessed_value_cents));
            assert_eq!(r.mortgages.len(), 1);
            let m = &r.mortgages[0];
            assert!(m.days_late == 0 && m.late_payments_12m == 0 && !m.notice_of_default);
            assert!(m.balance_cents >= r.assessed_value_cents * 30 / 100 - 100);
            assert!(m.balance_cents <= r.assessed_value_cents * 60 / 100);
            assert!(r.liens.is_empty() && r.assessments.is_empty());
            match r.owners.len() {
                1 => assert_eq!(r.vesting, "INDIVIDUAL"),
                2 => {
                    assert!(["JOINT_TENANTS", "COMMUNITY_PROPERTY"].contains(&r.vesting.as_str()));
                    let a = split_owner(&r.owners[0]).unwrap();
                    let b = split_owner(&r.owners[1]).unwrap();
                    assert_eq!(a.2, b.2, "two owners share the last name");
                    assert_ne!(a.0, b.0);
                }
                n => panic!("{n} owners"),
            }
            for owner in &r.owners {
                let (first, middle, last) = split_owner(owner).unwrap();
                assert!(!first.is_empty() && !last.is_empty() && middle.len() <= 1);
            }
        }
    }

    #[test]
    fn deterministic_and_normalised() {
        let a = record_for(&query("12 Maple Ave")).unwrap();
        let mut q = query("  12   MAPLE ave ");
        q.city = "FRESNO".into();
        assert_eq!(record_for(&q).unwrap(), a);
        assert_eq!(a.line1, "12 MAPLE AVE");
        assert_ne!(record_for(&query("14 Maple Ave")).unwrap().apn, a.apn);
    }

    #[test]
    fn triggers() {
        assert!(record_for(&query("1 Unknown Rd")).is_none());

        let r = record_for(&query("1 Delinquent Way")).unwrap();
        assert!(r.tax.delinquent);
        assert_eq!(r.tax.late_payments.len(), 2);
        assert!(
            r.tax
                .late_payments
                .iter()
                .all(|d| *d > seed::months_ago(24))
        );

        let r = record_for(&query("1 Late St")).unwrap();
        assert!(!r.tax.delinquent);
        assert_eq!(r.tax.late_payments.len(), 2);
        assert!(
            r.tax
                .late_payments
                .iter()
                .all(|d| *d > seed::months_ago(36))
        );
        assert!(
            record_for(&query("1 Slate St"))
                .unwrap()
                .tax
                .late_payments
                .is_empty()
        );

        let r = record_for(&query("1 Lien St")).unwrap();
        assert_eq!(r.liens.len(), 1);
        assert_eq!(r.liens[0].kind, "JUDGMENT");
        assert_eq!(r.liens[0].amount_cents, 500_000);
        assert_eq!(r.liens[0].recorded_on, seed::days_ago(365));

        let r = record_for(&query("1 Pace St")).unwrap();
        assert_eq!(
            r.assessments,
            vec![AssessmentRecord {
                program: "HERO".into(),
                balance_cents: 2_500_000,
                annual_payment_cents: 250_000
            }]
        );

        let r = record_for(&query("1 Mortgage St")).unwrap();
        assert_eq!(r.mortgages[0].days_late, 60);
        assert!(r.mortgages[0].notice_of_default);

        let r = record_for(&query("1 Trust St")).unwrap();
        assert_eq!(r.vesting, "TRUST");
        assert_eq!(r.owners.len(), 1);
        assert!(r.owners[0].starts_with("THE ") && r.owners[0].ends_with(" FAMILY TRUST"));

        let kind = |line1: &str| {
            let r = record_for(&query(line1)).unwrap();
            (r.property_type, r.units)
        };
        assert_eq!(kind("1 Condo Ct"), ("CONDOMINIUM".into(), 1));
        assert_eq!(kind("1 Commercial St"), ("COMMERCIAL".into(), 1));
        assert_eq!(kind("1 Duplex St"), ("MULTI_FAMILY".into(), 2));
        assert_eq!(kind("1 Fourplex St"), ("MULTI_FAMILY".into(), 4));
        assert_eq!(kind("1 Land Rd"), ("VACANT_LAND".into(), 0));

        let r = record_for(&query("1 Mansion Dr")).unwrap();
        assert!(r.assessed_value_cents > dollars(3_000_000));
    }
}
