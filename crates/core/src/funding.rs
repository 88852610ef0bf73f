//! Pre-funding re-verification, the pure part: what differs between the evidence an
//! approval was decided on and the evidence gathered again before funding, and the
//! funding verdict.
//!
//! Weeks pass between an approval and funding. In between a lien can be recorded, the
//! property sold, taxes or the mortgage fall behind, an owner file for bankruptcy, the
//! contractor's licence lapse, or a new sanctions list name someone. The service asks
//! the upstreams again, judges the new inputs with the same checks ([`judge_all`]), and
//! this module says what changed, in words an underwriter reads. No personal data goes
//! into the descriptions: owners and applicants are not named.
//!
//! [`judge_all`]: crate::judge::judge_all

use serde::{Deserialize, Serialize};

use crate::checks::dollars;
use crate::domain::{Decision, Financing, Measure};
use crate::evidence::{BankruptcyFiling, LienRecord, PropertyRecord};
use crate::judge::{Answer, RunInputs, Screened};

/// CLEAR: fund. HOLD: an underwriter must look before funding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FundingVerdict {
    Clear,
    Hold,
}

impl FundingVerdict {
    /// The re-run checks decide: CLEAR if they would approve today, or, for an approval
    /// an underwriter gave to a REFER (`accepted`: that REFER's codes), if they refer
    /// again for nothing but what the underwriter already accepted. Anything else is a
    /// HOLD.
    pub fn of(
        decision: Decision,
        reasons: &[String],
        accepted: Option<&[String]>,
    ) -> FundingVerdict {
        match (decision, accepted) {
            (Decision::Approved, _) => FundingVerdict::Clear,
            (Decision::Refer, Some(accepted)) if reasons.iter().all(|r| accepted.contains(r)) => {
                FundingVerdict::Clear
            }
            _ => FundingVerdict::Hold,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FundingVerdict::Clear => "clear",
            FundingVerdict::Hold => "hold",
        }
    }

    pub fn parse(s: &str) -> Option<FundingVerdict> {
        [FundingVerdict::Clear, FundingVerdict::Hold]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// One difference in the evidence since the approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceChange {
    /// "property", "applicant N", "contractor" or "financing".
    pub subject: String,
    /// A stable identifier, e.g. `lien_recorded`, `owners_changed`.
    pub kind: String,
    /// For underwriters, e.g. "a $4,200.00 mechanics lien recorded 2026-12-01".
    pub description: String,
}

fn change(subject: &str, kind: &str, description: String) -> EvidenceChange {
    EvidenceChange {
        subject: subject.to_owned(),
        kind: kind.to_owned(),
        description,
    }
}

/// Every difference between the approval's inputs and today's, in a stable order:
/// financing, property, applicants, contractor.
pub fn changes(approved: &RunInputs, now: &RunInputs) -> Vec<EvidenceChange> {
    let mut out = financing_changes(
        &approved.financing,
        &now.financing,
        &approved.measures,
        &now.measures,
    );
    out.extend(answer_changes(
        "property",
        "property records",
        &approved.property_record,
        &now.property_record,
        property_changes,
    ));
    for (i, (before, after)) in approved.applicants.iter().zip(&now.applicants).enumerate() {
        let subject = format!("applicant {}", i + 1);
        out.extend(answer_changes(
            &subject,
            "the bankruptcy search",
            &before.bankruptcy,
            &after.bankruptcy,
            |s, b, a| bankruptcy_changes(s, &b.filings, &a.filings),
        ));
        out.extend(screening_changes(
            &subject,
            &before.sanctions,
            &after.sanctions,
        ));
    }
    out.extend(answer_changes(
        "contractor",
        "the licence board",
        &approved.license,
        &now.license,
        |s, b, a| {
            let mut out = Vec::new();
            if b.status != a.status {
                out.push(change(
                    s,
                    "license_status_changed",
                    format!("the licence is now {} (was {})", a.status, b.status),
                ));
            }
            if b.expires_on != a.expires_on {
                out.push(change(
                    s,
                    "license_expiry_changed",
                    format!(
                        "the licence now expires {} (was {})",
                        a.expires_on, b.expires_on
                    ),
                ));
            }
            if b.bonded && !a.bonded {
                out.push(change(
                    s,
                    "license_bond_lapsed",
                    "the contractor's bond is no longer on file".into(),
                ));
            }
            out
        },
    ));
    out.extend(answer_changes(
        "contractor",
        "the business registry",
        &approved.business,
        &now.business,
        |s, b, a| {
            if b.status == a.status {
                return Vec::new();
            }
            vec![change(
                s,
                "business_status_changed",
                format!("the business is now {} (was {})", a.status, b.status),
            )]
        },
    ));
    out.extend(screening_changes(
        "contractor",
        &approved.company_sanctions,
        &now.company_sanctions,
    ));
    out
}

fn financing_changes(
    before: &Financing,
    after: &Financing,
    measures_before: &[Measure],
    measures_after: &[Measure],
) -> Vec<EvidenceChange> {
    let s = "financing";
    let mut out = Vec::new();
    if before.amount_cents != after.amount_cents {
        out.push(change(
            s,
            "amount_changed",
            format!(
                "the final amount is {} (approved: {})",
                dollars(after.amount_cents),
                dollars(before.amount_cents)
            ),
        ));
    }
    if before.term_years != after.term_years {
        out.push(change(
            s,
            "term_changed",
            format!(
                "the final term is {} years (approved: {})",
                after.term_years, before.term_years
            ),
        ));
    }
    if measures_before != measures_after {
        out.push(change(
            s,
            "measures_changed",
            format!(
                "the final measures differ from the approved ones ({} measures, {} in all; approved: {}, {})",
                measures_after.len(),
                dollars(measures_after.iter().map(|m| m.cost_cents).sum()),
                measures_before.len(),
                dollars(measures_before.iter().map(|m| m.cost_cents).sum())
            ),
        ));
    }
    out
}

/// The changes of one upstream answer: found both times → `found`; otherwise what
/// became of it (no longer found, could not be asked again, found now).
fn answer_changes<T>(
    subject: &str,
    source: &str,
    before: &Answer<T>,
    after: &Answer<T>,
    found: impl FnOnce(&str, &T, &T) -> Vec<EvidenceChange>,
) -> Vec<EvidenceChange> {
    match (before, after) {
        (Answer::Found { value: b, .. }, Answer::Found { value: a, .. }) => found(subject, b, a),
        (_, Answer::Failed { reason_code, .. }) => vec![change(
            subject,
            "not_rechecked",
            format!("{source} could not be asked again ({reason_code})"),
        )],
        (Answer::Found { .. }, Answer::NotFound) => vec![change(
            subject,
            "no_longer_found",
            format!("{source} no longer has a record"),
        )],
        (Answer::NotFound | Answer::Failed { .. }, Answer::Found { .. }) => vec![change(
            subject,
            "now_found",
            format!("{source} now has a record"),
        )],
        (Answer::NotFound | Answer::Failed { .. }, Answer::NotFound) => Vec::new(),
        // Only a declined run leaves data unasked, and only approvals are funded.
        (Answer::NotRun { .. }, _) | (_, Answer::NotRun { .. }) => Vec::new(),
    }
}

fn lien_words(l: &LienRecord) -> String {
    format!(
        "a {} {} recorded {}",
        dollars(l.amount_cents),
        l.kind.to_lowercase().replace('_', " "),
        l.recorded_on
    )
}

fn property_changes(s: &str, b: &PropertyRecord, a: &PropertyRecord) -> Vec<EvidenceChange> {
    let mut out = Vec::new();
    if b.owners != a.owners || b.vesting != a.vesting {
        out.push(change(
            s,
            "owners_changed",
            format!(
                "the owners of record changed ({} before, {} now; vesting {})",
                b.owners.len(),
                a.owners.len(),
                a.vesting
            ),
        ));
    }
    for lien in a.liens.iter().filter(|l| !b.liens.contains(l)) {
        out.push(change(s, "lien_recorded", lien_words(lien)));
    }
    for lien in b.liens.iter().filter(|l| !a.liens.contains(l)) {
        out.push(change(
            s,
            "lien_released",
            format!("{} is no longer recorded", lien_words(lien)),
        ));
    }
    if !b.tax.delinquent && a.tax.delinquent {
        out.push(change(
            s,
            "tax_delinquent",
            "the property taxes are now delinquent".into(),
        ));
    }
    let new_late = a
        .tax
        .late_payments
        .iter()
        .filter(|d| !b.tax.late_payments.contains(d))
        .count();
    if new_late > 0 {
        out.push(change(
            s,
            "tax_late_payment",
            format!("{new_late} more late property-tax payment(s) recorded"),
        ));
    }
    let worst = |r: &PropertyRecord| r.mortgages.iter().map(|m| m.days_late).max().unwrap_or(0);
    if worst(a) > worst(b) {
        out.push(change(
            s,
            "mortgage_late",
            format!(
                "a mortgage is now {} days late (was {})",
                worst(a),
                worst(b)
            ),
        ));
    }
    if a.mortgages.iter().any(|m| m.notice_of_default)
        && !b.mortgages.iter().any(|m| m.notice_of_default)
    {
        out.push(change(
            s,
            "notice_of_default",
            "a notice of default is now recorded on a mortgage".into(),
        ));
    }
    let debt = |r: &PropertyRecord| r.mortgages.iter().map(|m| m.balance_cents).sum::<i64>();
    if a.mortgages.len() > b.mortgages.len() || debt(a) > debt(b) {
        out.push(change(
            s,
            "mortgage_debt_increased",
            format!(
                "mortgage debt is now {} (was {})",
                dollars(debt(a)),
                dollars(debt(b))
            ),
        ));
    }
    for assessment in a.assessments.iter().filter(|x| !b.assessments.contains(x)) {
        out.push(change(
            s,
            "assessment_recorded",
            format!(
                "a new {} assessment of {} ({} a year)",
                assessment.program,
                dollars(assessment.balance_cents),
                dollars(assessment.annual_payment_cents)
            ),
        ));
    }
    if b.property_type != a.property_type || b.units != a.units {
        out.push(change(
            s,
            "property_type_changed",
            format!(
                "the property is now {} with {} unit(s)",
                a.property_type, a.units
            ),
        ));
    }
    out
}

fn bankruptcy_changes(
    s: &str,
    before: &[BankruptcyFiling],
    after: &[BankruptcyFiling],
) -> Vec<EvidenceChange> {
    after
        .iter()
        .filter(|f| !before.contains(f))
        .map(|f| {
            let known = before
                .iter()
                .any(|b| b.chapter == f.chapter && b.filed_on == f.filed_on);
            change(
                s,
                if known {
                    "bankruptcy_changed"
                } else {
                    "bankruptcy_filed"
                },
                format!(
                    "a chapter {} bankruptcy filed {} is {}",
                    f.chapter,
                    f.filed_on,
                    f.disposition.to_lowercase()
                ),
            )
        })
        .collect()
}

fn screening_changes(subject: &str, before: &Screened, after: &Screened) -> Vec<EvidenceChange> {
    after
        .hits
        .iter()
        .filter(|h| !before.hits.iter().any(|b| b.entry_id == h.entry_id))
        .map(|h| {
            change(
                subject,
                "sanctions_candidate",
                // The entry, not its name: for a match, that name is the person's.
                format!(
                    "a new sanctions list candidate: entry {} ({}), score {:.2}",
                    h.entry_id, h.program, h.score
                ),
            )
        })
        .collect()
}

#[cfg(test)]
#[path = "funding_tests.rs"]
mod tests;
