//! Person checks: identity and bankruptcy.

use chrono::{Months, NaiveDate};
use serde_json::json;

use super::Verdict;
use crate::evidence::{BankruptcySearch, IdentityResult};
use crate::policy::Policy;
use crate::reason::ReasonCode;

pub fn identity(result: &IdentityResult, policy: &Policy) -> Verdict {
    let rules = &policy.identity;
    let evidence =
        json!({ "score": result.score, "flags": result.flags, "min_score": rules.min_score });
    if let Some(flag) = result
        .flags
        .iter()
        .find(|f| rules.failing_flags.contains(f))
    {
        return Verdict::fail(
            ReasonCode::IdentityFlagged,
            format!("The identity vendor flagged this person: {flag}."),
            evidence,
        );
    }
    if result.score < rules.min_score {
        return Verdict::fail(
            ReasonCode::IdentityNotVerified,
            format!(
                "Identity match score {} is below {}; ask for identity documents.",
                result.score, rules.min_score
            ),
            evidence,
        );
    }
    Verdict::pass(
        format!("Identity verified (score {}).", result.score),
        evidence,
    )
}

/// No bankruptcy filed within the look-back, unless it was discharged or dismissed at
/// least `min_years_since_closed` years ago.
///
/// The exception (closed long enough ago) also requires no payment more than the
/// mortgage rule's `max_days_late` late: `worst_days_late` is the latest any mortgage on
/// the property is now, or None when the property record could not be read.
pub fn bankruptcy(
    search: &BankruptcySearch,
    policy: &Policy,
    today: NaiveDate,
    worst_days_late: Option<u32>,
) -> Verdict {
    let rules = &policy.bankruptcy;
    let years_ago = |y: u32| {
        today
            .checked_sub_months(Months::new(y * 12))
            .unwrap_or(NaiveDate::MIN)
    };
    let lookback_start = years_ago(rules.lookback_years);
    let closed_by = years_ago(rules.min_years_since_closed);
    let evidence = json!({
        "filings": search.filings.iter().map(|f| json!({
            "chapter": f.chapter, "filed_on": f.filed_on,
            "disposition": f.disposition, "closed_on": f.closed_on,
        })).collect::<Vec<_>>(),
        "lookback_years": rules.lookback_years,
        "min_years_since_closed": rules.min_years_since_closed,
    });
    let mut findings = Vec::new();
    for f in &search.filings {
        let closed = matches!(f.disposition.as_str(), "DISCHARGED" | "DISMISSED");
        if f.disposition == "OPEN" || (!closed && f.closed_on.is_none()) {
            findings.push(Verdict::fail(
                ReasonCode::BankruptcyOpen,
                format!(
                    "An open chapter {} bankruptcy filed {}.",
                    f.chapter, f.filed_on
                ),
                json!({}),
            ));
        } else if f.filed_on >= lookback_start && f.closed_on.is_none_or(|c| c > closed_by) {
            findings.push(Verdict::fail(
                ReasonCode::BankruptcyRecent,
                format!(
                    "A chapter {} bankruptcy filed {} was {} less than {} years ago.",
                    f.chapter,
                    f.filed_on,
                    f.disposition.to_lowercase(),
                    rules.min_years_since_closed
                ),
                json!({}),
            ));
        } else if f.filed_on >= lookback_start {
            // Within the look-back but closed long enough ago: allowed only with a clean
            // recent payment record.
            match worst_days_late {
                Some(days) if days > policy.mortgage.max_days_late => findings.push(Verdict::fail(
                    ReasonCode::BankruptcyLatePayments,
                    format!(
                        "A chapter {} bankruptcy {} {} is allowed only with no payment over {} days late; a mortgage is {days} days late.",
                        f.chapter,
                        f.disposition.to_lowercase(),
                        f.closed_on.map(|d| d.to_string()).unwrap_or_default(),
                        policy.mortgage.max_days_late
                    ),
                    json!({}),
                )),
                Some(_) => {}
                None => findings.push(Verdict::review(
                    ReasonCode::BankruptcyPaymentHistoryUnknown,
                    format!(
                        "A chapter {} bankruptcy in the look-back is allowed only with a clean payment record, which could not be read; check it by hand.",
                        f.chapter
                    ),
                    json!({}),
                )),
            }
        }
    }
    Verdict::worst(
        findings,
        Verdict::pass("No disqualifying bankruptcy.", evidence),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Outcome::{self, *};
    use crate::evidence::BankruptcyFiling;
    use crate::policy::LoadedPolicy;

    fn policy() -> Policy {
        LoadedPolicy::default_policy().policy
    }

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn identity_table() {
        let cases: [(u32, Vec<&str>, Outcome, Vec<&str>); 4] = [
            (80, vec![], Pass, vec![]),
            (79, vec![], Fail, vec!["IDENTITY_NOT_VERIFIED"]),
            (99, vec!["SSN_DECEASED"], Fail, vec!["IDENTITY_FLAGGED"]),
            (95, vec!["ADDRESS_MISMATCH"], Pass, vec![]),
        ];
        for (score, flags, outcome, want) in cases {
            let r = IdentityResult {
                score,
                flags: flags.iter().map(|s| s.to_string()).collect(),
            };
            let v = identity(&r, &policy());
            let codes: Vec<&str> = v.reason_codes.iter().map(String::as_str).collect();
            assert_eq!((v.outcome, codes), (outcome, want), "{score}");
        }
    }

    #[test]
    fn bankruptcy_table() {
        let today = d(2026, 11, 25);
        let filing = |filed, disposition: &str, closed| BankruptcyFiling {
            chapter: 7,
            filed_on: filed,
            disposition: disposition.into(),
            closed_on: closed,
        };
        let cases = [
            (vec![], Pass, vec![]),
            (
                vec![filing(d(2026, 5, 1), "OPEN", None)],
                Fail,
                vec!["BANKRUPTCY_OPEN"],
            ),
            // Discharged exactly two years ago: allowed.
            (
                vec![filing(d(2024, 1, 1), "DISCHARGED", Some(d(2024, 11, 25)))],
                Pass,
                vec![],
            ),
            // A day short of two years: not yet.
            (
                vec![filing(d(2024, 1, 1), "DISCHARGED", Some(d(2024, 11, 26)))],
                Fail,
                vec!["BANKRUPTCY_RECENT"],
            ),
            (
                vec![filing(d(2020, 1, 1), "DISMISSED", Some(d(2021, 1, 1)))],
                Pass,
                vec![],
            ),
            // Filed before the seven-year look-back: ignored.
            (
                vec![filing(d(2019, 11, 24), "DISCHARGED", Some(d(2025, 1, 1)))],
                Pass,
                vec![],
            ),
        ];
        for (filings, outcome, want) in cases {
            let v = bankruptcy(
                &BankruptcySearch {
                    filings: filings.clone(),
                },
                &policy(),
                today,
                Some(0),
            );
            let codes: Vec<&str> = v.reason_codes.iter().map(String::as_str).collect();
            assert_eq!((v.outcome, codes), (outcome, want), "{filings:?}");
        }
    }

    #[test]
    fn an_allowed_bankruptcy_needs_a_clean_payment_record() {
        let today = d(2026, 11, 25);
        let search = BankruptcySearch {
            filings: vec![BankruptcyFiling {
                chapter: 7,
                filed_on: d(2021, 1, 1),
                disposition: "DISCHARGED".into(),
                closed_on: Some(d(2022, 1, 1)),
            }],
        };
        let cases = [
            (Some(30), Pass, vec![]),
            (Some(31), Fail, vec!["BANKRUPTCY_LATE_PAYMENTS"]),
            (None, Review, vec!["BANKRUPTCY_PAYMENT_HISTORY_UNKNOWN"]),
        ];
        for (late, outcome, want) in cases {
            let v = bankruptcy(&search, &policy(), today, late);
            let codes: Vec<&str> = v.reason_codes.iter().map(String::as_str).collect();
            assert_eq!((v.outcome, codes), (outcome, want), "{late:?}");
        }
        // Outside the look-back, the payment record does not matter.
        let old = BankruptcySearch {
            filings: vec![BankruptcyFiling {
                filed_on: d(2015, 1, 1),
                ..search.filings[0].clone()
            }],
        };
        assert_eq!(bankruptcy(&old, &policy(), today, None).outcome, Pass);
    }
}

/// The level annual payment of `amount_cents` over `years` at `rate`.
pub fn annual_payment_cents(amount_cents: i64, years: i32, rate: f64) -> i64 {
    let (p, n) = (amount_cents as f64, f64::from(years.max(1)));
    let payment = if rate == 0.0 {
        p / n
    } else {
        p * rate / (1.0 - (1.0 + rate).powf(-n))
    };
    payment.round() as i64
}

/// What the household pays each year besides its own living: for the residual rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Obligations {
    pub annual_tax_cents: i64,
    pub existing_assessments_cents: i64,
}

/// § 22687: verified household income must carry existing debts, property tax, existing
/// assessments and the new annual payment within the debt-to-income limit, leaving at
/// least the residual income each month.
pub fn ability_to_pay(
    incomes: &[crate::evidence::IncomeVerification],
    financing: &crate::domain::Financing,
    obligations: Obligations,
    policy: &Policy,
) -> Verdict {
    let rules = &policy.ability_to_pay;
    let income: i64 = incomes.iter().map(|i| i.verified_annual_income_cents).sum();
    let debts: i64 = incomes
        .iter()
        .map(|i| i.monthly_debt_payments_cents * 12)
        .sum();
    let payment = annual_payment_cents(
        financing.amount_cents,
        financing.term_years,
        rules.annual_interest_rate,
    );
    let total =
        debts + obligations.annual_tax_cents + obligations.existing_assessments_cents + payment;
    let residual_monthly = (income - total) / 12;
    let dti = if income > 0 {
        total as f64 / income as f64
    } else {
        f64::INFINITY
    };
    let evidence = json!({
        "verified_annual_income_cents": income,
        "annual_debt_payments_cents": debts,
        "annual_property_tax_cents": obligations.annual_tax_cents,
        "existing_assessment_payments_cents": obligations.existing_assessments_cents,
        "annual_assessment_payment_cents": payment,
        "debt_to_income": if dti.is_finite() { (dti * 1000.0).round() / 1000.0 } else { -1.0 },
        "residual_monthly_cents": residual_monthly,
        "max_debt_to_income": rules.max_debt_to_income,
        "min_residual_monthly_cents": rules.min_residual_monthly_cents,
    });
    if income <= 0 {
        return Verdict::fail(
            ReasonCode::IncomeNotVerified,
            "No income could be verified for the household.",
            evidence,
        );
    }
    let mut findings = Vec::new();
    if dti > rules.max_debt_to_income {
        findings.push(Verdict::fail(
            ReasonCode::DebtToIncomeExceeded,
            format!(
                "Obligations with the assessment would take {:.0} % of verified income; at most {:.0} % allowed.",
                dti * 100.0,
                rules.max_debt_to_income * 100.0
            ),
            json!({}),
        ));
    }
    if residual_monthly < rules.min_residual_monthly_cents {
        findings.push(Verdict::fail(
            ReasonCode::ResidualIncomeInsufficient,
            format!(
                "{} a month would remain after obligations; at least {} required.",
                super::dollars(residual_monthly),
                super::dollars(rules.min_residual_monthly_cents)
            ),
            json!({}),
        ));
    }
    Verdict::worst(
        findings,
        Verdict::pass(
            format!(
                "An annual payment of {} fits verified income ({:.0} % of income committed).",
                super::dollars(payment),
                dti * 100.0
            ),
            evidence,
        ),
    )
}

#[cfg(test)]
mod ability_tests {
    use super::*;
    use crate::domain::{Financing, Outcome};
    use crate::evidence::IncomeVerification;
    use crate::policy::LoadedPolicy;

    #[test]
    fn level_payment() {
        // $10,000 over 10 years at 8 %: $1,490.29 a year.
        assert_eq!(annual_payment_cents(1_000_000, 10, 0.08), 149_029);
        assert_eq!(annual_payment_cents(1_000_000, 10, 0.0), 100_000);
    }

    #[test]
    fn ability_to_pay_table() {
        let policy = LoadedPolicy::default_policy().policy;
        let f = Financing {
            amount_cents: 2_000_000,
            term_years: 20,
        };
        let none = Obligations {
            annual_tax_cents: 0,
            existing_assessments_cents: 0,
        };
        let inc = |income, debts| IncomeVerification {
            verified_annual_income_cents: income,
            monthly_debt_payments_cents: debts,
        };
        let payment = annual_payment_cents(2_000_000, 20, 0.0799);
        // Exactly at 50 %: income = 2 × (debts + payment).
        let debts_monthly = 600_000;
        let at_limit = 2 * (debts_monthly * 12 + payment);
        let cases = [
            (vec![inc(12_000_000, 100_000)], Outcome::Pass, vec![]),
            (vec![inc(at_limit, debts_monthly)], Outcome::Pass, vec![]),
            (
                vec![inc(at_limit - 1, debts_monthly)],
                Outcome::Fail,
                vec!["DEBT_TO_INCOME_EXCEEDED"],
            ),
            (
                vec![inc(2_200_000, 150_000)],
                Outcome::Fail,
                vec!["DEBT_TO_INCOME_EXCEEDED", "RESIDUAL_INCOME_INSUFFICIENT"],
            ),
            (vec![inc(0, 0)], Outcome::Fail, vec!["INCOME_NOT_VERIFIED"]),
            // Two earners add up.
            (
                vec![inc(3_000_000, 50_000), inc(3_000_000, 50_000)],
                Outcome::Pass,
                vec![],
            ),
        ];
        for (incomes, outcome, codes) in cases {
            let v = ability_to_pay(&incomes, &f, none, &policy);
            let got: Vec<&str> = v.reason_codes.iter().map(String::as_str).collect();
            assert_eq!((v.outcome, got), (outcome, codes), "{incomes:?}");
        }
    }
}
