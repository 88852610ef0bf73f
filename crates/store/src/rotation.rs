//! Sealing stored values again under the active key: `dossier keys rotate`.
//!
//! Each batch takes rows that are under a retired key, or sealed the old way (bound to
//! the column only, or run inputs in the clear), locks them (`SKIP LOCKED`, so two
//! rotations or a serving fleet never wait on each other), re-seals them bound to their
//! row, and commits. A stopped rotation resumes where it stopped: what is done no
//! longer matches. Serving goes on throughout: every pod opens values under any key it
//! holds, whichever one sealed them.

use sqlx::types::Json;
use uuid::Uuid;

use super::crypto::{SEAL_VERSION, Sealed, context};
use super::{Store, StoreError};

/// What is left to re-seal, per table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Remaining {
    pub applicant_secrets: i64,
    pub evaluation_runs: i64,
    pub funding_checks: i64,
    pub upstream_cache: i64,
}

impl Remaining {
    pub fn total(&self) -> i64 {
        self.applicant_secrets + self.evaluation_runs + self.funding_checks + self.upstream_cache
    }
}

impl Store {
    /// How many rows still need re-sealing.
    pub async fn rotation_remaining(&self) -> Result<Remaining, StoreError> {
        let active = self.vault.active_key_id();
        let row = sqlx::query!(
            r#"SELECT
                 (SELECT count(*) FROM applicant_secrets
                   WHERE key_id <> $1 OR seal_version < $2) AS "applicant_secrets!",
                 (SELECT count(*) FROM evaluation_runs
                   WHERE inputs_key_id <> $1
                      OR (inputs_sealed IS NULL AND jsonb_typeof(inputs->'applicants') = 'array')) AS "evaluation_runs!",
                 (SELECT count(*) FROM funding_checks
                   WHERE inputs_key_id <> $1) AS "funding_checks!",
                 (SELECT count(*) FROM upstream_cache
                   WHERE sealed IS NOT NULL AND key_id <> $1) AS "upstream_cache!""#,
            active,
            SEAL_VERSION,
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(Remaining {
            applicant_secrets: row.applicant_secrets,
            evaluation_runs: row.evaluation_runs,
            funding_checks: row.funding_checks,
            upstream_cache: row.upstream_cache,
        })
    }

    /// Re-seals up to `batch` applicants' SSNs and dates of birth; returns how many.
    pub async fn reseal_applicants(&self, batch: i64) -> Result<usize, StoreError> {
        let mut tx = crate::transaction::begin(&self.pool, None).await?;
        let rows = sqlx::query!(
            "SELECT application_id, position, key_id, ssn_sealed, dob_sealed, seal_version
               FROM applicant_secrets
              WHERE key_id <> $1 OR seal_version < $2
              LIMIT $3 FOR UPDATE SKIP LOCKED",
            self.vault.active_key_id(),
            SEAL_VERSION,
            batch,
        )
        .fetch_all(&mut *tx)
        .await?;
        let reseal = |bytes: Vec<u8>, key_id: &str, field: &str, id: Uuid, pos: i32, v: i16| {
            let plain = self.vault.open(
                &Sealed {
                    key_id: key_id.to_owned(),
                    bytes,
                },
                &context::applicant(field, id, pos, v),
            )?;
            let plain = zeroize::Zeroizing::new(plain);
            Ok::<_, StoreError>(
                self.vault
                    .seal(&plain, &context::applicant(field, id, pos, SEAL_VERSION)),
            )
        };
        let n = rows.len();
        for r in rows {
            let ssn = reseal(
                r.ssn_sealed,
                &r.key_id,
                "ssn",
                r.application_id,
                r.position,
                r.seal_version,
            )?;
            let dob = reseal(
                r.dob_sealed,
                &r.key_id,
                "dob",
                r.application_id,
                r.position,
                r.seal_version,
            )?;
            sqlx::query!(
                "UPDATE applicant_secrets SET key_id = $3, ssn_sealed = $4, dob_sealed = $5, seal_version = $6
                  WHERE application_id = $1 AND position = $2",
                r.application_id,
                r.position,
                &ssn.key_id,
                &ssn.bytes,
                &dob.bytes,
                SEAL_VERSION,
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Re-seals up to `batch` runs' personal inputs (sealing those of earlier releases,
    /// stored in the clear, for the first time); returns how many.
    pub async fn reseal_run_inputs(&self, batch: i64) -> Result<usize, StoreError> {
        let mut tx = crate::transaction::begin(&self.pool, None).await?;
        let rows = sqlx::query!(
            "SELECT id, inputs, inputs_sealed, inputs_key_id FROM evaluation_runs
              WHERE inputs_key_id <> $1
                 OR (inputs_sealed IS NULL AND jsonb_typeof(inputs->'applicants') = 'array')
              LIMIT $2 FOR UPDATE SKIP LOCKED",
            self.vault.active_key_id(),
            batch,
        )
        .fetch_all(&mut *tx)
        .await?;
        let n = rows.len();
        for r in rows {
            let Some((public, sealed)) =
                self.reseal_inputs(r.id, r.inputs, r.inputs_sealed, r.inputs_key_id)?
            else {
                continue;
            };
            sqlx::query!(
                "UPDATE evaluation_runs SET inputs = $2, inputs_sealed = $3, inputs_key_id = $4 WHERE id = $1",
                r.id,
                Json(&public) as _,
                sealed.as_ref().map(|s| s.bytes.as_slice()),
                sealed.as_ref().map(|s| s.key_id.as_str()),
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Re-seals up to `batch` funding checks' personal inputs; returns how many. (The
    /// same as for runs, on another table: a statement names its table.)
    pub async fn reseal_funding_inputs(&self, batch: i64) -> Result<usize, StoreError> {
        let mut tx = crate::transaction::begin(&self.pool, None).await?;
        let rows = sqlx::query!(
            "SELECT id, inputs, inputs_sealed, inputs_key_id FROM funding_checks
              WHERE inputs_key_id <> $1
              LIMIT $2 FOR UPDATE SKIP LOCKED",
            self.vault.active_key_id(),
            batch,
        )
        .fetch_all(&mut *tx)
        .await?;
        let n = rows.len();
        for r in rows {
            let Some((public, sealed)) =
                self.reseal_inputs(r.id, Some(r.inputs), r.inputs_sealed, r.inputs_key_id)?
            else {
                continue;
            };
            sqlx::query!(
                "UPDATE funding_checks SET inputs = $2, inputs_sealed = $3, inputs_key_id = $4 WHERE id = $1",
                r.id,
                Json(&public) as _,
                sealed.as_ref().map(|s| s.bytes.as_slice()),
                sealed.as_ref().map(|s| s.key_id.as_str()),
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// A row's inputs opened with whatever key sealed them and sealed again under the
    /// active key, bound to the row (`id`); None when the row has no inputs.
    fn reseal_inputs(
        &self,
        id: Uuid,
        public: Option<serde_json::Value>,
        sealed: Option<Vec<u8>>,
        key_id: Option<String>,
    ) -> Result<Option<(serde_json::Value, Option<Sealed>)>, StoreError> {
        let opened = crate::run_inputs::open(&self.vault, id, public, sealed, key_id)?;
        Ok(opened.map(|inputs| crate::run_inputs::seal(&self.vault, id, &inputs)))
    }

    /// Re-seals up to `batch` personal answers of the shared cache. One that does not
    /// open (a key no longer held, or sealed before answers were bound to their
    /// question) is deleted: it is a cache, and the next look-up fetches it again.
    pub async fn reseal_cache(&self, batch: i64) -> Result<usize, StoreError> {
        let mut tx = crate::transaction::begin(&self.pool, None).await?;
        let rows = sqlx::query!(
            r#"SELECT upstream, kind, key, sealed AS "sealed!", key_id AS "key_id!" FROM upstream_cache
              WHERE sealed IS NOT NULL AND key_id <> $1
              LIMIT $2 FOR UPDATE SKIP LOCKED"#,
            self.vault.active_key_id(),
            batch,
        )
        .fetch_all(&mut *tx)
        .await?;
        let n = rows.len();
        for r in rows {
            let bound = context::cache(&r.upstream, &r.kind, &r.key);
            let opened = self.vault.open(
                &Sealed {
                    key_id: r.key_id,
                    bytes: r.sealed,
                },
                &bound,
            );
            match opened {
                Ok(plain) => {
                    let plain = zeroize::Zeroizing::new(plain);
                    let sealed = self.vault.seal(&plain, &bound);
                    sqlx::query!(
                        "UPDATE upstream_cache SET sealed = $4, key_id = $5
                          WHERE upstream = $1 AND kind = $2 AND key = $3",
                        r.upstream,
                        r.kind,
                        r.key,
                        sealed.bytes,
                        sealed.key_id,
                    )
                    .execute(&mut *tx)
                    .await?;
                }
                Err(_) => {
                    sqlx::query!(
                        "DELETE FROM upstream_cache WHERE upstream = $1 AND kind = $2 AND key = $3",
                        r.upstream,
                        r.kind,
                        r.key,
                    )
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(n)
    }
}
