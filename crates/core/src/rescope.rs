//! The amount that would pass: when an application is declined only because of how
//! much it asks for, the largest amount, to the cent, that every amount-dependent check
//! would accept with the same property, income, measures and term. The contractor can
//! then re-scope the project instead of starting a new application.
//!
//! Every amount-dependent check is monotone in the amount (a larger assessment never
//! lowers a ratio or a payment), so the largest passing amount is found by bisection
//! over whole cents, running the checks themselves: the answer passes them by
//! construction and one cent more fails one of them, whatever rounding they apply.

use crate::checks;
use crate::domain::{CheckResult, Financing, Outcome};
use crate::judge::{self, Answer, RunInputs};
use crate::policy::Policy;
use crate::reason::ReasonCode;

/// The reasons a smaller amount can cure: the assessment limit, combined debt, the
/// annual tax share and ability to pay. `INCOME_NOT_VERIFIED` is not one of them: no
/// amount is affordable on no verified income.
pub const AMOUNT_DEPENDENT: [ReasonCode; 5] = [
    ReasonCode::AssessmentLimitExceeded,
    ReasonCode::CombinedDebtLimitExceeded,
    ReasonCode::AnnualTaxBurdenExceeded,
    ReasonCode::DebtToIncomeExceeded,
    ReasonCode::ResidualIncomeInsufficient,
];

/// The largest amount in cents that would pass every amount-dependent check, or None
/// when the run did not fail on those reasons alone (or failed on none), or when not
/// even the program's minimum amount would pass.
///
/// `results` are the run's check results and `p` the policy for the property's state.
pub fn amount_that_would_pass(
    inputs: &RunInputs,
    results: &[CheckResult],
    p: &Policy,
) -> Option<i64> {
    // A frugal run that stopped early has not asked for everything the amount depends
    // on (income, debts): the amount that would pass cannot be known.
    if results.iter().any(|r| r.outcome == Outcome::NotRun) {
        return None;
    }
    let failing: Vec<&CheckResult> = results
        .iter()
        .filter(|r| r.outcome == Outcome::Fail)
        .collect();
    let only_amount = !failing.is_empty()
        && failing.iter().all(|r| {
            r.reason_codes
                .iter()
                .all(|c| AMOUNT_DEPENDENT.iter().any(|a| *c == *a))
        });
    if !only_amount {
        return None;
    }
    let passes = |amount_cents: i64| {
        let financing = Financing {
            amount_cents,
            ..inputs.financing
        };
        amount_checks_pass(inputs, &financing, p)
    };
    let requested = inputs.financing.amount_cents;
    let mut low = p.program.min_amount_cents;
    if low >= requested || !passes(low) || passes(requested) {
        // Nothing in the program's range below the requested amount passes (or the
        // stored results do not match the inputs, which replay reports on its own).
        return None;
    }
    // Invariant: `low` passes, `high` fails.
    let mut high = requested;
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if passes(mid) {
            low = mid;
        } else {
            high = mid;
        }
    }
    Some(low)
}

/// Whether no amount-dependent check fails for `financing`.
fn amount_checks_pass(inputs: &RunInputs, financing: &Financing, p: &Policy) -> bool {
    let limit_ok = match (&inputs.property_record, &inputs.avm) {
        (Answer::Found { value: record, .. }, Answer::Found { value: avm, .. }) => {
            checks::financing::assessment_limit(record, Some(avm), financing, p).outcome
                != Outcome::Fail
        }
        // Without both answers the limit is not computed, so it cannot fail on amount.
        _ => true,
    };
    limit_ok
        && judge::ability_to_pay_check(&inputs.applicants, &inputs.property_record, financing, p)
            .outcome
            != Outcome::Fail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CheckKind;
    use crate::policy::LoadedPolicy;
    use crate::test_fixtures::run_inputs as inputs;

    /// The run's amount-dependent results, as the engine would have recorded them.
    fn results(inputs: &RunInputs, p: &Policy) -> Vec<CheckResult> {
        let mut all: Vec<CheckResult> = judge::property_checks(
            &[("Ana".into(), "Lopez".into())],
            &inputs.state,
            &inputs.financing,
            &inputs.property_record,
            &inputs.avm,
            p,
            inputs.as_of,
        )
        .into_iter()
        .filter(|r| r.kind == CheckKind::AssessmentLimit)
        .collect();
        all.push(judge::ability_to_pay_check(
            &inputs.applicants,
            &inputs.property_record,
            &inputs.financing,
            p,
        ));
        all
    }

    fn with_amount(inputs: &RunInputs, amount_cents: i64) -> RunInputs {
        RunInputs {
            financing: Financing {
                amount_cents,
                ..inputs.financing
            },
            ..inputs.clone()
        }
    }

    fn failing_codes(inputs: &RunInputs, p: &Policy) -> Vec<String> {
        results(inputs, p)
            .into_iter()
            .filter(|r| r.outcome == Outcome::Fail)
            .flat_map(|r| r.reason_codes)
            .collect()
    }

    /// A frugal run that stopped before asking for income cannot know the amount.
    #[test]
    fn a_run_with_checks_not_run_names_no_amount() {
        let policy = LoadedPolicy::default_policy();
        let p = &policy.policy;
        let i = inputs(10_000_000, 10_000_000, 0, 50_000_000, 0);
        let mut r = results(&i, p);
        assert!(amount_that_would_pass(&i, &r, p).is_some());
        r.push(judge::not_run(
            CheckKind::Identity,
            "applicant 1",
            &["ASSESSMENT_LIMIT_EXCEEDED".to_owned()],
        ));
        assert_eq!(amount_that_would_pass(&i, &r, p), None);
    }

    /// At each edge the answer is exact: the amount passes every amount-dependent check
    /// and one cent more fails the one that bounds it.
    #[test]
    fn the_amount_passes_and_one_cent_more_fails() {
        let policy = LoadedPolicy::default_policy();
        let p = &policy.policy;
        let rich = 50_000_000; // $500,000 a year: income never binds.
        let cases = [
            // 15 % of $400,000 = $60,000.00 exactly.
            (
                "assessment limit",
                inputs(10_000_000, 10_000_000, 0, rich, 0),
                Some(6_000_000),
                "ASSESSMENT_LIMIT_EXCEEDED",
            ),
            // 97 % of $400,000 = $388,000: a $350,000 mortgage leaves $38,000.00.
            (
                "combined debt",
                inputs(5_000_000, 35_000_000, 0, rich, 0),
                Some(3_800_000),
                "COMBINED_DEBT_LIMIT_EXCEEDED",
            ),
            // 5 % of $400,000 = $20,000 a year; $18,000 of tax leaves $2,000 of payment.
            (
                "annual tax share",
                inputs(5_000_000, 0, 1_800_000, rich, 0),
                None,
                "ANNUAL_TAX_BURDEN_EXCEEDED",
            ),
            // $60,000 a year, $2,000 a month of debts: 50 % leaves $6,000 a year.
            (
                "debt to income",
                inputs(5_950_000, 0, 0, 6_000_000, 200_000),
                None,
                "DEBT_TO_INCOME_EXCEEDED",
            ),
        ];
        for (what, run, exact, bound_by) in cases {
            let got = amount_that_would_pass(&run, &results(&run, p), p)
                .unwrap_or_else(|| panic!("{what}: no amount found"));
            if let Some(exact) = exact {
                assert_eq!(got, exact, "{what}");
            }
            assert!(
                failing_codes(&with_amount(&run, got), p).is_empty(),
                "{what}: {got} fails"
            );
            assert_eq!(
                failing_codes(&with_amount(&run, got + 1), p),
                vec![bound_by.to_owned()],
                "{what}: one cent more"
            );
        }
    }

    #[test]
    fn no_amount_when_something_else_fails_or_nothing_fits() {
        let policy = LoadedPolicy::default_policy();
        let p = &policy.policy;
        // Approved as asked: nothing to re-scope.
        let fine = inputs(2_000_000, 10_000_000, 0, 50_000_000, 0);
        assert_eq!(amount_that_would_pass(&fine, &results(&fine, p), p), None);
        // Over the limit, but another check failed too: a smaller amount cannot cure it.
        let over = inputs(10_000_000, 10_000_000, 0, 50_000_000, 0);
        let mut with_lien = results(&over, p);
        let mut lien = with_lien[0].clone();
        lien.kind = CheckKind::InvoluntaryLiens;
        lien.reason_codes = vec![ReasonCode::InvoluntaryLien.as_str().into()];
        with_lien.push(lien);
        assert_eq!(amount_that_would_pass(&over, &with_lien, p), None);
        // No verified income: no amount is affordable.
        let no_income = inputs(2_000_000, 0, 0, 0, 0);
        assert_eq!(
            failing_codes(&no_income, p),
            vec!["INCOME_NOT_VERIFIED".to_owned()]
        );
        assert_eq!(
            amount_that_would_pass(&no_income, &results(&no_income, p), p),
            None
        );
        // Even the program minimum ($5,000) is over the combined-debt limit.
        let underwater = inputs(2_000_000, 38_500_000, 0, 50_000_000, 0);
        assert_eq!(
            amount_that_would_pass(&underwater, &results(&underwater, p), p),
            None
        );
        // The minimum itself is the largest that passes: found exactly.
        let at_minimum = inputs(2_000_000, 38_300_000, 0, 50_000_000, 0);
        assert_eq!(
            amount_that_would_pass(&at_minimum, &results(&at_minimum, p), p),
            Some(500_000)
        );
    }
}
