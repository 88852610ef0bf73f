//! Funding checks (`funding_checks`): each pre-funding re-verification of an approved
//! application, kept beside its decisions, with its delivery to Rails queued in the
//! same transaction (the outbox, as for decisions).

use chrono::{DateTime, Utc};
use dossier_core::domain::{CheckResult, Financing};
use dossier_core::funding::{EvidenceChange, FundingVerdict};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::{Store, StoreError};

/// A funding check to record.
#[derive(Debug, Clone)]
pub struct NewFundingCheck<'a> {
    pub id: Uuid,
    pub application_id: Uuid,
    /// The approved run this check compared against.
    pub approval_run_id: Uuid,
    pub verdict: FundingVerdict,
    pub reason_codes: &'a [String],
    /// The codes an underwriter accepted when approving a REFER, if they did.
    pub accepted_codes: Option<&'a [String]>,
    pub changes: &'a [EvidenceChange],
    pub checks: &'a [CheckResult],
    pub financing: Financing,
    /// The run inputs (`judge::RunInputs` as JSON); the applicants' part is sealed.
    pub inputs: &'a Value,
    pub policy_version: &'a str,
    pub policy_hash: &'a str,
    pub checked_at: DateTime<Utc>,
    pub trace_parent: Option<&'a str>,
}

/// A recorded funding check.
#[derive(Debug, Clone, PartialEq)]
pub struct FundingCheck {
    pub id: Uuid,
    pub application_id: Uuid,
    pub approval_run_id: Uuid,
    pub verdict: FundingVerdict,
    pub reason_codes: Vec<String>,
    /// The codes an underwriter accepted when approving a REFER, if they did.
    pub accepted_codes: Option<Vec<String>>,
    pub changes: Vec<EvidenceChange>,
    pub checks: Vec<CheckResult>,
    pub financing: Financing,
    pub policy_version: String,
    /// The SHA-256 of the policy text (its source is kept in `policies`, for replay).
    pub policy_hash: String,
    pub checked_at: DateTime<Utc>,
    /// An underwriter's resolution of a HOLD.
    pub resolution: Option<Resolution>,
}

/// An underwriter's resolution of a funding HOLD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// Fund after all (true), or decline (false).
    pub clear: bool,
    pub reviewer: String,
    pub note: String,
    pub resolved_at: DateTime<Utc>,
}

/// An underwriter's review of a REFER, as funding checks need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReviewOf {
    pub run_id: Uuid,
    pub approve: bool,
}

/// What became of a request to resolve a HOLD.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    /// Recorded, and its delivery to Rails queued.
    Recorded(Box<FundingCheck>),
    NotFound,
    /// The check is CLEAR: there is nothing to resolve.
    NotAHold,
    /// A later funding check of the application replaced it: resolve that one.
    Superseded,
    /// An underwriter resolved it already (the check as it stands).
    AlreadyResolved(Box<FundingCheck>),
}

/// A funding check as delivered to Rails: no applicant data.
#[derive(Debug, Clone, PartialEq)]
pub struct FundingNotice {
    pub check: FundingCheck,
    pub submission_key: String,
    pub rails_application_id: Option<String>,
}

struct Row {
    id: Uuid,
    application_id: Uuid,
    approval_run_id: Uuid,
    verdict: String,
    reason_codes: Vec<String>,
    accepted_codes: Option<Vec<String>>,
    changes: Value,
    checks: Value,
    financing: Value,
    policy_version: String,
    policy_hash: String,
    checked_at: DateTime<Utc>,
    resolution: Option<String>,
    resolved_by: Option<String>,
    resolution_note: Option<String>,
    resolved_at: Option<DateTime<Utc>>,
}

impl Row {
    fn into_check(self) -> Result<FundingCheck, StoreError> {
        let id = self.id;
        let corrupt = |what: &str, e: serde_json::Error| {
            StoreError::Corrupt(format!(
                "the {what} of funding check {id} do not decode: {e}"
            ))
        };
        Ok(FundingCheck {
            id,
            application_id: self.application_id,
            approval_run_id: self.approval_run_id,
            verdict: FundingVerdict::parse(&self.verdict).ok_or_else(|| {
                StoreError::Corrupt(format!("funding check {id} has verdict {:?}", self.verdict))
            })?,
            reason_codes: self.reason_codes,
            accepted_codes: self.accepted_codes,
            changes: serde_json::from_value(self.changes).map_err(|e| corrupt("changes", e))?,
            checks: serde_json::from_value(self.checks).map_err(|e| corrupt("checks", e))?,
            financing: serde_json::from_value(self.financing)
                .map_err(|e| corrupt("financing", e))?,
            policy_version: self.policy_version,
            policy_hash: self.policy_hash,
            checked_at: self.checked_at,
            resolution: match (self.resolution, self.resolved_by, self.resolved_at) {
                (Some(outcome), Some(reviewer), Some(resolved_at)) => Some(Resolution {
                    clear: outcome == "clear",
                    reviewer,
                    note: self.resolution_note.unwrap_or_default(),
                    resolved_at,
                }),
                _ => None,
            },
        })
    }
}

impl Store {
    /// Records a funding check and queues its delivery to Rails, in one transaction.
    pub async fn record_funding_check(&self, new: NewFundingCheck<'_>) -> Result<(), StoreError> {
        let (public, sealed) = crate::run_inputs::seal(&self.vault, new.id, new.inputs);
        let (sealed_bytes, key_id) = match sealed {
            Some(s) => (Some(s.bytes), Some(s.key_id)),
            None => (None, None),
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query!(
            "INSERT INTO funding_checks (id, application_id, approval_run_id, verdict, reason_codes, changes, checks, financing, inputs, inputs_sealed, inputs_key_id, policy_version, policy_hash, checked_at, accepted_codes)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            new.id,
            new.application_id,
            new.approval_run_id,
            new.verdict.as_str(),
            new.reason_codes,
            Json(new.changes) as _,
            Json(new.checks) as _,
            Json(&new.financing) as _,
            public,
            sealed_bytes,
            key_id,
            new.policy_version,
            new.policy_hash,
            new.checked_at,
            new.accepted_codes,
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "INSERT INTO jobs (kind, application_id, funding_check_id, max_attempts, trace_parent)
             VALUES ('deliver_funding', $1, $2, $3, $4)",
            new.application_id,
            new.id,
            super::jobs::DELIVERY_ATTEMPTS,
            new.trace_parent,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Queues a funding check of `application_id` with its final terms (JSON), to be
    /// run by a worker; its outcome is delivered like every funding check's.
    pub async fn queue_funding_check(
        &self,
        application_id: Uuid,
        terms: &Value,
        trace_parent: Option<&str>,
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let id = sqlx::query_scalar!(
            "INSERT INTO jobs (kind, application_id, payload, trace_parent)
             VALUES ('prepare_funding', $1, $2, $3) RETURNING id",
            application_id,
            terms,
            trace_parent,
        )
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query!("SELECT pg_notify($1, '')", super::JOBS_CHANNEL)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Every funding check of an application, newest first.
    pub async fn funding_checks(
        &self,
        application_id: Uuid,
    ) -> Result<Vec<FundingCheck>, StoreError> {
        let rows = sqlx::query_as!(
            Row,
            "SELECT id, application_id, approval_run_id, verdict, reason_codes, accepted_codes, changes, checks, financing, policy_version, policy_hash, checked_at, resolution, resolved_by, resolution_note, resolved_at
             FROM funding_checks WHERE application_id = $1 ORDER BY checked_at DESC, id DESC",
            application_id,
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Row::into_check).collect()
    }

    /// What a `deliver_funding` job sends; None if the check is gone.
    pub async fn funding_delivery(&self, id: Uuid) -> Result<Option<FundingNotice>, StoreError> {
        let row = sqlx::query!(
            "SELECT f.id, f.application_id, f.approval_run_id, f.verdict, f.reason_codes, f.accepted_codes, f.changes, f.checks, f.financing, f.policy_version, f.policy_hash, f.checked_at,
                    f.resolution, f.resolved_by, f.resolution_note, f.resolved_at,
                    a.idempotency_key, a.rails_application_id
             FROM funding_checks f JOIN applications a ON a.id = f.application_id
             WHERE f.id = $1",
            id,
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(FundingNotice {
                submission_key: r.idempotency_key,
                rails_application_id: r.rails_application_id,
                check: Row {
                    id: r.id,
                    application_id: r.application_id,
                    approval_run_id: r.approval_run_id,
                    verdict: r.verdict,
                    reason_codes: r.reason_codes,
                    accepted_codes: r.accepted_codes,
                    changes: r.changes,
                    checks: r.checks,
                    financing: r.financing,
                    policy_version: r.policy_version,
                    policy_hash: r.policy_hash,
                    checked_at: r.checked_at,
                    resolution: r.resolution,
                    resolved_by: r.resolved_by,
                    resolution_note: r.resolution_note,
                    resolved_at: r.resolved_at,
                }
                .into_check()?,
            })
        })
        .transpose()
    }

    /// Records an underwriter's resolution of a HOLD (fund after all, or decline) and
    /// queues its delivery to Rails, in one transaction. A HOLD is resolved once.
    pub async fn resolve_funding_hold(
        &self,
        id: Uuid,
        clear: bool,
        reviewer: &str,
        note: &str,
        trace_parent: Option<&str>,
    ) -> Result<Resolved, StoreError> {
        let mut tx = self.pool.begin().await?;
        let state = sqlx::query!(
            r#"SELECT f.verdict, f.resolution,
                      EXISTS (SELECT 1 FROM funding_checks later
                              WHERE later.application_id = f.application_id
                                AND (later.checked_at, later.id) > (f.checked_at, f.id)) AS "superseded!"
               FROM funding_checks f WHERE f.id = $1 FOR UPDATE OF f"#,
            id,
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(state) = state else {
            return Ok(Resolved::NotFound);
        };
        if state.verdict != "hold" {
            return Ok(Resolved::NotAHold);
        }
        if state.superseded && state.resolution.is_none() {
            return Ok(Resolved::Superseded);
        }
        if state.resolution.is_none() {
            let application_id = sqlx::query_scalar!(
                "UPDATE funding_checks SET resolution = $2, resolved_by = $3, resolution_note = $4, resolved_at = now()
                 WHERE id = $1 RETURNING application_id",
                id,
                if clear { "clear" } else { "decline" },
                reviewer,
                note,
            )
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query!(
                "INSERT INTO jobs (kind, application_id, funding_check_id, max_attempts, trace_parent)
                 VALUES ('deliver_funding_review', $1, $2, $3, $4)",
                application_id,
                id,
                super::jobs::DELIVERY_ATTEMPTS,
                trace_parent,
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let check = self
            .funding_delivery(id)
            .await?
            .ok_or(StoreError::Corrupt(format!("funding check {id} vanished")))?
            .check;
        Ok(if state.resolution.is_none() {
            Resolved::Recorded(Box::new(check))
        } else {
            Resolved::AlreadyResolved(Box::new(check))
        })
    }

    /// The review of an application's REFER, if an underwriter made one: which run it
    /// reviewed and whether it approved.
    pub async fn review_of(&self, application_id: Uuid) -> Result<Option<ReviewOf>, StoreError> {
        Ok(sqlx::query!(
            "SELECT run_id, outcome FROM reviews WHERE application_id = $1",
            application_id,
        )
        .fetch_optional(&self.pool)
        .await?
        .map(|r| ReviewOf {
            run_id: r.run_id,
            approve: r.outcome == "approve",
        }))
    }

    /// The exact text of a policy a decision or funding check names, by hash.
    pub async fn policy_source(&self, hash: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar!("SELECT source FROM policies WHERE hash = $1", hash)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The inputs a funding check was computed from, unsealed, for replay.
    pub async fn funding_inputs(&self, id: Uuid) -> Result<Option<Value>, StoreError> {
        let row = sqlx::query!(
            "SELECT inputs, inputs_sealed, inputs_key_id FROM funding_checks WHERE id = $1",
            id,
        )
        .fetch_optional(&self.pool)
        .await?;
        match row {
            None => Ok(None),
            Some(r) => crate::run_inputs::open(
                &self.vault,
                id,
                Some(r.inputs),
                r.inputs_sealed,
                r.inputs_key_id,
            ),
        }
    }
}
