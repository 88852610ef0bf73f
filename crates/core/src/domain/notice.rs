//! A decision as it is announced to the lender's systems (the outbox delivers it to
//! Rails): who decided what, and which earlier decision it replaces. No applicant data.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Decision;

#[derive(Debug, Clone, PartialEq)]
pub struct DecisionNotice {
    /// The evaluation run (or the review) that decided; also the delivery's
    /// idempotency key.
    pub decision_id: Uuid,
    pub application_id: Uuid,
    /// The idempotency key the application was submitted with.
    pub submission_key: String,
    /// The Rails application, when it was submitted by Rails id.
    pub rails_application_id: Option<String>,
    pub decision: Decision,
    pub reason_codes: Vec<String>,
    pub policy_version: String,
    pub decided_at: DateTime<Utc>,
    pub decided_by: DecidedBy,
    /// For an underwriter's decision: the REFER decision it resolves.
    pub replaces: Option<Uuid>,
    /// For an underwriter's decision: who, as the identity provider's token named them.
    pub reviewer: Option<String>,
    /// For the policy's decision: what its evaluation spent on vendors (None for an
    /// underwriter's, and for decisions recorded before spending was kept).
    pub vendor_cost: Option<crate::plan::VendorCost>,
}

/// Who made a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecidedBy {
    /// The automated checks under the underwriting policy.
    Policy,
    /// An underwriter reviewing a REFER; the notice's reason codes are the REFER's.
    Underwriter,
}
