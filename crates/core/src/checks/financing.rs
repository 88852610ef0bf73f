//! Financing checks: the assessment against the property's value, and the term against
//! the useful life of what is financed. Money is integer cents throughout; policy ratios
//! become basis points so that "exactly at the limit" is exact.

use serde_json::json;

use super::{Verdict, dollars};
use crate::domain::{Financing, Measure};
use crate::evidence::AvmEstimate;
use crate::evidence::PropertyRecord;
use crate::policy::Policy;
use crate::reason::ReasonCode;

fn basis_points(ratio: f64) -> i128 {
    (ratio * 10_000.0).round() as i128
}

fn apply(ratio: f64, cents: i64) -> i64 {
    (i128::from(cents) * basis_points(ratio) / 10_000) as i64
}

/// The most a property of this value may carry in PACE assessments, existing ones
/// included: first_tier_ratio of the value up to the cap plus upper_tier_ratio above it.
pub fn max_assessment_cents(value_cents: i64, policy: &Policy) -> i64 {
    let l = &policy.assessment_limit;
    let first = value_cents.min(l.first_tier_cap_cents).max(0);
    let above = (value_cents - l.first_tier_cap_cents).max(0);
    apply(l.first_tier_ratio, first) + apply(l.upper_tier_ratio, above)
}

pub fn assessment_limit(
    record: &PropertyRecord,
    avm: Option<&AvmEstimate>,
    financing: &Financing,
    policy: &Policy,
) -> Verdict {
    let Some(avm) = avm else {
        return Verdict::review(
            ReasonCode::AssessmentLimitUnverified,
            "No market value is available, so the assessment limit cannot be computed.",
            json!({ "amount_cents": financing.amount_cents }),
        );
    };
    let value = avm.value_cents;
    let existing: i64 = record.assessments.iter().map(|a| a.balance_cents).sum();
    let mortgage_debt: i64 = record.mortgages.iter().map(|m| m.balance_cents).sum();
    let max_assessment = max_assessment_cents(value, policy);
    let total_assessments = existing + financing.amount_cents;
    let combined = mortgage_debt + total_assessments;
    let max_combined = apply(policy.assessment_limit.max_combined_ratio, value);
    let new_payment = super::person::annual_payment_cents(
        financing.amount_cents,
        financing.term_years,
        policy.ability_to_pay.annual_interest_rate,
    );
    let annual_tax_and_assessments = record.annual_tax_cents
        + record
            .assessments
            .iter()
            .map(|a| a.annual_payment_cents)
            .sum::<i64>()
        + new_payment;
    let max_annual = apply(policy.assessment_limit.max_annual_tax_ratio, value);
    let evidence = json!({
        "value_cents": value,
        "amount_cents": financing.amount_cents,
        "existing_assessments_cents": existing,
        "max_assessment_cents": max_assessment,
        "mortgage_debt_cents": mortgage_debt,
        "combined_debt_cents": combined,
        "max_combined_debt_cents": max_combined,
        "annual_tax_and_assessments_cents": annual_tax_and_assessments,
        "max_annual_tax_and_assessments_cents": max_annual,
        "combined_debt_ratio": if value > 0 { combined as f64 / value as f64 } else { f64::INFINITY },
    });
    let mut findings = Vec::new();
    if total_assessments > max_assessment {
        findings.push(Verdict::fail(
            ReasonCode::AssessmentLimitExceeded,
            format!(
                "Assessments would total {} ({} requested + {} existing); the limit for a value of {} is {}.",
                dollars(total_assessments),
                dollars(financing.amount_cents),
                dollars(existing),
                dollars(value),
                dollars(max_assessment)
            ),
            json!({}),
        ));
    }
    if combined > max_combined {
        findings.push(Verdict::fail(
            ReasonCode::CombinedDebtLimitExceeded,
            format!(
                "Mortgage debt plus assessments would be {}, above {} of the value ({}).",
                dollars(combined),
                dollars(max_combined),
                dollars(value)
            ),
            json!({}),
        ));
    }
    if annual_tax_and_assessments > max_annual {
        findings.push(Verdict::fail(
            ReasonCode::AnnualTaxBurdenExceeded,
            format!(
                "Property tax and assessments would cost {} a year, above {} of the value ({}).",
                dollars(annual_tax_and_assessments),
                dollars(max_annual),
                dollars(value)
            ),
            json!({}),
        ));
    }
    Verdict::worst(
        findings,
        Verdict::pass(
            format!(
                "Assessments of {} are within the limit of {}.",
                dollars(total_assessments),
                dollars(max_assessment)
            ),
            evidence,
        ),
    )
}

/// The cost-weighted useful life of the measures, in whole years (rounded down).
pub fn weighted_useful_life(measures: &[Measure], policy: &Policy) -> u32 {
    let total: i128 = measures.iter().map(|m| i128::from(m.cost_cents)).sum();
    if total <= 0 {
        return 0;
    }
    let weighted: i128 = measures
        .iter()
        .map(|m| {
            let life = policy.useful_life_years.get(&m.kind).copied().unwrap_or(0);
            i128::from(m.cost_cents) * i128::from(life)
        })
        .sum();
    (weighted / total) as u32
}

pub fn term(measures: &[Measure], financing: &Financing, policy: &Policy) -> Verdict {
    let life = weighted_useful_life(measures, policy);
    let evidence = json!({
        "term_years": financing.term_years,
        "weighted_useful_life_years": life,
    });
    if financing.term_years > life as i32 {
        return Verdict::fail(
            ReasonCode::TermExceedsUsefulLife,
            format!(
                "A {}-year term outlives the financed measures (weighted useful life {} years).",
                financing.term_years, life
            ),
            evidence,
        );
    }
    Verdict::pass(
        format!(
            "A {}-year term is within the measures' useful life of {} years.",
            financing.term_years, life
        ),
        evidence,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{MeasureKind, Outcome};
    use crate::evidence::{AssessmentRecord, MortgageRecord, TaxStatus};
    use crate::policy::LoadedPolicy;

    fn policy() -> Policy {
        LoadedPolicy::default_policy().policy
    }

    fn record(mortgage: i64, existing: i64) -> PropertyRecord {
        PropertyRecord {
            apn: "1".into(),
            line1: "1 Main St".into(),
            city: "Fresno".into(),
            state: "CA".into(),
            postal_code: "93701".into(),
            owners: vec![],
            vesting: "INDIVIDUAL".into(),
            property_type: "SINGLE_FAMILY".into(),
            units: 1,
            assessed_value_cents: 0,
            annual_tax_cents: 0,
            tax: TaxStatus {
                delinquent: false,
                late_payments: vec![],
            },
            mortgages: vec![MortgageRecord {
                lender: "Bank".into(),
                balance_cents: mortgage,
                days_late: 0,
                late_payments_12m: 0,
                notice_of_default: false,
            }],
            liens: vec![],
            assessments: if existing > 0 {
                vec![AssessmentRecord {
                    program: "HERO".into(),
                    balance_cents: existing,
                    annual_payment_cents: 0,
                }]
            } else {
                vec![]
            },
        }
    }

    fn avm(value: i64) -> AvmEstimate {
        AvmEstimate {
            value_cents: value,
            confidence: 90,
            low_cents: value,
            high_cents: value,
            as_of: chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
        }
    }

    #[test]
    fn max_assessment_tiers() {
        let p = policy();
        // $400,000 → 15 % = $60,000.
        assert_eq!(max_assessment_cents(40_000_000, &p), 6_000_000);
        // Exactly $700,000 → $105,000.
        assert_eq!(max_assessment_cents(70_000_000, &p), 10_500_000);
        // $1,000,000 → $105,000 + 10 % of $300,000 = $135,000.
        assert_eq!(max_assessment_cents(100_000_000, &p), 13_500_000);
    }

    #[test]
    fn annual_tax_burden_at_and_over_the_limit() {
        let p = policy();
        let f = Financing {
            amount_cents: 1_000_000,
            term_years: 20,
        };
        let payment = crate::checks::person::annual_payment_cents(
            1_000_000,
            20,
            p.ability_to_pay.annual_interest_rate,
        );
        // 5 % of $400,000 = $20,000 a year.
        let mut rec = record(10_000_000, 0);
        rec.annual_tax_cents = 2_000_000 - payment;
        assert_eq!(
            assessment_limit(&rec, Some(&avm(40_000_000)), &f, &p).outcome,
            Outcome::Pass
        );
        rec.annual_tax_cents += 1;
        let v = assessment_limit(&rec, Some(&avm(40_000_000)), &f, &p);
        assert_eq!(v.reason_codes, vec!["ANNUAL_TAX_BURDEN_EXCEEDED"]);
    }

    #[test]
    fn assessment_limit_table() {
        let p = policy();
        let cases = [
            // (value, mortgage, existing, amount, outcome, codes)
            (40_000_000, 10_000_000, 0, 6_000_000, Outcome::Pass, vec![]),
            (
                40_000_000,
                10_000_000,
                0,
                6_000_001,
                Outcome::Fail,
                vec!["ASSESSMENT_LIMIT_EXCEEDED"],
            ),
            (
                40_000_000,
                10_000_000,
                2_500_000,
                3_500_000,
                Outcome::Pass,
                vec![],
            ),
            (
                40_000_000,
                10_000_000,
                2_500_000,
                3_500_001,
                Outcome::Fail,
                vec!["ASSESSMENT_LIMIT_EXCEEDED"],
            ),
            // 97 % of $400,000 = $388,000: $383,000 mortgage + $5,000 is exactly at it.
            (40_000_000, 38_300_000, 0, 500_000, Outcome::Pass, vec![]),
            (
                40_000_000,
                38_300_001,
                0,
                500_000,
                Outcome::Fail,
                vec!["COMBINED_DEBT_LIMIT_EXCEEDED"],
            ),
        ];
        for (value, mortgage, existing, amount, outcome, want) in cases {
            let f = Financing {
                amount_cents: amount,
                term_years: 20,
            };
            let v = assessment_limit(&record(mortgage, existing), Some(&avm(value)), &f, &p);
            let codes: Vec<&str> = v.reason_codes.iter().map(String::as_str).collect();
            assert_eq!(
                (v.outcome, codes),
                (outcome, want),
                "{value} {mortgage} {existing} {amount}"
            );
        }
    }

    #[test]
    fn term_against_weighted_useful_life() {
        let p = policy();
        let m = |kind, cost| Measure {
            kind,
            cost_cents: cost,
            description: String::new(),
        };
        // Solar (25 y) alone.
        let solar = vec![m(MeasureKind::SolarPv, 2_000_000)];
        // Equal cost solar (25) + HVAC (15) → 20 years.
        let mixed = vec![
            m(MeasureKind::SolarPv, 1_000_000),
            m(MeasureKind::Hvac, 1_000_000),
        ];
        let cases = [
            (&solar, 25, Outcome::Pass),
            (&solar, 26, Outcome::Fail),
            (&mixed, 20, Outcome::Pass),
            (&mixed, 21, Outcome::Fail),
        ];
        for (measures, years, outcome) in cases {
            let f = Financing {
                amount_cents: 1,
                term_years: years,
            };
            let v = term(measures, &f, &p);
            assert_eq!(v.outcome, outcome, "{years}");
            if outcome == Outcome::Fail {
                assert_eq!(v.reason_codes, vec!["TERM_EXCEEDS_USEFUL_LIFE"]);
            }
        }
    }
}
