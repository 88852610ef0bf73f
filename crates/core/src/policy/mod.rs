//! The underwriting policy (every threshold, look-back and limit) and the decision rule.
//! Pure: no I/O beyond reading a policy file's text.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::{CheckKind, CheckResult, Decision, MeasureKind, Outcome};

/// The policy compiled into the binary, used when no policy file is configured.
pub const DEFAULT_POLICY_TOML: &str = include_str!("default.toml");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub version: String,
    pub program: Program,
    pub assessment_limit: AssessmentLimit,
    pub property_tax: PropertyTax,
    pub mortgage: MortgageRules,
    pub liens: Liens,
    pub valuation: ValuationRules,
    pub identity: IdentityRules,
    pub bankruptcy: BankruptcyRules,
    pub useful_life_years: BTreeMap<MeasureKind, u32>,
    pub contractor: ContractorRules,
    pub sanctions: SanctionsRules,
    pub ability_to_pay: AbilityToPayRules,
    /// How evaluations order their upstream questions (`parallel` or `frugal`); absent:
    /// `parallel`.
    #[serde(default)]
    pub evaluation: crate::plan::EvaluationRules,
    /// Per-state overrides: `[states.FL.property_tax] lookback_years = 2` replaces that
    /// one setting for properties in Florida. Any setting except `version` and `states`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub states: BTreeMap<String, toml::Table>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbilityToPayRules {
    pub annual_interest_rate: f64,
    pub max_debt_to_income: f64,
    pub min_residual_monthly_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SanctionsRules {
    pub match_threshold: f64,
    pub review_threshold: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Program {
    pub participating_states: Vec<String>,
    pub eligible_property_types: Vec<String>,
    pub max_units: u32,
    pub min_amount_cents: i64,
    pub max_amount_cents: i64,
    pub min_term_years: i32,
    pub max_term_years: i32,
    #[serde(default)]
    pub optional_checks: Vec<CheckKind>,
    /// ZIP code prefixes the program covers, by state; a state not listed is covered
    /// whole.
    #[serde(default)]
    pub boundaries: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssessmentLimit {
    pub first_tier_ratio: f64,
    pub first_tier_cap_cents: i64,
    pub upper_tier_ratio: f64,
    pub max_combined_ratio: f64,
    pub max_annual_tax_ratio: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropertyTax {
    pub lookback_years: u32,
    pub max_late_payments: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MortgageRules {
    pub lookback_months: u32,
    pub max_late_payments: u32,
    pub max_days_late: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Liens {
    pub max_involuntary_lien_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValuationRules {
    pub min_confidence: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityRules {
    pub min_score: u32,
    #[serde(default)]
    pub failing_flags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BankruptcyRules {
    pub lookback_years: u32,
    pub min_years_since_closed: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractorRules {
    pub classifications: BTreeMap<MeasureKind, Vec<String>>,
}

/// A policy plus its identity, as recorded beside every decision.
#[derive(Debug, Clone)]
pub struct LoadedPolicy {
    pub policy: Policy,
    /// Hex SHA-256 of the policy text, so a decision names exactly what decided it.
    pub hash: String,
    pub source: String,
    /// The policy as it applies in each state with overrides, resolved at load.
    by_state: BTreeMap<String, Policy>,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy file is not valid TOML or has an unknown or missing setting: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("policy is contradictory: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

impl LoadedPolicy {
    pub fn default_policy() -> LoadedPolicy {
        LoadedPolicy::parse(DEFAULT_POLICY_TOML).expect("the built-in policy is valid")
    }

    pub fn parse(source: &str) -> Result<LoadedPolicy, PolicyError> {
        let policy: Policy = toml::from_str(source)?;
        policy.validate()?;
        let mut by_state = BTreeMap::new();
        for (state, overrides) in &policy.states {
            let resolved = policy.with_overrides(state, overrides)?;
            by_state.insert(state.clone(), resolved);
        }
        let hash = hex::encode(Sha256::digest(source.as_bytes()));
        Ok(LoadedPolicy {
            policy,
            hash,
            source: source.to_owned(),
            by_state,
        })
    }

    /// The policy that applies to a property in `state` (two-letter code).
    pub fn for_state(&self, state: &str) -> &Policy {
        self.by_state.get(state).unwrap_or(&self.policy)
    }
}

impl Policy {
    /// This policy with one state's overrides applied, validated, and named in errors.
    fn with_overrides(&self, state: &str, overrides: &toml::Table) -> Result<Policy, PolicyError> {
        let invalid = |why: String| PolicyError::Invalid(vec![format!("states.{state}: {why}")]);
        if !crate::domain::is_us_state(state) {
            return Err(invalid("is not a two-letter US state code".into()));
        }
        if overrides.contains_key("version") || overrides.contains_key("states") {
            return Err(invalid("may not override `version` or `states`".into()));
        }
        let mut base = toml::Value::try_from(Policy {
            states: BTreeMap::new(),
            ..self.clone()
        })
        .map_err(|e| invalid(e.to_string()))?;
        merge(&mut base, toml::Value::Table(overrides.clone()));
        let resolved: Policy = base
            .try_into()
            .map_err(|e: toml::de::Error| invalid(e.to_string()))?;
        resolved.validate().map_err(|e| match e {
            PolicyError::Invalid(problems) => PolicyError::Invalid(
                problems
                    .into_iter()
                    .map(|p| format!("states.{state}: {p}"))
                    .collect(),
            ),
            other => other,
        })?;
        Ok(resolved)
    }

    /// Refuses settings that cannot all hold at once, naming each one.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let mut problems = Vec::new();
        let p = &self.program;
        if self.version.trim().is_empty() {
            problems.push("version must not be empty".to_owned());
        }
        if p.participating_states.is_empty() {
            problems.push("program.participating_states is empty".to_owned());
        }
        if p.min_amount_cents <= 0 || p.min_amount_cents > p.max_amount_cents {
            problems.push(format!(
                "program.min_amount_cents ({}) must be positive and not above max_amount_cents ({})",
                p.min_amount_cents, p.max_amount_cents
            ));
        }
        if p.min_term_years <= 0 || p.min_term_years > p.max_term_years {
            problems.push(format!(
                "program.min_term_years ({}) must be positive and not above max_term_years ({})",
                p.min_term_years, p.max_term_years
            ));
        }
        let a = &self.assessment_limit;
        for (name, ratio) in [
            ("first_tier_ratio", a.first_tier_ratio),
            ("upper_tier_ratio", a.upper_tier_ratio),
            ("max_combined_ratio", a.max_combined_ratio),
            ("max_annual_tax_ratio", a.max_annual_tax_ratio),
        ] {
            if !(ratio > 0.0 && ratio <= 1.0) {
                problems.push(format!(
                    "assessment_limit.{name} ({ratio}) must be in (0, 1]"
                ));
            }
        }
        if self.valuation.min_confidence > 100 {
            problems.push("valuation.min_confidence must be at most 100".to_owned());
        }
        if self.identity.min_score > 100 {
            problems.push("identity.min_score must be at most 100".to_owned());
        }
        for kind in [CheckKind::PersonSanctions, CheckKind::CompanySanctions] {
            if p.optional_checks.contains(&kind) {
                problems.push(format!(
                    "program.optional_checks may not include {}: an application must never be approved unscreened",
                    kind.as_str()
                ));
            }
        }
        let ap = &self.ability_to_pay;
        if !(0.0..1.0).contains(&ap.annual_interest_rate) {
            problems.push(format!(
                "ability_to_pay.annual_interest_rate ({}) must be in [0, 1)",
                ap.annual_interest_rate
            ));
        }
        if !(ap.max_debt_to_income > 0.0 && ap.max_debt_to_income <= 1.0) {
            problems.push(format!(
                "ability_to_pay.max_debt_to_income ({}) must be in (0, 1]",
                ap.max_debt_to_income
            ));
        }
        if ap.min_residual_monthly_cents < 0 {
            problems
                .push("ability_to_pay.min_residual_monthly_cents must not be negative".to_owned());
        }
        let sr = &self.sanctions;
        if !(sr.review_threshold > 0.0
            && sr.review_threshold <= sr.match_threshold
            && sr.match_threshold <= 1.0)
        {
            problems.push(format!(
                "sanctions thresholds must satisfy 0 < review_threshold ({}) <= match_threshold ({}) <= 1",
                sr.review_threshold, sr.match_threshold
            ));
        }
        problems.extend(self.evaluation.problems());
        if self.bankruptcy.min_years_since_closed > self.bankruptcy.lookback_years {
            problems.push(format!(
                "bankruptcy.min_years_since_closed ({}) exceeds lookback_years ({})",
                self.bankruptcy.min_years_since_closed, self.bankruptcy.lookback_years
            ));
        }
        for kind in MeasureKind::ALL {
            if !self.useful_life_years.contains_key(&kind) {
                problems.push(format!("useful_life_years.{} is missing", kind.as_str()));
            }
            if self
                .contractor
                .classifications
                .get(&kind)
                .is_none_or(|c| c.is_empty())
            {
                problems.push(format!(
                    "contractor.classifications.{} is missing or empty",
                    kind.as_str()
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(PolicyError::Invalid(problems))
        }
    }

    pub fn is_required(&self, kind: CheckKind) -> bool {
        !self.program.optional_checks.contains(&kind)
    }
}

/// Deep-merges `over` into `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) if existing.is_table() && v.is_table() => merge(existing, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// The decision rule: any FAIL declines; otherwise any REVIEW, or a required check
/// UNAVAILABLE, refers; otherwise approve. Reason codes are those of the checks that
/// drove the decision, deduplicated, in check order.
pub fn decide(policy: &Policy, results: &[CheckResult]) -> (Decision, Vec<String>) {
    let failing: Vec<&CheckResult> = results
        .iter()
        .filter(|r| r.outcome == Outcome::Fail)
        .collect();
    let (decision, driving): (Decision, Vec<&CheckResult>) = if !failing.is_empty() {
        (Decision::Declined, failing)
    } else {
        let referring: Vec<&CheckResult> = results
            .iter()
            .filter(|r| {
                r.outcome == Outcome::Review
                    || (r.outcome == Outcome::Unavailable && policy.is_required(r.kind))
            })
            .collect();
        if referring.is_empty() {
            (Decision::Approved, Vec::new())
        } else {
            (Decision::Refer, referring)
        }
    };
    let mut codes: Vec<String> = Vec::new();
    for r in driving {
        for c in &r.reason_codes {
            if !codes.contains(c) {
                codes.push(c.clone());
            }
        }
    }
    (decision, codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(kind: CheckKind, outcome: Outcome, code: &str) -> CheckResult {
        CheckResult {
            kind,
            subject: "property".into(),
            outcome,
            reason_codes: if code.is_empty() {
                vec![]
            } else {
                vec![code.into()]
            },
            message: String::new(),
            source: None,
            evidence: serde_json::Value::Null,
            finished_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn evaluation_mode_is_chosen_per_state_and_bad_tiers_are_refused() {
        let with = |extra: &str| LoadedPolicy::parse(&format!("{DEFAULT_POLICY_TOML}\n{extra}"));
        let p = with("[states.FL.evaluation]\nmode = \"frugal\"\n").unwrap();
        assert_eq!(p.policy.evaluation.mode, crate::plan::Mode::Parallel);
        assert_eq!(p.for_state("FL").evaluation.mode, crate::plan::Mode::Frugal);
        for (extra, expected) in [
            (
                "[evaluation]\nmode = \"frugal\"\ntiers = [[\"property_records\"], [\"sanctions\"]]\n",
                "`sanctions` in the first tier",
            ),
            (
                "[states.MO.evaluation]\nmode = \"frugal\"\ntiers = [[\"valuation\"]]\n",
                "states.MO: evaluation.tiers must list `sanctions`",
            ),
            (
                "[evaluation]\nmode = \"cheap\"\n",
                "unknown variant `cheap`",
            ),
            (
                "[evaluation]\ntiers = [[\"credit\"]]\n",
                "unknown variant `credit`",
            ),
        ] {
            let e = with(extra).unwrap_err().to_string();
            assert!(e.contains(expected), "{extra}: {e}");
        }
    }

    #[test]
    fn default_policy_is_valid() {
        let p = LoadedPolicy::default_policy();
        assert_eq!(p.policy.version, "ca-2026.11");
        assert_eq!(p.hash.len(), 64);
    }

    #[test]
    fn decision_table() {
        use CheckKind::*;
        use Outcome::*;
        let policy = LoadedPolicy::default_policy().policy;
        let cases: Vec<(Vec<CheckResult>, Decision, Vec<&str>)> = vec![
            (
                vec![result(PropertyTax, Pass, "")],
                Decision::Approved,
                vec![],
            ),
            (
                vec![
                    result(PropertyTax, Fail, "PROPERTY_TAX_DELINQUENT"),
                    result(Valuation, Review, "VALUATION_LOW_CONFIDENCE"),
                ],
                Decision::Declined,
                vec!["PROPERTY_TAX_DELINQUENT"],
            ),
            (
                vec![
                    result(PropertyTax, Pass, ""),
                    result(Valuation, Review, "VALUATION_LOW_CONFIDENCE"),
                ],
                Decision::Refer,
                vec!["VALUATION_LOW_CONFIDENCE"],
            ),
            (
                vec![result(Identity, Unavailable, "UPSTREAM_TIMEOUT")],
                Decision::Refer,
                vec!["UPSTREAM_TIMEOUT"],
            ),
            (
                vec![
                    result(Identity, Fail, "IDENTITY_NOT_VERIFIED"),
                    result(Mortgage, Fail, "IDENTITY_NOT_VERIFIED"),
                ],
                Decision::Declined,
                vec!["IDENTITY_NOT_VERIFIED"],
            ),
        ];
        for (results, decision, codes) in cases {
            assert_eq!(
                decide(&policy, &results),
                (decision, codes.into_iter().map(String::from).collect())
            );
        }
    }

    #[test]
    fn optional_checks_do_not_refer_when_unavailable() {
        let mut policy = LoadedPolicy::default_policy().policy;
        policy.program.optional_checks = vec![CheckKind::Valuation];
        let results = vec![result(
            CheckKind::Valuation,
            Outcome::Unavailable,
            "UPSTREAM_ERROR",
        )];
        assert_eq!(decide(&policy, &results).0, Decision::Approved);
    }

    #[test]
    fn contradictory_policy_is_refused_naming_each_setting() {
        let text = DEFAULT_POLICY_TOML
            .replace("min_term_years = 5", "min_term_years = 40")
            .replace("first_tier_ratio = 0.15", "first_tier_ratio = 1.5");
        let err = LoadedPolicy::parse(&text).unwrap_err().to_string();
        assert!(err.contains("min_term_years"), "{err}");
        assert!(err.contains("first_tier_ratio"), "{err}");
    }

    #[test]
    fn state_overrides_apply_to_that_state_only() {
        let text = format!(
            "{DEFAULT_POLICY_TOML}\n[states.FL.property_tax]\nlookback_years = 2\n[states.FL.valuation]\nmin_confidence = 80\n"
        );
        let p = LoadedPolicy::parse(&text).unwrap();
        assert_eq!(p.for_state("FL").property_tax.lookback_years, 2);
        assert_eq!(
            p.for_state("FL").property_tax.max_late_payments,
            1,
            "untouched keys stay"
        );
        assert_eq!(p.for_state("FL").valuation.min_confidence, 80);
        assert_eq!(p.for_state("CA").property_tax.lookback_years, 3);
    }

    #[test]
    fn bad_state_overrides_are_refused_naming_the_key() {
        for (extra, needle) in [
            ("[states.FL.property_tax]\nlookbak_years = 2\n", "states.FL"),
            ("[states.ZZ.valuation]\nmin_confidence = 80\n", "states.ZZ"),
            (
                "[states.FL.valuation]\nmin_confidence = 150\n",
                "states.FL: valuation.min_confidence",
            ),
        ] {
            let text = format!("{DEFAULT_POLICY_TOML}\n{extra}");
            let err = LoadedPolicy::parse(&text).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn unknown_setting_is_refused() {
        let text = format!("{DEFAULT_POLICY_TOML}\n[extra]\nfoo = 1\n");
        assert!(matches!(
            LoadedPolicy::parse(&text),
            Err(PolicyError::Parse(_))
        ));
    }
}
