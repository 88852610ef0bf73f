//! In what order an evaluation asks for its data, and when it may stop asking.
//!
//! Every check is judged from one or more kinds of data ([`DataKind`]). In `parallel`
//! mode every kind is asked for at once (lowest latency). In `frugal` mode the kinds run
//! in tiers, cheapest first, every kind of a tier at once; once a hard failure has
//! declined the application, the later (paid) tiers are not asked and their checks are
//! NOT_RUN. Any FAIL declines whatever else is found (`policy::decide`), so a frugal
//! evaluation reaches the decision a parallel one would on the same data.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::domain::{CheckResult, Outcome, Upstream};

/// A kind of data an evaluation gathers; the unit of tiers and of vendor waterfalls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataKind {
    /// The local SDN screen of every applicant and the contractor (free, no network).
    Sanctions,
    Licensing,
    Registry,
    PropertyRecords,
    Valuation,
    /// An applicant's identity and verified income.
    Identity,
    Bankruptcy,
}

impl DataKind {
    pub const ALL: [DataKind; 7] = [
        DataKind::Sanctions,
        DataKind::Licensing,
        DataKind::Registry,
        DataKind::PropertyRecords,
        DataKind::Valuation,
        DataKind::Identity,
        DataKind::Bankruptcy,
    ];

    /// The kinds that may have several vendors (a waterfall).
    pub const WATERFALLS: [DataKind; 4] = [
        DataKind::PropertyRecords,
        DataKind::Valuation,
        DataKind::Identity,
        DataKind::Bankruptcy,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            DataKind::Sanctions => "sanctions",
            DataKind::Licensing => "licensing",
            DataKind::Registry => "registry",
            DataKind::PropertyRecords => "property_records",
            DataKind::Valuation => "valuation",
            DataKind::Identity => "identity",
            DataKind::Bankruptcy => "bankruptcy",
        }
    }

    pub fn parse(s: &str) -> Option<DataKind> {
        DataKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The vendor asked when no waterfall is configured.
    pub const fn primary(self) -> Upstream {
        match self {
            DataKind::Sanctions => Upstream::Sanctions,
            DataKind::Licensing => Upstream::Licensing,
            DataKind::Registry => Upstream::Registry,
            DataKind::PropertyRecords => Upstream::PropertyRecords,
            DataKind::Valuation => Upstream::Valuation,
            DataKind::Identity | DataKind::Bankruptcy => Upstream::Identity,
        }
    }

    /// Every vendor Dossier has a client for that can answer this kind.
    pub const fn vendors(self) -> &'static [Upstream] {
        match self {
            DataKind::Sanctions => &[Upstream::Sanctions],
            DataKind::Licensing => &[Upstream::Licensing],
            DataKind::Registry => &[Upstream::Registry],
            DataKind::PropertyRecords => &[Upstream::PropertyRecords],
            DataKind::Valuation => &[Upstream::Valuation, Upstream::AltValuation],
            DataKind::Identity | DataKind::Bankruptcy => {
                &[Upstream::Identity, Upstream::AltIdentity]
            }
        }
    }

    /// Requests one application makes for this kind: `applicants` people.
    pub fn requests(self, applicants: usize) -> usize {
        match self {
            DataKind::Sanctions => 0,
            // Identity verification and income, per applicant.
            DataKind::Identity => 2 * applicants,
            DataKind::Bankruptcy => applicants,
            _ => 1,
        }
    }

    /// Kinds an evaluation may never skip: an application is screened against the SDN
    /// list whatever else decided it (compliance keeps the screen of every applicant).
    pub const fn never_skipped(self) -> bool {
        matches!(self, DataKind::Sanctions)
    }
}

impl fmt::Display for DataKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an evaluation orders its upstream questions (the policy's `evaluation.mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Every kind of data at once: the lowest latency, every vendor billed.
    #[default]
    Parallel,
    /// Cheapest tiers first; paid tiers skipped once the application is declined.
    Frugal,
}

impl Mode {
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Parallel => "parallel",
            Mode::Frugal => "frugal",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        [Mode::Parallel, Mode::Frugal]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// The policy's `[evaluation]` table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationRules {
    #[serde(default)]
    pub mode: Mode,
    /// For `frugal`: the tiers in order, each a list of kinds asked at once. Kinds not
    /// listed follow, grouped by vendor cost. Empty: every kind grouped by cost.
    #[serde(default)]
    pub tiers: Vec<Vec<DataKind>>,
}

impl EvaluationRules {
    /// What makes these rules unusable, each problem named by its setting.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut seen = Vec::new();
        for (i, tier) in self.tiers.iter().enumerate() {
            if tier.is_empty() {
                problems.push(format!("evaluation.tiers[{i}] is empty"));
            }
            for kind in tier {
                if seen.contains(kind) {
                    problems.push(format!(
                        "evaluation.tiers lists `{kind}` twice: each kind of data is asked for in one tier"
                    ));
                }
                seen.push(*kind);
            }
        }
        if self.mode == Mode::Frugal && !self.tiers.is_empty() {
            for kind in DataKind::ALL.into_iter().filter(|k| k.never_skipped()) {
                if !self.tiers[0].contains(&kind) {
                    problems.push(format!(
                        "evaluation.tiers must list `{kind}` in the first tier: it may never be skipped, and a later tier can be"
                    ));
                }
            }
        }
        problems
    }

    /// The tiers an evaluation runs, given what one request of each kind costs (its
    /// first vendor's price, in cents). `parallel`: one tier of everything.
    pub fn tiers(&self, cost_cents: impl Fn(DataKind) -> i64) -> Vec<Vec<DataKind>> {
        if self.mode == Mode::Parallel {
            return vec![DataKind::ALL.to_vec()];
        }
        let mut tiers: Vec<Vec<DataKind>> = self.tiers.clone();
        let listed: Vec<DataKind> = tiers.iter().flatten().copied().collect();
        let mut by_cost: BTreeMap<i64, Vec<DataKind>> = BTreeMap::new();
        for kind in DataKind::ALL.into_iter().filter(|k| !listed.contains(k)) {
            // Never skipped, so never worth putting off: always in the first tier.
            let cost = if kind.never_skipped() {
                i64::MIN
            } else {
                cost_cents(kind)
            };
            by_cost.entry(cost).or_default().push(kind);
        }
        match (tiers.first_mut(), by_cost.remove(&i64::MIN)) {
            (Some(first), Some(free)) => first.extend(free),
            (None, Some(free)) => tiers.push(free),
            (_, None) => {}
        }
        tiers.extend(by_cost.into_values());
        tiers
    }
}

/// Why the rest of a frugal evaluation is not needed: the reason codes of the hard
/// failures that already declined it. None while nothing has failed.
pub fn declined_by(results: &[CheckResult]) -> Option<Vec<String>> {
    let mut codes: Vec<String> = Vec::new();
    for r in results.iter().filter(|r| r.outcome == Outcome::Fail) {
        for c in &r.reason_codes {
            if !codes.contains(c) {
                codes.push(c.clone());
            }
        }
    }
    results
        .iter()
        .any(|r| r.outcome == Outcome::Fail)
        .then_some(codes)
}

/// How an evaluation asked its vendors, what it spent, and what its skipped tiers
/// would have cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VendorCost {
    pub mode: Mode,
    /// Answers fetched from vendors (cache hits cost nothing), at each vendor's price.
    pub spent_cents: i64,
    /// The requests a frugal evaluation did not make, at their first vendor's price.
    pub avoided_cents: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use DataKind::*;

    fn price(kind: DataKind) -> i64 {
        match kind {
            Sanctions => 0,
            Licensing | Registry => 5,
            PropertyRecords => 35,
            Valuation => 50,
            Identity | Bankruptcy => 75,
        }
    }

    #[test]
    fn tiers_table() {
        let rules = |mode, tiers: Vec<Vec<DataKind>>| EvaluationRules { mode, tiers };
        let cases: Vec<(EvaluationRules, Vec<Vec<DataKind>>)> = vec![
            (rules(Mode::Parallel, vec![]), vec![DataKind::ALL.to_vec()]),
            (
                rules(Mode::Frugal, vec![]),
                vec![
                    vec![Sanctions],
                    vec![Licensing, Registry],
                    vec![PropertyRecords],
                    vec![Valuation],
                    vec![Identity, Bankruptcy],
                ],
            ),
            // Listed tiers first, the rest by cost after them.
            (
                rules(Mode::Frugal, vec![vec![Sanctions, PropertyRecords]]),
                vec![
                    vec![Sanctions, PropertyRecords],
                    vec![Licensing, Registry],
                    vec![Valuation],
                    vec![Identity, Bankruptcy],
                ],
            ),
        ];
        for (rules, expected) in cases {
            assert_eq!(rules.tiers(price), expected, "{rules:?}");
            assert!(rules.problems().is_empty(), "{rules:?}");
        }
    }

    #[test]
    fn tiers_that_could_skip_the_sanctions_screen_are_refused() {
        for tiers in [
            vec![vec![PropertyRecords], vec![Sanctions]],
            vec![vec![PropertyRecords]],
        ] {
            let rules = EvaluationRules {
                mode: Mode::Frugal,
                tiers,
            };
            let problems = rules.problems().join("; ");
            assert!(
                problems.contains("`sanctions` in the first tier"),
                "{problems}"
            );
        }
        let twice = EvaluationRules {
            mode: Mode::Frugal,
            tiers: vec![vec![Sanctions, Valuation], vec![Valuation], vec![]],
        };
        let problems = twice.problems().join("; ");
        assert!(problems.contains("`valuation` twice"), "{problems}");
        assert!(problems.contains("tiers[2] is empty"), "{problems}");
    }

    #[test]
    fn every_kind_has_its_primary_among_its_vendors() {
        for kind in DataKind::ALL {
            assert_eq!(kind.vendors()[0], kind.primary());
            assert_eq!(DataKind::parse(kind.as_str()), Some(kind));
        }
    }
}
