//! Simulated second identity vendor (`Upstream::AltIdentity`): the identity wire format
//! (`POST /v1/identity/verify`, `/v1/bankruptcies/search`, `/v1/income/verify`) with its
//! own data.
//!
//! It knows the same people as the primary vendor. Facts about a person are the same at
//! both (an invalid SSN, a death, bankruptcy filings, a low income); what differs is each
//! vendor's own file: its scores and income figures come from its own dice, the primary's
//! mixed-up file (SSN ending 1111) is verified normally here, and SSN ending 7777 is mixed
//! up here instead.

use std::sync::Arc;

use axum::Router;

use super::SimState;
use super::identity::{self, Answers, IdentityVendor, routes_answering, verify_by};
use super::seed::Dice;
use dossier_upstream::identity::{
    BankruptcySearch, IdentityResult, IncomeVerification, PersonQuery,
};

pub(crate) const ALT: IdentityVendor = IdentityVendor {
    dice_domain: "alt_identity",
    scores: (85, 97),
    mixed_file_last_four: "7777",
};

const ALT_ANSWERS: Answers = Answers {
    verify,
    bankruptcies,
    income,
};

pub(crate) fn routes() -> Router<Arc<SimState>> {
    routes_answering(&ALT_ANSWERS)
}

/// What the second identity vendor's simulator answers for `q`.
pub fn verify(q: &PersonQuery) -> IdentityResult {
    verify_by(&ALT, q)
}

/// The same filings as the primary vendor: both read the court records.
pub fn bankruptcies(q: &PersonQuery) -> BankruptcySearch {
    identity::bankruptcies(q)
}

/// The primary vendor's figures, the income within ±5 % (whole thousands of dollars):
/// another vendor's reading of the same pay records, so ability to pay judges alike.
/// The debts come from the same credit file and are the same.
pub fn income(q: &PersonQuery) -> IncomeVerification {
    let primary = identity::income(q);
    let mut d = Dice::new("alt_income", &[&q.first_name, &q.last_name, q.ssn.trim()]);
    IncomeVerification {
        verified_annual_income_cents: primary.verified_annual_income_cents * d.range(95, 105)
            / 100
            / 100_000
            * 100_000,
        ..primary
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::identity::tests::person;

    #[test]
    fn ordinary_person_passes_with_scores_of_its_own() {
        let mut differs_from_primary = 0;
        for serial in 1000..1100 {
            let q = person(&format!("52348{serial}"));
            let r = verify(&q);
            assert!((85..=97).contains(&r.score) && r.flags.is_empty());
            assert_eq!(verify(&q), r, "deterministic");
            if identity::verify(&q) != r {
                differs_from_primary += 1;
            }
            assert!(bankruptcies(&q).filings.is_empty());

            let (alt, primary) = (income(&q), identity::income(&q));
            let ratio = alt.verified_annual_income_cents as f64
                / primary.verified_annual_income_cents as f64;
            assert!((0.94..=1.05).contains(&ratio), "ratio {ratio}");
            assert_eq!(alt.verified_annual_income_cents % 100_000, 0);
            assert_eq!(
                alt.monthly_debt_payments_cents,
                primary.monthly_debt_payments_cents
            );
        }
        assert!(differs_from_primary > 50, "{differs_from_primary}");
    }

    #[test]
    fn verifies_the_person_the_primary_mixes_up_and_mixes_up_its_own() {
        let q = person("523481111");
        assert_eq!(identity::verify(&q).flags, vec!["SSN_MULTIPLE_IDENTITIES"]);
        let r = verify(&q);
        assert!(r.score >= 85 && r.flags.is_empty(), "{r:?}");

        let q = person("523487777");
        assert_eq!(
            verify(&q),
            IdentityResult {
                score: 45,
                flags: vec!["SSN_MULTIPLE_IDENTITIES".into()]
            }
        );
        assert!(identity::verify(&q).flags.is_empty());
    }

    #[test]
    fn facts_about_the_person_are_the_same_at_both_vendors() {
        for ssn in ["523485555", "52348-5555"] {
            assert_eq!(verify(&person(ssn)), identity::verify(&person(ssn)));
        }
        for ssn in ["523482222", "523483333", "523484444"] {
            let filings = bankruptcies(&person(ssn)).filings;
            assert_eq!(filings.len(), 1);
            assert_eq!(filings, identity::bankruptcies(&person(ssn)).filings);
        }
        let low = income(&person("523486666"));
        assert!(low.verified_annual_income_cents <= 2_400_000);
        assert_eq!(low.monthly_debt_payments_cents, 150_000);
    }
}
