//! What `dossier replay` reads: every decided run of an application with the inputs
//! and the exact policy it was decided with.

use uuid::Uuid;

use super::reports::DecisionRow;
use super::{Store, StoreError};
use dossier_core::domain::CheckResult;
use dossier_core::domain::DecisionRecord;

/// A stored decision with what it was computed from.
#[derive(Debug, Clone)]
pub struct StoredRun {
    pub run_id: Uuid,
    pub decision: DecisionRecord,
    pub inputs: Option<serde_json::Value>,
    pub checks: Vec<CheckResult>,
    pub policy_source: Option<String>,
}

impl Store {
    /// Keeps the exact text of a policy, by hash, for replay.
    pub async fn save_policy(
        &self,
        hash: &str,
        version: &str,
        source: &str,
    ) -> Result<(), StoreError> {
        sqlx::query!(
            "INSERT INTO policies (hash, version, source) VALUES ($1, $2, $3) ON CONFLICT (hash) DO NOTHING",
            hash,
            version,
            source,
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every decided run of an application, oldest first, with its inputs and policy.
    pub async fn decided_runs(&self, application_id: Uuid) -> Result<Vec<StoredRun>, StoreError> {
        // p.source comes through a LEFT JOIN: "?" (nullable) whatever the inference says.
        let rows = sqlx::query!(
            r#"SELECT r.id, r.inputs, r.inputs_sealed, r.inputs_key_id, d.decision, d.reason_codes, d.policy_version, d.policy_hash, d.figures, d.decided_at,
                    d.evaluation_mode, d.vendor_cost_cents, d.vendor_cost_avoided_cents, p.source AS "source?"
             FROM evaluation_runs r
             JOIN decisions d ON d.run_id = r.id
             LEFT JOIN policies p ON p.hash = d.policy_hash
             WHERE r.application_id = $1
             ORDER BY d.decided_at"#,
            application_id,
        )
        .fetch_all(&self.pool)
        .await?;
        let mut runs = Vec::new();
        for row in rows {
            let run_id = row.id;
            let decision = DecisionRow {
                decision: row.decision,
                reason_codes: row.reason_codes,
                policy_version: row.policy_version,
                policy_hash: row.policy_hash,
                figures: row.figures,
                decided_at: row.decided_at,
                evaluation_mode: row.evaluation_mode,
                vendor_cost_cents: row.vendor_cost_cents,
                vendor_cost_avoided_cents: row.vendor_cost_avoided_cents,
            };
            runs.push(StoredRun {
                run_id,
                decision: decision.into_record()?,
                inputs: crate::run_inputs::open(
                    &self.vault,
                    run_id,
                    row.inputs,
                    row.inputs_sealed,
                    row.inputs_key_id,
                )?,
                checks: self.run_checks(run_id).await?,
                policy_source: row.source,
            });
        }
        Ok(runs)
    }
}
