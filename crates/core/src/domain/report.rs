use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Upstream;

/// Every check Dossier runs. String forms are stable: they are stored and reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    PropertyOwnership,
    PropertyEligibility,
    PropertyTax,
    Mortgage,
    InvoluntaryLiens,
    Valuation,
    AssessmentLimit,
    Term,
    Identity,
    Bankruptcy,
    PersonSanctions,
    AbilityToPay,
    ContractorLicense,
    BusinessRegistration,
    CompanySanctions,
}

impl CheckKind {
    pub const ALL: [CheckKind; 15] = [
        CheckKind::PropertyOwnership,
        CheckKind::PropertyEligibility,
        CheckKind::PropertyTax,
        CheckKind::Mortgage,
        CheckKind::InvoluntaryLiens,
        CheckKind::Valuation,
        CheckKind::AssessmentLimit,
        CheckKind::Term,
        CheckKind::Identity,
        CheckKind::Bankruptcy,
        CheckKind::PersonSanctions,
        CheckKind::AbilityToPay,
        CheckKind::ContractorLicense,
        CheckKind::BusinessRegistration,
        CheckKind::CompanySanctions,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::PropertyOwnership => "property_ownership",
            CheckKind::PropertyEligibility => "property_eligibility",
            CheckKind::PropertyTax => "property_tax",
            CheckKind::Mortgage => "mortgage",
            CheckKind::InvoluntaryLiens => "involuntary_liens",
            CheckKind::Valuation => "valuation",
            CheckKind::AssessmentLimit => "assessment_limit",
            CheckKind::Term => "term",
            CheckKind::Identity => "identity",
            CheckKind::Bankruptcy => "bankruptcy",
            CheckKind::PersonSanctions => "person_sanctions",
            CheckKind::AbilityToPay => "ability_to_pay",
            CheckKind::ContractorLicense => "contractor_license",
            CheckKind::BusinessRegistration => "business_registration",
            CheckKind::CompanySanctions => "company_sanctions",
        }
    }

    pub fn parse(s: &str) -> Option<CheckKind> {
        CheckKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
    Review,
    Unavailable,
    /// Not asked: a frugal evaluation had already declined the application before this
    /// check's (paid) data was needed. Never part of an approval or a referral.
    NotRun,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Review => "review",
            Outcome::Unavailable => "unavailable",
            Outcome::NotRun => "not_run",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        [
            Outcome::Pass,
            Outcome::Fail,
            Outcome::Review,
            Outcome::Unavailable,
            Outcome::NotRun,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approved,
    Declined,
    Refer,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approved => "approved",
            Decision::Declined => "declined",
            Decision::Refer => "refer",
        }
    }

    pub fn parse(s: &str) -> Option<Decision> {
        [Decision::Approved, Decision::Declined, Decision::Refer]
            .into_iter()
            .find(|d| d.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplicationStatus {
    Pending,
    Running,
    Decided,
}

impl ApplicationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ApplicationStatus::Pending => "pending",
            ApplicationStatus::Running => "running",
            ApplicationStatus::Decided => "decided",
        }
    }

    pub fn parse(s: &str) -> Option<ApplicationStatus> {
        [
            ApplicationStatus::Pending,
            ApplicationStatus::Running,
            ApplicationStatus::Decided,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

/// How an upstream answer was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheOutcome {
    /// A real request to the upstream.
    #[default]
    Fetched,
    /// This pod's memory.
    L1Hit,
    /// The cache shared by all pods.
    L2Hit,
    /// Shared with an identical request already in flight.
    Coalesced,
    /// Past its freshness, served because the upstream failed.
    Stale,
    /// Computed locally, no network (the sanctions list).
    Local,
}

impl CacheOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheOutcome::Fetched => "fetched",
            CacheOutcome::L1Hit => "l1_hit",
            CacheOutcome::L2Hit => "l2_hit",
            CacheOutcome::Coalesced => "coalesced",
            CacheOutcome::Stale => "stale",
            CacheOutcome::Local => "local",
        }
    }

    pub fn parse(s: &str) -> Option<CacheOutcome> {
        [
            Self::Fetched,
            Self::L1Hit,
            Self::L2Hit,
            Self::Coalesced,
            Self::Stale,
            Self::Local,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

/// Where the data behind a check came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSource {
    pub upstream: Upstream,
    pub fetched_at: DateTime<Utc>,
    pub cached: bool,
    pub stale: bool,
    #[serde(default)]
    pub cache: CacheOutcome,
    /// The other vendors of a waterfall that were asked, in order, and why their
    /// answers were not used (usually all before `upstream`; when no vendor answered
    /// well enough, the first answer found is used and later vendors are listed too).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passed_over: Vec<PassedOver>,
}

/// A vendor a waterfall asked whose answer was not used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassedOver {
    pub upstream: Upstream,
    /// `not_found`, `low_confidence`, or the failure's kind (`timeout`,
    /// `circuit_open`, `rate_limited`, `http_status`, `deadline`…).
    pub reason: String,
}

/// What one check concluded, with its evidence. Never holds an SSN or date of birth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub kind: CheckKind,
    /// "property", "applicant 1", "contractor".
    pub subject: String,
    pub outcome: Outcome,
    pub reason_codes: Vec<String>,
    pub message: String,
    pub source: Option<DataSource>,
    pub evidence: serde_json::Value,
    pub finished_at: DateTime<Utc>,
}

/// The decision over a set of check results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    pub decision: Decision,
    pub reason_codes: Vec<String>,
    pub policy_version: String,
    pub policy_hash: String,
    pub figures: serde_json::Value,
    pub decided_at: DateTime<Utc>,
    /// The evaluation's mode and vendor spending; None for decisions recorded before
    /// spending was kept.
    #[serde(default)]
    pub vendor_cost: Option<crate::plan::VendorCost>,
}

impl DecisionRecord {
    /// The key in `figures` of the amount that would pass, in cents (`rescope`).
    pub const AMOUNT_THAT_WOULD_PASS: &'static str = "amount_that_would_pass_cents";

    /// For a decline that a smaller amount would cure: the largest amount, in cents,
    /// that would pass every amount-dependent check.
    pub fn amount_that_would_pass_cents(&self) -> Option<i64> {
        self.figures.get(Self::AMOUNT_THAT_WOULD_PASS)?.as_i64()
    }
}

/// An underwriter's decision on a REFER application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewRecord {
    /// Approved (true) or declined (false).
    pub approve: bool,
    pub note: String,
    pub reviewer: String,
    pub reviewed_at: DateTime<Utc>,
}

/// Everything known about an application, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub application_id: uuid::Uuid,
    pub idempotency_key: String,
    pub rails_application_id: Option<String>,
    pub status: ApplicationStatus,
    pub created_at: DateTime<Utc>,
    pub checks: Vec<CheckResult>,
    pub decision: Option<DecisionRecord>,
    pub complete: bool,
    pub review: Option<ReviewRecord>,
    /// Runs of the checks so far (1 + refreshes).
    pub run_count: i32,
}

impl Report {
    /// The decision that stands: an underwriter's review of a REFER, else the rules'.
    pub fn final_decision(&self) -> Option<Decision> {
        match (&self.review, &self.decision) {
            (Some(r), _) => Some(if r.approve {
                Decision::Approved
            } else {
                Decision::Declined
            }),
            (None, Some(d)) => Some(d.decision),
            (None, None) => None,
        }
    }
}

/// A row of a report listing.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportSummary {
    pub application_id: uuid::Uuid,
    pub idempotency_key: String,
    pub status: ApplicationStatus,
    pub decision: Option<Decision>,
    pub reason_codes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
}
