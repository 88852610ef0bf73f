//! Person checks: identity and bankruptcy.

use chrono::{Months, NaiveDate};
use serde_json::json;

use super::Verdict;
use crate::policy::Policy;
use crate::upstream::identity::{BankruptcySearch, IdentityResult};

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
            "IDENTITY_FLAGGED",
            format!("The identity vendor flagged this person: {flag}."),
            evidence,
        );
    }
    if result.score < rules.min_score {
        return Verdict::fail(
            "IDENTITY_NOT_VERIFIED",
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
pub fn bankruptcy(search: &BankruptcySearch, policy: &Policy, today: NaiveDate) -> Verdict {
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
                "BANKRUPTCY_OPEN",
                format!(
                    "An open chapter {} bankruptcy filed {}.",
                    f.chapter, f.filed_on
                ),
                json!({}),
            ));
        } else if f.filed_on >= lookback_start && f.closed_on.is_none_or(|c| c > closed_by) {
            findings.push(Verdict::fail(
                "BANKRUPTCY_RECENT",
                format!(
                    "A chapter {} bankruptcy filed {} was {} less than {} years ago.",
                    f.chapter,
                    f.filed_on,
                    f.disposition.to_lowercase(),
                    rules.min_years_since_closed
                ),
                json!({}),
            ));
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
    use crate::policy::LoadedPolicy;
    use crate::upstream::identity::BankruptcyFiling;

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
            );
            let codes: Vec<&str> = v.reason_codes.iter().map(String::as_str).collect();
            assert_eq!((v.outcome, codes), (outcome, want), "{filings:?}");
        }
    }
}
