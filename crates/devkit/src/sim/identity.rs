//! Simulated identity verification, bankruptcy search and income verification:
//! `POST /v1/identity/verify`, `POST /v1/bankruptcies/search` and
//! `POST /v1/income/verify`, all with a JSON [`PersonQuery`] body. Triggers are the SSN's
//! last four digits.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;

use super::SimState;
use super::seed::{self, Dice};
use dossier_upstream::identity::{
    BankruptcyFiling, BankruptcySearch, IdentityResult, IncomeVerification, PersonQuery,
};

/// SSN last-four digits that trigger a scenario at either identity vendor; generated
/// people never use them.
pub(crate) const TRIGGER_LAST_FOURS: [&str; 7] =
    ["1111", "2222", "3333", "4444", "5555", "6666", "7777"];

pub(crate) fn routes() -> Router<Arc<SimState>> {
    routes_answering(&PRIMARY_ANSWERS)
}

/// The pure functions one identity vendor's simulator answers with: both identity
/// vendors speak this wire format.
pub(crate) struct Answers {
    pub(crate) verify: fn(&PersonQuery) -> IdentityResult,
    pub(crate) bankruptcies: fn(&PersonQuery) -> BankruptcySearch,
    pub(crate) income: fn(&PersonQuery) -> IncomeVerification,
}

const PRIMARY_ANSWERS: Answers = Answers {
    verify,
    bankruptcies,
    income,
};

pub(crate) fn routes_answering(answers: &'static Answers) -> Router<Arc<SimState>> {
    Router::new()
        .route(
            "/v1/identity/verify",
            post(move |body| answer(answers.verify, body)),
        )
        .route(
            "/v1/bankruptcies/search",
            post(move |body| answer(answers.bankruptcies, body)),
        )
        .route(
            "/v1/income/verify",
            post(move |body| answer(answers.income, body)),
        )
}

async fn answer<T: Serialize>(
    respond: fn(&PersonQuery) -> T,
    body: Result<Json<PersonQuery>, JsonRejection>,
) -> Response {
    match body {
        Ok(Json(q)) => Json(respond(&q)).into_response(),
        Err(rejection) => super::bad_request(rejection.body_text()),
    }
}

/// What the income verification endpoint answers for `q`: $90,000–$220,000 a year and
/// $300–$1,500 a month of debt payments, from the person; SSN ending 6666: $22,000 a year
/// with $1,500 a month of debts (fails ability to pay).
pub fn income(q: &PersonQuery) -> IncomeVerification {
    if last_four(q) == "6666" {
        return IncomeVerification {
            verified_annual_income_cents: 2_200_000,
            monthly_debt_payments_cents: 150_000,
        };
    }
    let ssn = ssn_digits(q);
    let mut d = Dice::new("income", &[&q.first_name, &q.last_name, &ssn]);
    IncomeVerification {
        verified_annual_income_cents: d.range(90, 220) * 100_000,
        monthly_debt_payments_cents: d.range(3, 15) * 10_000,
    }
}

fn ssn_digits(q: &PersonQuery) -> String {
    q.ssn.trim().to_string()
}

fn last_four(q: &PersonQuery) -> String {
    let chars: Vec<char> = ssn_digits(q).chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

/// What sets one identity vendor's verification apart from another's, for the same
/// people.
pub(crate) struct IdentityVendor {
    /// Keeps this vendor's scores independent of the other vendor's.
    pub(crate) dice_domain: &'static str,
    /// Score of an ordinary person, inclusive.
    pub(crate) scores: (i64, i64),
    /// The SSN last four for which this vendor's file mixes the person up with others
    /// (score 45, `SSN_MULTIPLE_IDENTITIES`): its own data quality, not a fact about
    /// the person, so the other vendor verifies them.
    pub(crate) mixed_file_last_four: &'static str,
}

/// The primary identity vendor (`Upstream::Identity`).
pub(crate) const PRIMARY: IdentityVendor = IdentityVendor {
    dice_domain: "identity",
    scores: (90, 99),
    mixed_file_last_four: "1111",
};

/// What the identity simulator answers for `q`.
pub fn verify(q: &PersonQuery) -> IdentityResult {
    verify_by(&PRIMARY, q)
}

/// What `vendor` answers for `q`. An invalid SSN and a deceased person (SSN ending
/// 5555) are facts every vendor reports alike.
pub(crate) fn verify_by(vendor: &IdentityVendor, q: &PersonQuery) -> IdentityResult {
    let ssn = ssn_digits(q);
    if ssn.len() != 9 || !ssn.bytes().all(|b| b.is_ascii_digit()) {
        return IdentityResult {
            score: 10,
            flags: vec!["SSN_INVALID".to_string()],
        };
    }
    match last_four(q).as_str() {
        last_four if last_four == vendor.mixed_file_last_four => IdentityResult {
            score: 45,
            flags: vec!["SSN_MULTIPLE_IDENTITIES".to_string()],
        },
        "5555" => IdentityResult {
            score: 20,
            flags: vec!["SSN_DECEASED".to_string()],
        },
        _ => {
            let dob = q.date_of_birth.to_string();
            let mut d = Dice::new(
                vendor.dice_domain,
                &[&q.first_name, &q.last_name, &ssn, &dob],
            );
            let (lo, hi) = vendor.scores;
            IdentityResult {
                score: d.range(lo, hi) as u32,
                flags: vec![],
            }
        }
    }
}

/// What the bankruptcy search simulator answers for `q`. Filings are court records, so
/// every identity vendor finds the same ones.
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
pub(crate) mod tests {
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
