//! Property checks: ownership, eligibility, taxes, mortgage, liens, valuation.

use chrono::{Months, NaiveDate};
use serde_json::json;

use super::Verdict;
use super::dollars;
use super::names::{self, Owner};
use crate::evidence::AvmEstimate;
use crate::evidence::PropertyRecord;
use crate::policy::Policy;
use crate::reason::ReasonCode;

/// Every owner of record must be an applicant. A trust or company owner needs an
/// underwriter (trustees may sign for a trust).
/// `applicants` are (first name, last name) pairs.
pub fn ownership(record: &PropertyRecord, applicants: &[(String, String)]) -> Verdict {
    let applicant_names: Vec<_> = applicants
        .iter()
        .map(|(first, last)| names::person(first, last))
        .collect();
    let owners: Vec<Owner> = record
        .owners
        .iter()
        .flat_map(|o| names::parse_owner(o))
        .collect();
    let evidence = json!({ "owners_of_record": record.owners, "vesting": record.vesting });
    if owners.is_empty() {
        return Verdict::review(
            ReasonCode::OwnerUnknown,
            "The county record lists no owner; confirm title manually.",
            evidence,
        );
    }
    let mut findings = Vec::new();
    for owner in &owners {
        match owner {
            Owner::Entity(name) => findings.push(Verdict::review(
                ReasonCode::OwnerIsEntity,
                format!("Title is held by \"{name}\"; confirm the applicants may sign for it."),
                json!({}),
            )),
            Owner::Person(p) if !names::owner_is_applicant(p, &applicant_names) => {
                findings.push(Verdict::fail(
                    ReasonCode::OwnerNotApplicant,
                    format!(
                        "Owner of record {} {} is not an applicant; every owner must sign.",
                        p.first, p.last
                    ),
                    json!({}),
                ))
            }
            Owner::Person(_) => {}
        }
    }
    Verdict::worst(
        findings,
        Verdict::pass("Every owner of record is an applicant.", evidence),
    )
}

/// Property type, units and state are ones the program finances.
pub fn eligibility(record: &PropertyRecord, state: &str, policy: &Policy) -> Verdict {
    let program = &policy.program;
    let evidence = json!({
        "property_type": record.property_type,
        "units": record.units,
        "state": state,
    });
    let mut findings = Vec::new();
    if !program.participating_states.iter().any(|s| s == state) {
        findings.push(Verdict::fail(
            ReasonCode::StateNotParticipating,
            format!("The program does not operate in {state}."),
            json!({}),
        ));
    }
    if let Some(prefixes) = program.boundaries.get(state)
        && !prefixes
            .iter()
            .any(|p| record.postal_code.starts_with(p.as_str()))
    {
        findings.push(Verdict::fail(
            ReasonCode::OutsideProgramBoundary,
            format!(
                "ZIP code {} is outside the program's area in {state} (ZIP codes starting {}).",
                record.postal_code,
                prefixes.join(", ")
            ),
            json!({}),
        ));
    }
    if !program
        .eligible_property_types
        .contains(&record.property_type)
    {
        findings.push(Verdict::fail(
            ReasonCode::PropertyTypeIneligible,
            format!(
                "Property type {} is not financed by the program.",
                record.property_type
            ),
            json!({}),
        ));
    }
    if record.units > program.max_units {
        findings.push(Verdict::fail(
            ReasonCode::PropertyTooManyUnits,
            format!(
                "The property has {} units; the program finances at most {}.",
                record.units, program.max_units
            ),
            json!({}),
        ));
    }
    Verdict::worst(
        findings,
        Verdict::pass("Property type, units and state are eligible.", evidence),
    )
}

fn years_before(today: NaiveDate, years: u32) -> NaiveDate {
    today
        .checked_sub_months(Months::new(years * 12))
        .unwrap_or(NaiveDate::MIN)
}

/// Taxes current, and at most the allowed late payments in the look-back period.
pub fn property_tax(record: &PropertyRecord, policy: &Policy, today: NaiveDate) -> Verdict {
    let rules = &policy.property_tax;
    let since = years_before(today, rules.lookback_years);
    let late = record
        .tax
        .late_payments
        .iter()
        .filter(|d| **d >= since)
        .count() as u32;
    let evidence = json!({
        "delinquent": record.tax.delinquent,
        "late_payments_in_lookback": late,
        "lookback_years": rules.lookback_years,
        "max_late_payments": rules.max_late_payments,
        "annual_tax_cents": record.annual_tax_cents,
    });
    if record.tax.delinquent {
        return Verdict::fail(
            ReasonCode::PropertyTaxDelinquent,
            "Property taxes are currently delinquent.",
            evidence,
        );
    }
    if late > rules.max_late_payments {
        return Verdict::fail(
            ReasonCode::PropertyTaxLatePayments,
            format!(
                "{late} late property-tax payments in the last {} years; at most {} allowed.",
                rules.lookback_years, rules.max_late_payments
            ),
            evidence,
        );
    }
    Verdict::pass("Property taxes are current.", evidence)
}

/// Mortgages current: at most the allowed late payments in the look-back, none later
/// than the allowed days, and no unrescinded notice of default.
pub fn mortgage(record: &PropertyRecord, policy: &Policy) -> Verdict {
    let rules = &policy.mortgage;
    let evidence = json!({
        "mortgages": record.mortgages.iter().map(|m| json!({
            "lender": m.lender,
            "balance_cents": m.balance_cents,
            "days_late": m.days_late,
            "late_payments_12m": m.late_payments_12m,
            "notice_of_default": m.notice_of_default,
        })).collect::<Vec<_>>(),
    });
    let mut findings = Vec::new();
    for m in &record.mortgages {
        if m.notice_of_default {
            findings.push(Verdict::fail(
                ReasonCode::MortgageNoticeOfDefault,
                format!(
                    "A notice of default is recorded on the {} mortgage.",
                    m.lender
                ),
                json!({}),
            ));
        }
        if m.days_late > rules.max_days_late {
            findings.push(Verdict::fail(
                ReasonCode::MortgageDelinquent,
                format!(
                    "The {} mortgage is {} days late; at most {} allowed.",
                    m.lender, m.days_late, rules.max_days_late
                ),
                json!({}),
            ));
        }
        if m.late_payments_12m > rules.max_late_payments {
            findings.push(Verdict::fail(
                ReasonCode::MortgageLatePayments,
                format!(
                    "{} late payments on the {} mortgage in the last {} months; at most {} allowed.",
                    m.late_payments_12m, m.lender, rules.lookback_months, rules.max_late_payments
                ),
                json!({}),
            ));
        }
    }
    Verdict::worst(findings, Verdict::pass("Mortgages are current.", evidence))
}

/// No involuntary lien above the limit.
pub fn involuntary_liens(record: &PropertyRecord, policy: &Policy) -> Verdict {
    let max = policy.liens.max_involuntary_lien_cents;
    let evidence = json!({
        "liens": record.liens.iter().map(|l| json!({
            "kind": l.kind, "amount_cents": l.amount_cents, "recorded_on": l.recorded_on,
        })).collect::<Vec<_>>(),
        "max_involuntary_lien_cents": max,
    });
    let over: Vec<_> = record
        .liens
        .iter()
        .filter(|l| l.amount_cents > max)
        .collect();
    if let Some(first) = over.first() {
        return Verdict::fail(
            ReasonCode::InvoluntaryLien,
            format!(
                "{} involuntary lien(s) above {}; the largest is a {} of {}.",
                over.len(),
                dollars(max),
                first.kind,
                dollars(over.iter().map(|l| l.amount_cents).max().unwrap_or(0))
            ),
            evidence,
        );
    }
    Verdict::pass(
        format!("No involuntary lien above {}.", dollars(max)),
        evidence,
    )
}

/// An AVM value exists, with enough confidence to lend against.
pub fn valuation(avm: Option<&AvmEstimate>, policy: &Policy) -> Verdict {
    let Some(avm) = avm else {
        return Verdict::review(
            ReasonCode::ValuationUnavailable,
            "The valuation vendor has no estimate for this property; order an appraisal.",
            json!({}),
        );
    };
    let evidence = json!({
        "value_cents": avm.value_cents,
        "confidence": avm.confidence,
        "low_cents": avm.low_cents,
        "high_cents": avm.high_cents,
        "as_of": avm.as_of,
        "min_confidence": policy.valuation.min_confidence,
    });
    if avm.confidence < policy.valuation.min_confidence {
        return Verdict::review(
            ReasonCode::ValuationLowConfidence,
            format!(
                "AVM confidence {} is below {}; confirm the value with an appraisal.",
                avm.confidence, policy.valuation.min_confidence
            ),
            evidence,
        );
    }
    Verdict::pass(
        format!(
            "Estimated value {} at confidence {}.",
            dollars(avm.value_cents),
            avm.confidence
        ),
        evidence,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Applicant;
    use crate::evidence::{LienRecord, MortgageRecord, TaxStatus};
    use crate::policy::LoadedPolicy;

    fn record() -> PropertyRecord {
        PropertyRecord {
            apn: "123-456-789".into(),
            line1: "1 Main St".into(),
            city: "Fresno".into(),
            state: "CA".into(),
            postal_code: "93701".into(),
            owners: vec!["SMITH, JOHN A & JANE".into()],
            vesting: "JOINT_TENANTS".into(),
            property_type: "SINGLE_FAMILY".into(),
            units: 1,
            assessed_value_cents: 40_000_000,
            annual_tax_cents: 480_000,
            tax: TaxStatus {
                delinquent: false,
                late_payments: vec![],
            },
            mortgages: vec![MortgageRecord {
                lender: "Acme Bank".into(),
                balance_cents: 20_000_000,
                days_late: 0,
                late_payments_12m: 0,
                notice_of_default: false,
            }],
            liens: vec![],
            assessments: vec![],
        }
    }

    fn applicant(first: &str, last: &str) -> Applicant {
        Applicant {
            first_name: first.into(),
            middle_name: String::new(),
            last_name: last.into(),
            suffix: String::new(),
            ssn: crate::domain::Ssn::parse("123-45-6789").unwrap(),
            date_of_birth: NaiveDate::from_ymd_opt(1970, 1, 1).unwrap(),
            email: String::new(),
            stated_annual_income_cents: 0,
        }
    }

    fn policy() -> Policy {
        LoadedPolicy::default_policy().policy
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 25).unwrap()
    }

    fn codes(v: &Verdict) -> Vec<&str> {
        v.reason_codes.iter().map(String::as_str).collect()
    }

    #[test]
    fn ownership_table() {
        use crate::domain::Outcome::*;
        let both = vec![applicant("John", "Smith"), applicant("Jane", "Smith")];
        let john = vec![applicant("john", "SMITH")];
        type Case<'a> = (
            Vec<&'a str>,
            &'a Vec<Applicant>,
            crate::domain::Outcome,
            Vec<&'a str>,
        );
        let cases: Vec<Case> = vec![
            (vec!["SMITH, JOHN A & JANE"], &both, Pass, vec![]),
            (vec!["SMITH, JOHN A AND JANE"], &both, Pass, vec![]),
            (
                vec!["SMITH, JOHN A & JANE"],
                &john,
                Fail,
                vec!["OWNER_NOT_APPLICANT"],
            ),
            (vec!["John Smith Jr."], &john, Pass, vec![]),
            (
                vec!["THE SMITH FAMILY TRUST"],
                &john,
                Review,
                vec!["OWNER_IS_ENTITY"],
            ),
            (
                vec!["THE SMITH FAMILY TRUST", "DOE, RICHARD"],
                &john,
                Fail,
                vec!["OWNER_NOT_APPLICANT"],
            ),
            (vec![], &john, Review, vec!["OWNER_UNKNOWN"]),
        ];
        for (owners, applicants, outcome, want) in cases {
            let mut r = record();
            r.owners = owners.iter().map(|s| s.to_string()).collect();
            let names: Vec<(String, String)> = applicants
                .iter()
                .map(|a| (a.first_name.clone(), a.last_name.clone()))
                .collect();
            let v = ownership(&r, &names);
            assert_eq!(v.outcome, outcome, "{owners:?}");
            assert_eq!(codes(&v), want, "{owners:?}");
        }
    }

    #[test]
    fn eligibility_table() {
        use crate::domain::Outcome::*;
        let cases = [
            ("SINGLE_FAMILY", 1, "CA", Pass, vec![]),
            ("MULTI_FAMILY", 4, "CA", Pass, vec![]),
            (
                "MULTI_FAMILY",
                5,
                "CA",
                Fail,
                vec!["PROPERTY_TOO_MANY_UNITS"],
            ),
            (
                "COMMERCIAL",
                1,
                "CA",
                Fail,
                vec!["PROPERTY_TYPE_INELIGIBLE"],
            ),
            (
                "SINGLE_FAMILY",
                1,
                "TX",
                Fail,
                vec!["STATE_NOT_PARTICIPATING"],
            ),
            (
                "VACANT_LAND",
                1,
                "TX",
                Fail,
                vec!["STATE_NOT_PARTICIPATING", "PROPERTY_TYPE_INELIGIBLE"],
            ),
            // Florida is covered only for ZIP codes starting 32–34; the record's is 93701.
            (
                "SINGLE_FAMILY",
                1,
                "FL",
                Fail,
                vec!["OUTSIDE_PROGRAM_BOUNDARY"],
            ),
        ];
        for (ty, units, state, outcome, want) in cases {
            let mut r = record();
            r.property_type = ty.into();
            r.units = units;
            let v = eligibility(&r, state, &policy());
            assert_eq!(
                (v.outcome, codes(&v)),
                (outcome, want),
                "{ty} {units} {state}"
            );
        }
    }

    #[test]
    fn property_tax_table() {
        use crate::domain::Outcome::*;
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        let cases = [
            (false, vec![], Pass, vec![]),
            (true, vec![], Fail, vec!["PROPERTY_TAX_DELINQUENT"]),
            // One late payment is allowed.
            (false, vec![d(2025, 4, 11)], Pass, vec![]),
            (
                false,
                vec![d(2025, 4, 11), d(2024, 12, 11)],
                Fail,
                vec!["PROPERTY_TAX_LATE_PAYMENTS"],
            ),
            // Exactly at the three-year boundary counts; a day older does not.
            (
                false,
                vec![d(2025, 4, 11), d(2023, 11, 25)],
                Fail,
                vec!["PROPERTY_TAX_LATE_PAYMENTS"],
            ),
            (false, vec![d(2025, 4, 11), d(2023, 11, 24)], Pass, vec![]),
        ];
        for (delinquent, late, outcome, want) in cases {
            let mut r = record();
            r.tax.delinquent = delinquent;
            r.tax.late_payments = late.clone();
            let v = property_tax(&r, &policy(), today());
            assert_eq!(
                (v.outcome, codes(&v)),
                (outcome, want),
                "{delinquent} {late:?}"
            );
        }
    }

    #[test]
    fn mortgage_table() {
        use crate::domain::Outcome::*;
        let cases = [
            (0, 0, false, Pass, vec![]),
            (30, 1, false, Pass, vec![]),
            (31, 1, false, Fail, vec!["MORTGAGE_DELINQUENT"]),
            (0, 2, false, Fail, vec!["MORTGAGE_LATE_PAYMENTS"]),
            (0, 0, true, Fail, vec!["MORTGAGE_NOTICE_OF_DEFAULT"]),
        ];
        for (days_late, late, nod, outcome, want) in cases {
            let mut r = record();
            r.mortgages[0].days_late = days_late;
            r.mortgages[0].late_payments_12m = late;
            r.mortgages[0].notice_of_default = nod;
            let v = mortgage(&r, &policy());
            assert_eq!(
                (v.outcome, codes(&v)),
                (outcome, want),
                "{days_late} {late} {nod}"
            );
        }
    }

    #[test]
    fn liens_at_and_over_the_limit() {
        use crate::domain::Outcome::*;
        for (amount, outcome, code) in [
            (100_000, Pass, None),
            (100_001, Fail, Some("INVOLUNTARY_LIEN")),
        ] {
            let mut r = record();
            r.liens = vec![LienRecord {
                kind: "JUDGMENT".into(),
                amount_cents: amount,
                recorded_on: today(),
            }];
            let v = involuntary_liens(&r, &policy());
            assert_eq!(v.outcome, outcome, "{amount}");
            assert_eq!(v.reason_codes.first().map(String::as_str), code);
        }
    }

    #[test]
    fn valuation_table() {
        use crate::domain::Outcome::*;
        let avm = |confidence| AvmEstimate {
            value_cents: 50_000_000,
            confidence,
            low_cents: 45_000_000,
            high_cents: 55_000_000,
            as_of: today(),
        };
        assert_eq!(valuation(Some(&avm(70)), &policy()).outcome, Pass);
        let low = valuation(Some(&avm(69)), &policy());
        assert_eq!(
            (low.outcome, codes(&low)),
            (Review, vec!["VALUATION_LOW_CONFIDENCE"])
        );
        assert_eq!(valuation(None, &policy()).outcome, Review);
    }
}
