//! Accepting applications (idempotently) and reading them back with their PII unsealed.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use uuid::Uuid;

use super::crypto::{SEAL_VERSION, Sealed, context};
use super::{JOBS_CHANNEL, Store, StoreError};
use dossier_core::domain::{Applicant, Application, ApplicationStatus, Ssn};

/// The result of trying to accept an application under an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// A new application was stored.
    New { id: Uuid },
    /// The key was used before with the same payload: the existing application.
    Replayed { id: Uuid, status: ApplicationStatus },
    /// The key was used before with a different payload, or by another caller.
    Conflict,
}

/// What gets stored: the application without SSN and date of birth.
#[derive(Serialize, Deserialize)]
struct StoredApplication {
    applicants: Vec<StoredApplicant>,
    property: dossier_core::domain::Property,
    contractor: dossier_core::domain::Contractor,
    measures: Vec<dossier_core::domain::Measure>,
    financing: dossier_core::domain::Financing,
}

#[derive(Serialize, Deserialize)]
struct StoredApplicant {
    first_name: String,
    middle_name: String,
    last_name: String,
    suffix: String,
    /// "***-**-6789": lets an underwriter tell applicants apart without the SSN.
    ssn_masked: String,
    email: String,
    stated_annual_income_cents: i64,
}

/// Applicants' sealed secrets, one entry per applicant in each column.
#[derive(Default)]
struct SealedSecrets {
    positions: Vec<i32>,
    key_ids: Vec<String>,
    ssn_sealed: Vec<Vec<u8>>,
    dob_sealed: Vec<Vec<u8>>,
    ssn_lookups: Vec<Vec<u8>>,
}

/// A new application to store.
pub struct NewApplication<'a> {
    /// The access policy's name for the submitting caller ("anonymous" without client
    /// authentication): idempotency keys are the caller's own.
    pub submitted_by: &'a str,
    /// The SPIFFE ID the caller's connection proved, if any.
    pub submitted_by_id: Option<&'a str>,
    pub idempotency_key: &'a str,
    /// Keyed hash of the canonical request (see `api::convert::payload_fingerprint`).
    pub payload_hmac: Vec<u8>,
    pub source: Source<'a>,
    /// Queue a background evaluation job in the same transaction, runnable after this
    /// delay (zero: at once). EvaluateApplication delays it by its own budget, so a
    /// worker only picks it up if the evaluating pod died. `None`: no job.
    pub enqueue_after: Option<std::time::Duration>,
    /// The submitting call's W3C `traceparent`, kept with the job so the background
    /// evaluation continues its trace.
    pub trace_parent: Option<&'a str>,
}

pub enum Source<'a> {
    Inline(&'a Application),
    Rails(&'a str),
}

impl Store {
    /// Stores an application, its sealed PII and (optionally) its evaluation job, or
    /// reports that the idempotency key was already used.
    ///
    /// One statement, so one round trip and atomic without BEGIN and COMMIT (a
    /// statement is its own transaction): the application, its secrets and its job
    /// exist together or not at all, and the NOTIFY is delivered at its commit. This is
    /// the accept path of every submission, so it costs what one INSERT costs.
    pub async fn accept_application(
        &self,
        new: NewApplication<'_>,
    ) -> Result<Accepted, StoreError> {
        let id = Uuid::now_v7();
        let (source, rails_id, app) = match &new.source {
            Source::Inline(app) => ("inline", None, Some(*app)),
            Source::Rails(rid) => ("rails", Some(*rid), None),
        };
        let secrets = app.map(|a| self.seal_secrets(id, a)).unwrap_or_default();
        let inserted = sqlx::query_scalar!(
            // No conflict target: the caller's key may collide with the per-caller
            // constraint or, until it is dropped, the global one of earlier releases.
            r#"WITH app AS (
                 INSERT INTO applications (id, idempotency_key, payload_hmac, source, rails_application_id, application, submitted_by, submitted_by_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT DO NOTHING
                 RETURNING id
             ), secrets AS (
                 INSERT INTO applicant_secrets (application_id, position, key_id, ssn_sealed, dob_sealed, ssn_lookup, seal_version)
                 SELECT app.id, s.position, s.key_id, s.ssn_sealed, s.dob_sealed, s.ssn_lookup, $14::smallint
                 FROM app, unnest($9::int[], $10::text[], $11::bytea[], $12::bytea[], $13::bytea[])
                          AS s(position, key_id, ssn_sealed, dob_sealed, ssn_lookup)
                 ON CONFLICT (application_id, position) DO NOTHING
             ), job AS (
                 INSERT INTO jobs (kind, application_id, run_at, trace_parent)
                 SELECT 'evaluate', app.id, now() + make_interval(secs => $15::float8), $16
                 FROM app WHERE $15 IS NOT NULL
             )
             SELECT EXISTS (SELECT 1 FROM app)
                    AND (CASE WHEN $15 IS NOT NULL THEN pg_notify($17, $1::text) IS NOT NULL
                              ELSE true END) AS "inserted!""#,
            id,
            new.idempotency_key,
            &new.payload_hmac,
            source,
            rails_id,
            // `as _`: the macro checks a jsonb parameter against serde_json::Value only.
            app.map(|a| Json(strip_pii(a))) as _,
            new.submitted_by,
            new.submitted_by_id,
            &secrets.positions,
            &secrets.key_ids,
            &secrets.ssn_sealed,
            &secrets.dob_sealed,
            &secrets.ssn_lookups,
            SEAL_VERSION,
            new.enqueue_after.map(|d| d.as_secs_f64()),
            new.trace_parent,
            JOBS_CHANNEL,
        )
        .fetch_one(&self.pool)
        .await?;
        if inserted {
            return Ok(Accepted::New { id });
        }
        let row = sqlx::query!(
            "SELECT id, payload_hmac, status FROM applications WHERE submitted_by = $1 AND idempotency_key = $2",
            new.submitted_by,
            new.idempotency_key,
        )
        .fetch_optional(&self.pool)
        .await?;
        // None: another caller's key (refused the same way, naming nothing).
        Ok(match row {
            Some(row) if row.payload_hmac == new.payload_hmac => Accepted::Replayed {
                id: row.id,
                status: parse_status(&row.status)?,
            },
            _ => Accepted::Conflict,
        })
    }

    /// Every applicant's SSN and date of birth sealed, bound to the application and the
    /// applicant's position, as columns for `unnest`.
    fn seal_secrets(&self, id: Uuid, app: &Application) -> SealedSecrets {
        let mut out = SealedSecrets::default();
        for (position, a) in app.applicants.iter().enumerate() {
            let position = position as i32;
            let bound = |field| context::applicant(field, id, position, SEAL_VERSION);
            let ssn = self.vault.seal(a.ssn.expose().as_bytes(), &bound("ssn"));
            let dob = self
                .vault
                .seal(a.date_of_birth.to_string().as_bytes(), &bound("dob"));
            out.positions.push(position);
            out.key_ids.push(ssn.key_id);
            out.ssn_sealed.push(ssn.bytes);
            out.dob_sealed.push(dob.bytes);
            out.ssn_lookups
                .push(self.vault.lookup_hash("ssn", a.ssn.expose().as_bytes()));
        }
        out
    }

    async fn insert_secrets(
        &self,
        tx: &mut sqlx::PgConnection,
        id: Uuid,
        app: &Application,
    ) -> Result<(), StoreError> {
        let secrets = self.seal_secrets(id, app);
        sqlx::query!(
            "INSERT INTO applicant_secrets (application_id, position, key_id, ssn_sealed, dob_sealed, ssn_lookup, seal_version)
             SELECT $1, s.position, s.key_id, s.ssn_sealed, s.dob_sealed, s.ssn_lookup, $7::smallint
             FROM unnest($2::int[], $3::text[], $4::bytea[], $5::bytea[], $6::bytea[])
                  AS s(position, key_id, ssn_sealed, dob_sealed, ssn_lookup)
             ON CONFLICT (application_id, position) DO NOTHING",
            id,
            &secrets.positions,
            &secrets.key_ids,
            &secrets.ssn_sealed,
            &secrets.dob_sealed,
            &secrets.ssn_lookups,
            SEAL_VERSION,
        )
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// Stores an application fetched from Rails for an application submitted by id.
    pub async fn attach_fetched_application(
        &self,
        id: Uuid,
        app: &Application,
    ) -> Result<(), StoreError> {
        let mut tx = crate::transaction::begin(&self.pool, None).await?;
        let updated = sqlx::query!(
            "UPDATE applications SET application = $2, updated_at = now() WHERE id = $1 AND application IS NULL",
            id,
            Json(strip_pii(app)) as _,
        )
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 1 {
            self.insert_secrets(&mut tx, id, app).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Reads an application back with SSNs and dates of birth unsealed. `Ok(None)` when
    /// it was submitted by Rails id and not fetched yet.
    pub async fn load_application(&self, id: Uuid) -> Result<Option<Application>, StoreError> {
        let stored = sqlx::query_scalar!(
            r#"SELECT application AS "application: Json<StoredApplication>" FROM applications WHERE id = $1"#,
            id,
        )
        .fetch_one(&self.pool)
        .await?;
        let Some(Json(stored)) = stored else {
            return Ok(None);
        };
        let secrets = sqlx::query!(
            "SELECT position, key_id, ssn_sealed, dob_sealed, seal_version FROM applicant_secrets
             WHERE application_id = $1 ORDER BY position",
            id,
        )
        .fetch_all(&self.pool)
        .await?;
        if secrets.len() != stored.applicants.len() {
            return Err(StoreError::Corrupt(format!(
                "application {id} has {} applicants but {} sealed records",
                stored.applicants.len(),
                secrets.len()
            )));
        }
        let mut applicants = Vec::with_capacity(secrets.len());
        for (a, row) in stored.applicants.into_iter().zip(secrets) {
            let key_id = row.key_id;
            let open = |bytes: Vec<u8>, field: &str| -> Result<String, StoreError> {
                let plain = self.vault.open(
                    &Sealed {
                        key_id: key_id.clone(),
                        bytes,
                    },
                    &context::applicant(field, id, row.position, row.seal_version),
                )?;
                String::from_utf8(plain)
                    .map_err(|_| StoreError::Corrupt(format!("{field} of {id} is not text")))
            };
            let ssn = Ssn::parse(&open(row.ssn_sealed, "ssn")?)
                .map_err(|_| StoreError::Corrupt(format!("stored SSN of {id} is invalid")))?;
            let dob: NaiveDate = open(row.dob_sealed, "dob")?.parse().map_err(|_| {
                StoreError::Corrupt(format!("stored date of birth of {id} is invalid"))
            })?;
            applicants.push(Applicant {
                first_name: a.first_name,
                middle_name: a.middle_name,
                last_name: a.last_name,
                suffix: a.suffix,
                ssn,
                date_of_birth: dob,
                email: a.email,
                stated_annual_income_cents: a.stated_annual_income_cents,
            });
        }
        Ok(Some(Application {
            applicants,
            property: stored.property,
            contractor: stored.contractor,
            measures: stored.measures,
            financing: stored.financing,
        }))
    }

    /// The Rails id of an application submitted by reference.
    pub async fn rails_id(&self, id: Uuid) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar!(
            "SELECT rails_application_id FROM applications WHERE id = $1",
            id,
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// Application ids whose applicants include this SSN (via the keyed hash).
    pub async fn find_by_ssn(&self, ssn: &Ssn) -> Result<Vec<Uuid>, StoreError> {
        Ok(sqlx::query_scalar!(
            "SELECT DISTINCT application_id FROM applicant_secrets WHERE ssn_lookup = $1",
            self.vault.lookup_hash("ssn", ssn.expose().as_bytes()),
        )
        .fetch_all(&self.pool)
        .await?)
    }
}

impl Store {
    /// How many applications have an idempotency key starting with `key_prefix`
    /// (`dossier bench`: how many of its submissions were persisted).
    pub async fn count_applications_with_key_prefix(
        &self,
        key_prefix: &str,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar!(
            r#"SELECT count(*) AS "count!" FROM applications WHERE starts_with(idempotency_key, $1)"#,
            key_prefix,
        )
        .fetch_one(&self.pool)
        .await?)
    }
}

fn strip_pii(app: &Application) -> StoredApplication {
    StoredApplication {
        applicants: app
            .applicants
            .iter()
            .map(|a| StoredApplicant {
                first_name: a.first_name.clone(),
                middle_name: a.middle_name.clone(),
                last_name: a.last_name.clone(),
                suffix: a.suffix.clone(),
                ssn_masked: a.ssn.masked(),
                email: a.email.clone(),
                stated_annual_income_cents: a.stated_annual_income_cents,
            })
            .collect(),
        property: app.property.clone(),
        contractor: app.contractor.clone(),
        measures: app.measures.clone(),
        financing: app.financing,
    }
}

pub(crate) fn parse_status(s: &str) -> Result<ApplicationStatus, StoreError> {
    ApplicationStatus::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown status {s:?}")))
}
