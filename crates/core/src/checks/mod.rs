//! Every check as a pure function of upstream answers and policy. No I/O: `underwriting/`
//! gathers the answers, these functions judge them, and the tables of cases in each
//! file's tests pin the edges (exactly at a limit, one cent over).

pub mod company;
pub mod financing;
pub mod names;
pub mod person;
pub mod property;
pub mod sanctions;

use serde_json::Value;

use crate::domain::Outcome;
use crate::reason::ReasonCode;

/// What a check concluded, before the engine stamps kind, subject, source and time on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub outcome: Outcome,
    pub reason_codes: Vec<String>,
    pub message: String,
    pub evidence: Value,
}

impl Verdict {
    pub fn pass(message: impl Into<String>, evidence: Value) -> Verdict {
        Verdict {
            outcome: Outcome::Pass,
            reason_codes: Vec::new(),
            message: message.into(),
            evidence,
        }
    }

    pub fn fail(code: ReasonCode, message: impl Into<String>, evidence: Value) -> Verdict {
        Verdict {
            outcome: Outcome::Fail,
            reason_codes: vec![code.as_str().to_owned()],
            message: message.into(),
            evidence,
        }
    }

    pub fn review(code: ReasonCode, message: impl Into<String>, evidence: Value) -> Verdict {
        Verdict {
            outcome: Outcome::Review,
            reason_codes: vec![code.as_str().to_owned()],
            message: message.into(),
            evidence,
        }
    }

    pub fn unavailable(code: ReasonCode, message: impl Into<String>) -> Verdict {
        Verdict::unavailable_as(code.as_str(), message)
    }

    /// UNAVAILABLE with a code read back from a stored answer (replay): a code an
    /// earlier release wrote is kept as it was, known to this release or not.
    pub fn unavailable_as(code: &str, message: impl Into<String>) -> Verdict {
        Verdict {
            outcome: Outcome::Unavailable,
            reason_codes: vec![code.to_owned()],
            message: message.into(),
            evidence: Value::Null,
        }
    }

    /// Folds several findings of one check: the worst outcome wins (FAIL over REVIEW
    /// over PASS) and every failing or referring reason is kept.
    pub fn worst(findings: Vec<Verdict>, pass: Verdict) -> Verdict {
        let rank = |o: Outcome| match o {
            Outcome::Fail => 3,
            Outcome::Unavailable => 2,
            Outcome::Review => 1,
            Outcome::Pass | Outcome::NotRun => 0,
        };
        let Some(worst) = findings.iter().map(|f| rank(f.outcome)).max() else {
            return pass;
        };
        let mut kept = findings.into_iter().filter(|f| rank(f.outcome) == worst);
        let mut first = kept.next().expect("at least one finding");
        for other in kept {
            first.reason_codes.extend(other.reason_codes);
            first.message = format!("{} {}", first.message, other.message);
        }
        first.evidence = pass.evidence;
        first
    }
}

/// Dollars for messages: 123456 cents → "$1,234.56".
pub fn dollars(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    let whole = (cents / 100).to_string();
    let mut grouped = String::new();
    for (i, ch) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    format!("{sign}${grouped}.{:02}", cents % 100)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dollars_formats_cents() {
        for (cents, text) in [
            (0, "$0.00"),
            (5, "$0.05"),
            (100_000, "$1,000.00"),
            (123_456_789, "$1,234,567.89"),
            (-250, "-$2.50"),
        ] {
            assert_eq!(super::dollars(cents), text);
        }
    }
}
