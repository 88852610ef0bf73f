//! From upstream answers to check results, with no I/O: the same functions run when an
//! application is evaluated and when a stored decision is replayed from its inputs.

use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::checks::{self, Verdict};
use crate::domain::{CheckKind, CheckResult, DataSource, Financing, Measure};
use crate::evidence::AvmEstimate;
use crate::evidence::BusinessRecord;
use crate::evidence::LicenseRecord;
use crate::evidence::PropertyRecord;
use crate::evidence::SanctionsHit;
use crate::evidence::{BankruptcySearch, IdentityResult, IncomeVerification};
use crate::policy::{LoadedPolicy, Policy};
use crate::reason::ReasonCode;

/// One upstream answer as a run used it, storable for replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Answer<T> {
    Found {
        value: T,
        source: DataSource,
    },
    NotFound,
    Failed {
        reason_code: String,
        message: String,
        upstream: String,
        kind: String,
    },
    /// Not asked: a frugal evaluation was already declined by these reason codes.
    NotRun {
        declined_by: Vec<String>,
    },
}

impl<T> Answer<T> {
    /// Not asked, because these reason codes had already declined the application.
    pub fn not_run(declined_by: &[String]) -> Answer<T> {
        Answer::NotRun {
            declined_by: declined_by.to_vec(),
        }
    }

    /// Not asked yet: the checks that need it wait (they judge NOT_RUN meanwhile).
    pub fn unasked() -> Answer<T> {
        Answer::not_run(&[])
    }

    /// The result of `kind` when this answer could not be used: UNAVAILABLE when it
    /// could not be obtained, NOT_RUN when it was not asked for.
    fn failure(&self, kind: CheckKind, subject: &str) -> Option<CheckResult> {
        match self {
            Answer::NotRun { declined_by } => Some(not_run(kind, subject, declined_by)),
            Answer::Failed {
                reason_code,
                message,
                upstream,
                kind: error,
            } => Some(failed(kind, subject, reason_code, message, upstream, error)),
            _ => None,
        }
    }
}

/// A sanctions screen as a run used it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Screened {
    pub name: String,
    pub loaded: bool,
    pub hits: Vec<SanctionsHit>,
    pub source: Option<DataSource>,
}

/// The names of an applicant (no SSN, no date of birth: replay never needs them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplicantInputs {
    pub first_name: String,
    pub last_name: String,
    pub display_name: String,
    pub identity: Answer<IdentityResult>,
    pub bankruptcy: Answer<BankruptcySearch>,
    /// Missing from runs stored before ability to pay was checked.
    #[serde(default = "not_asked")]
    pub income: Answer<IncomeVerification>,
    pub sanctions: Screened,
}

fn not_asked<T>() -> Answer<T> {
    Answer::NotFound
}

/// Everything a run's checks were computed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInputs {
    /// The date the look-back periods were counted from.
    pub as_of: NaiveDate,
    /// The property's state (selects per-state policy overrides).
    pub state: String,
    pub measures: Vec<Measure>,
    pub financing: Financing,
    pub property_record: Answer<PropertyRecord>,
    pub avm: Answer<AvmEstimate>,
    pub applicants: Vec<ApplicantInputs>,
    pub license: Answer<LicenseRecord>,
    pub business: Answer<BusinessRecord>,
    pub company_sanctions: Screened,
}

pub fn stamp(
    kind: CheckKind,
    subject: &str,
    source: Option<DataSource>,
    v: Verdict,
) -> CheckResult {
    CheckResult {
        kind,
        subject: subject.to_owned(),
        outcome: v.outcome,
        reason_codes: v.reason_codes,
        message: v.message,
        source,
        evidence: v.evidence,
        finished_at: Utc::now(),
    }
}

/// The NOT_RUN result of a check whose data a frugal evaluation did not ask for.
pub fn not_run(kind: CheckKind, subject: &str, declined_by: &[String]) -> CheckResult {
    let mut r = stamp(
        kind,
        subject,
        None,
        Verdict {
            outcome: crate::domain::Outcome::NotRun,
            reason_codes: Vec::new(),
            message: format!(
                "Not run: the application was already declined ({}) before all the data this check needs was asked for.",
                declined_by.join(", ")
            ),
            evidence: json!({ "declined_by": declined_by }),
        },
    );
    r.source = None;
    r
}

fn failed(
    kind: CheckKind,
    subject: &str,
    reason_code: &str,
    message: &str,
    upstream: &str,
    error: &str,
) -> CheckResult {
    let mut r = stamp(
        kind,
        subject,
        None,
        Verdict::unavailable_as(reason_code, message),
    );
    r.evidence = json!({ "upstream": upstream, "error": error });
    r
}

/// Runs `judge` on a found answer; NOT_FOUND and failures become the usual results.
fn with_answer<T>(
    kind: CheckKind,
    subject: &str,
    answer: &Answer<T>,
    not_found: impl FnOnce() -> Verdict,
    judge: impl FnOnce(&T) -> Verdict,
) -> CheckResult {
    if let Some(unavailable) = answer.failure(kind, subject) {
        return unavailable;
    }
    match answer {
        Answer::Found { value, source } => stamp(kind, subject, Some(source.clone()), judge(value)),
        _ => stamp(kind, subject, None, not_found()),
    }
}

fn property_not_found() -> Verdict {
    Verdict::fail(
        ReasonCode::PropertyNotFound,
        "The county has no record of this property; check the address or APN.",
        json!({}),
    )
}

/// Ownership, eligibility, taxes, mortgage, liens, valuation and the assessment limit.
pub fn property_checks(
    applicants: &[(String, String)],
    state: &str,
    financing: &Financing,
    record: &Answer<PropertyRecord>,
    avm: &Answer<AvmEstimate>,
    p: &Policy,
    today: NaiveDate,
) -> Vec<CheckResult> {
    let s = "property";
    let mut out = vec![
        with_answer(
            CheckKind::PropertyOwnership,
            s,
            record,
            property_not_found,
            |r| checks::property::ownership(r, applicants),
        ),
        with_answer(
            CheckKind::PropertyEligibility,
            s,
            record,
            property_not_found,
            |r| checks::property::eligibility(r, state, p),
        ),
        with_answer(CheckKind::PropertyTax, s, record, property_not_found, |r| {
            checks::property::property_tax(r, p, today)
        }),
        with_answer(CheckKind::Mortgage, s, record, property_not_found, |r| {
            checks::property::mortgage(r, p)
        }),
        with_answer(
            CheckKind::InvoluntaryLiens,
            s,
            record,
            property_not_found,
            |r| checks::property::involuntary_liens(r, p),
        ),
    ];
    out.push(with_answer(
        CheckKind::Valuation,
        s,
        avm,
        || checks::property::valuation(None, p),
        |v| checks::property::valuation(Some(v), p),
    ));
    // Needs both answers: either failing makes it unavailable.
    let limit = record
        .failure(CheckKind::AssessmentLimit, s)
        .or_else(|| avm.failure(CheckKind::AssessmentLimit, s))
        .unwrap_or_else(|| match (record, avm) {
            (Answer::Found { value: rec, source }, avm) => {
                let estimate = match avm {
                    Answer::Found { value, .. } => Some(value),
                    _ => None,
                };
                stamp(
                    CheckKind::AssessmentLimit,
                    s,
                    Some(source.clone()),
                    checks::financing::assessment_limit(rec, estimate, financing, p),
                )
            }
            _ => stamp(CheckKind::AssessmentLimit, s, None, property_not_found()),
        });
    out.push(limit);
    out
}

/// Identity and sanctions for one applicant (index from 0).
pub fn applicant_checks(index: usize, a: &ApplicantInputs, p: &Policy) -> Vec<CheckResult> {
    let subject = format!("applicant {}", index + 1);
    let unexpected = || {
        Verdict::unavailable(
            ReasonCode::UpstreamError,
            "the identity vendor answered 404 for a search",
        )
    };
    vec![
        with_answer(
            CheckKind::Identity,
            &subject,
            &a.identity,
            unexpected,
            |r| checks::person::identity(r, p),
        ),
        sanctions_check(CheckKind::PersonSanctions, &subject, &a.sanctions, p),
    ]
}

/// Bankruptcy for one applicant: its exception needs the property's payment record, so
/// it is judged once both answers are in.
pub fn bankruptcy_check(
    index: usize,
    a: &ApplicantInputs,
    record: &Answer<PropertyRecord>,
    p: &Policy,
    today: NaiveDate,
) -> CheckResult {
    let subject = format!("applicant {}", index + 1);
    // Its exception needs the payment record: not asked for, the check is not run.
    if let Answer::NotRun { declined_by } = record {
        return not_run(CheckKind::Bankruptcy, &subject, declined_by);
    }
    let worst_days_late = match record {
        Answer::Found { value, .. } => Some(
            value
                .mortgages
                .iter()
                .map(|m| m.days_late)
                .max()
                .unwrap_or(0),
        ),
        _ => None,
    };
    let unexpected = || {
        Verdict::unavailable(
            ReasonCode::UpstreamError,
            "the identity vendor answered 404 for a search",
        )
    };
    with_answer(
        CheckKind::Bankruptcy,
        &subject,
        &a.bankruptcy,
        unexpected,
        |r| checks::person::bankruptcy(r, p, today, worst_days_late),
    )
}

/// Licence, registration and sanctions for the contractor.
pub fn contractor_checks(
    measures: &[Measure],
    license: &Answer<LicenseRecord>,
    business: &Answer<BusinessRecord>,
    screened: &Screened,
    p: &Policy,
    today: NaiveDate,
) -> Vec<CheckResult> {
    let s = "contractor";
    vec![
        with_answer(
            CheckKind::ContractorLicense,
            s,
            license,
            || checks::company::contractor_license(None, measures, p, today),
            |l| checks::company::contractor_license(Some(l), measures, p, today),
        ),
        with_answer(
            CheckKind::BusinessRegistration,
            s,
            business,
            || checks::company::business_registration(None),
            |b| checks::company::business_registration(Some(b)),
        ),
        sanctions_check(CheckKind::CompanySanctions, s, screened, p),
    ]
}

pub fn sanctions_check(
    kind: CheckKind,
    subject: &str,
    screened: &Screened,
    p: &Policy,
) -> CheckResult {
    let verdict = checks::sanctions::screen(
        &screened.hits,
        screened.loaded,
        &p.sanctions,
        &screened.name,
    );
    stamp(kind, subject, screened.source.clone(), verdict)
}

/// Ability to pay, for the whole household: every applicant's verified income and
/// debts against the property's tax, existing assessments and the new payment.
pub fn ability_to_pay_check(
    applicants: &[ApplicantInputs],
    record: &Answer<PropertyRecord>,
    financing: &Financing,
    p: &Policy,
) -> CheckResult {
    let s = "household";
    let k = CheckKind::AbilityToPay;
    let mut incomes = Vec::new();
    let mut source = None;
    for a in applicants {
        if let Some(unavailable) = a.income.failure(k, s) {
            return unavailable;
        }
        if let Answer::Found { value, source: src } = &a.income {
            incomes.push(value.clone());
            source.get_or_insert_with(|| src.clone());
        }
    }
    if let Some(unavailable) = record.failure(k, s) {
        return unavailable;
    }
    let Answer::Found { value, .. } = record else {
        return stamp(k, s, None, property_not_found());
    };
    let obligations = checks::person::Obligations {
        annual_tax_cents: value.annual_tax_cents,
        existing_assessments_cents: value
            .assessments
            .iter()
            .map(|a| a.annual_payment_cents)
            .sum(),
    };
    stamp(
        CheckKind::AbilityToPay,
        s,
        source,
        checks::person::ability_to_pay(&incomes, financing, obligations, p),
    )
}

pub fn term_check(measures: &[Measure], financing: &Financing, p: &Policy) -> CheckResult {
    stamp(
        CheckKind::Term,
        "application",
        None,
        checks::financing::term(measures, financing, p),
    )
}

/// Every check of a run, recomputed from its stored inputs.
pub fn judge_all(inputs: &RunInputs, policy: &LoadedPolicy) -> Vec<CheckResult> {
    let p = policy.for_state(&inputs.state);
    let names: Vec<(String, String)> = inputs
        .applicants
        .iter()
        .map(|a| (a.first_name.clone(), a.last_name.clone()))
        .collect();
    let mut all = property_checks(
        &names,
        &inputs.state,
        &inputs.financing,
        &inputs.property_record,
        &inputs.avm,
        p,
        inputs.as_of,
    );
    all.extend(contractor_checks(
        &inputs.measures,
        &inputs.license,
        &inputs.business,
        &inputs.company_sanctions,
        p,
        inputs.as_of,
    ));
    all.push(term_check(&inputs.measures, &inputs.financing, p));
    all.push(ability_to_pay_check(
        &inputs.applicants,
        &inputs.property_record,
        &inputs.financing,
        p,
    ));
    for (i, a) in inputs.applicants.iter().enumerate() {
        all.extend(applicant_checks(i, a, p));
        all.push(bankruptcy_check(
            i,
            a,
            &inputs.property_record,
            p,
            inputs.as_of,
        ));
    }
    all.sort_by(|a, b| (a.kind, &a.subject).cmp(&(b.kind, &b.subject)));
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Outcome, Upstream};

    fn codes(results: &[CheckResult], kind: CheckKind) -> (Outcome, Vec<String>) {
        let r = results.iter().find(|r| r.kind == kind).unwrap();
        (r.outcome, r.reason_codes.clone())
    }

    #[test]
    fn missing_and_failed_answers_table() {
        let policy = LoadedPolicy::default_policy();
        let p = &policy.policy;
        let today = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        let f = Financing {
            amount_cents: 2_000_000,
            term_years: 20,
        };
        let names = vec![("Ana".to_owned(), "Lopez".to_owned())];
        let timeout = Answer::<PropertyRecord>::Failed {
            reason_code: "UPSTREAM_TIMEOUT".into(),
            message: "property_records did not answer".into(),
            upstream: Upstream::PropertyRecords.as_str().to_owned(),
            kind: "timeout".into(),
        };
        // No property record: every property check fails PROPERTY_NOT_FOUND.
        let r = property_checks(
            &names,
            "CA",
            &f,
            &Answer::NotFound,
            &Answer::NotFound,
            p,
            today,
        );
        assert_eq!(
            codes(&r, CheckKind::PropertyTax),
            (Outcome::Fail, vec!["PROPERTY_NOT_FOUND".into()])
        );
        assert_eq!(
            codes(&r, CheckKind::AssessmentLimit),
            (Outcome::Fail, vec!["PROPERTY_NOT_FOUND".into()])
        );
        assert_eq!(
            codes(&r, CheckKind::Valuation),
            (Outcome::Review, vec!["VALUATION_UNAVAILABLE".into()])
        );
        // The record failed: UNAVAILABLE with the upstream's code.
        let r = property_checks(&names, "CA", &f, &timeout, &Answer::NotFound, p, today);
        assert_eq!(
            codes(&r, CheckKind::PropertyOwnership),
            (Outcome::Unavailable, vec!["UPSTREAM_TIMEOUT".into()])
        );
        // A record but no valuation: the limit cannot be computed.
        let record = PropertyRecord {
            apn: "100-200-300".into(),
            line1: "1 MAIN ST".into(),
            city: "FRESNO".into(),
            state: "CA".into(),
            postal_code: "93701".into(),
            owners: vec!["LOPEZ, ANA".into()],
            vesting: "INDIVIDUAL".into(),
            property_type: "SINGLE_FAMILY".into(),
            units: 1,
            assessed_value_cents: 40_000_000,
            annual_tax_cents: 450_000,
            tax: crate::evidence::TaxStatus {
                delinquent: false,
                late_payments: vec![],
            },
            mortgages: vec![],
            liens: vec![],
            assessments: vec![],
        };
        let found = Answer::Found {
            value: record,
            source: DataSource {
                upstream: Upstream::PropertyRecords,
                fetched_at: Utc::now(),
                cached: false,
                stale: false,
                cache: Default::default(),
                passed_over: Vec::new(),
            },
        };
        let r = property_checks(&names, "CA", &f, &found, &Answer::NotFound, p, today);
        assert_eq!(
            codes(&r, CheckKind::AssessmentLimit),
            (Outcome::Review, vec!["ASSESSMENT_LIMIT_UNVERIFIED".into()])
        );
    }
}
