//! Simulated identity verification and bankruptcy search:
//! `POST /v1/identity/verify` and `POST /v1/bankruptcies/search`, both with a JSON
//! [`PersonQuery`] body. Triggers are the SSN's last four digits.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};

use super::SimState;
use super::seed::{self, Dice};
use dossier_upstream::identity::{BankruptcyFiling, BankruptcySearch, IdentityResult, PersonQuery};

/// SSN last-four digits that trigger a scenario; generated people never use them.
pub(crate) const TRIGGER_LAST_FOURS: [&str; 6] = ["1111", "2222", "3333", "4444", "5555", "6666"];

pub(crate) fn routes() -> Router<Arc<SimState>> {
    Router::new()
        .route("/v1/identity/verify", post(post_verify))
        .route("/v1/bankruptcies/search", post(post_bankruptcies))
        .route("/v1/income/verify", post(post_income))
}

async fn post_income(body: Result<Json<PersonQuery>, JsonRejection>) -> Response {
    match body {
        Ok(Json(q)) => Json(income(&q)).into_response(),
        Err(rejection) => super::bad_request(rejection.body_text()),
    }
}

/// What the income verification endpoint answers for `q`: $90,000–$220,000 a year and
/// $300–$1,500 a month of debt payments, from the person; SSN ending 6666: $22,000 a year
/// with $1,500 a month of debts (fails ability to pay).
pub fn income(q: &PersonQuery) -> dossier_upstream::identity::IncomeVerification {
    if last_four(q) == "6666" {
        return dossier_upstream::identity::IncomeVerification {
            verified_annual_income_cents: 2_200_000,
            monthly_debt_payments_cents: 150_000,
        };
    }
    let ssn = ssn_digits(q);
    let mut d = Dice::new("income", &[&q.first_name, &q.last_name, &ssn]);
    dossier_upstream::identity::IncomeVerification {
        verified_annual_income_cents: d.range(90, 220) * 100_000,
        monthly_debt_payments_cents: d.range(3, 15) * 10_000,
    }
}

async fn post_verify(body: Result<Json<PersonQuery>, JsonRejection>) -> Response {
    match body {
        Ok(Json(q)) => Json(verify(&q)).into_response(),
        Err(rejection) => super::bad_request(rejection.body_text()),
    }
}

async fn post_bankruptcies(body: Result<Json<PersonQuery>, JsonRejection>) -> Response {
    match body {
        Ok(Json(q)) => Json(bankruptcies(&q)).into_response(),
        Err(rejection) => super::bad_request(rejection.body_text()),
    }
}

fn ssn_digits(q: &PersonQuery) -> String {
    q.ssn.trim().to_string()
}

fn last_four(q: &PersonQuery) -> String {
    let chars: Vec<char> = ssn_digits(q).chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

/// What the identity simulator answers for `q`.
pub fn verify(q: &PersonQuery) -> IdentityResult {
    let ssn = ssn_digits(q);
    if ssn.len() != 9 || !ssn.bytes().all(|b| b.is_ascii_digit()) {
        return IdentityResult {
            score: 10,
            flags: vec!["SSN_INVALID".to_string()],
        };
    }
    match last_four(q).as_str() {
        "1111" => IdentityResult {
            score: 45,
            flags: vec!["SSN_MULTIPLE_IDENTITIES".to_string()],
        },
        "5555" => IdentityResult {
            score: 20,
            flags: vec!["SSN_DECEASED".to_string()],
        },
        _ => {
            let dob = q.date_of_birth.to_string();
            let mut d = Dice::new("identity", &[&q.first_name, &q.last_name, &ssn, &dob]);
            IdentityResult {
                score: d.range(90, 99) as u32,
                flags: vec![],
            }
        }
    }
}

/// What the bankruptcy search simulator answers for `q`.
pub fn bankruptcies(q: &PersonQuery) -> BankruptcySearch {
    let filings = match last_four(q).as_str() {
        "2222" => vec![BankruptcyFiling {
            chapter: 7,
            filed_on: seed::months_ago(24),
            disposition: "DISCHARGED".to_string(),
            closed_on: Some(seed::months_ago(18)),
        }],
        "3333" => vec![BankruptcyFiling {
            chapter: 13,
            filed_on: seed::months_ago(72),
            disposition: "DISMISSED".to_string(),
            closed_on: Some(seed::months_ago(60)),
        }],
        "4444" => vec![BankruptcyFiling {
            chapter: 13,
            filed_on: seed::months_ago(6),
            disposition: "OPEN".to_string(),
            closed_on: None,
        }],
        _ => vec![],
    };
    BankruptcySearch { filings }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    pub(crate) fn person(ssn: &str) -> PersonQuery {
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

    #[test]
    fn ordinary_person_passes() {
        for serial in 1000..1100 {
            let q = person(&format!("52348{serial}"));
            let r = verify(&q);
            assert!((90..=99).contains(&r.score) && r.flags.is_empty());
            assert!(bankruptcies(&q).filings.is_empty());
            assert_eq!(verify(&q), r);
        }
    }

    #[test]
    fn triggers() {
        assert_eq!(
            verify(&person("523481111")),
            IdentityResult {
                score: 45,
                flags: vec!["SSN_MULTIPLE_IDENTITIES".into()]
            }
        );
        assert_eq!(
            verify(&person("523485555")),
            IdentityResult {
                score: 20,
                flags: vec!["SSN_DECEASED".into()]
            }
        );
        assert_eq!(verify(&person("52348-5555")).flags, vec!["SSN_INVALID"]);

        let f = &bankruptcies(&person("523482222")).filings;
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].chapter, f[0].disposition.as_str()), (7, "DISCHARGED"));
        assert_eq!(f[0].filed_on, seed::months_ago(24));
        assert_eq!(f[0].closed_on, Some(seed::months_ago(18)));

        let f = &bankruptcies(&person("523483333")).filings;
        assert_eq!((f[0].chapter, f[0].disposition.as_str()), (13, "DISMISSED"));
        assert_eq!(f[0].filed_on, seed::months_ago(72));
        assert_eq!(f[0].closed_on, Some(seed::months_ago(60)));

        let f = &bankruptcies(&person("523484444")).filings;
        assert_eq!((f[0].chapter, f[0].disposition.as_str()), (13, "OPEN"));
        assert_eq!(f[0].filed_on, seed::months_ago(6));
        assert_eq!(f[0].closed_on, None);
    }
}
