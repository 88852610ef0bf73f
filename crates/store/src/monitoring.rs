//! Ongoing sanctions monitoring (`sanctions_monitoring_runs`, `sanctions_alerts`): who
//! to screen again when a new list version is loaded, the alerts it raises, and their
//! delivery to Rails through the outbox.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreError};

/// One name to screen again: an applicant's or the contractor's, as the approval
/// screened it, with the list entries it was already compared with.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitoredName {
    pub application_id: Uuid,
    /// The property's state (per-state policy thresholds).
    pub state: String,
    /// "applicant N" or "contractor".
    pub subject: String,
    /// True for the contractor (screened as a company).
    pub company: bool,
    pub name: String,
    /// Entries the approval's screen already showed (an underwriter saw them).
    pub known_entries: Vec<i64>,
}

/// An alert to raise.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAlert {
    pub application_id: Uuid,
    pub subject: String,
    pub entry_id: i64,
    pub list_name: String,
    pub matched_name: String,
    pub program: String,
    pub score: f64,
    /// "match" or "near_match".
    pub severity: &'static str,
}

/// A raised alert, as delivered to Rails.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertNotice {
    pub id: Uuid,
    pub application_id: Uuid,
    pub submission_key: String,
    pub rails_application_id: Option<String>,
    pub list_id: i64,
    pub subject: String,
    pub severity: String,
    pub entry_id: i64,
    pub list_name: String,
    pub program: String,
    pub score: f64,
    pub raised_at: DateTime<Utc>,
}

impl Store {
    /// Claims the screening of list version `list_id` for job `job_id`: true when no
    /// job screened it yet, or when this same job claimed it before and did not finish
    /// (its worker died; alerts are unique, so doing it again raises nothing twice).
    /// Another job for the version gets false and does nothing.
    pub async fn claim_monitoring_run(
        &self,
        list_id: i64,
        job_id: i64,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar!(
            "INSERT INTO sanctions_monitoring_runs (list_id, job_id) VALUES ($1, $2)
             ON CONFLICT (list_id) DO UPDATE SET started_at = now()
                 WHERE sanctions_monitoring_runs.job_id = $2
                   AND sanctions_monitoring_runs.finished_at IS NULL
             RETURNING list_id",
            list_id,
            job_id,
        )
        .fetch_optional(&self.pool)
        .await?
        .is_some())
    }

    /// Every name of the applications whose decision that stands is an approval and
    /// that are not cleared for funding, or were cleared less than `funded_days` ago
    /// (a CLEAR funding check, or a HOLD an underwriter cleared, is when Dossier last
    /// sees an application before the lender funds it).
    pub async fn monitored_names(
        &self,
        funded_days: i32,
    ) -> Result<Vec<MonitoredName>, StoreError> {
        let rows = sqlx::query!(
            r#"WITH current AS (
                   SELECT DISTINCT ON (d.application_id) d.application_id, d.run_id, d.decision
                   FROM decisions d
                   ORDER BY d.application_id, d.decided_at DESC, d.run_id DESC
               ), approved AS (
                   SELECT c.application_id, c.run_id FROM current c
                   LEFT JOIN reviews r ON r.application_id = c.application_id AND r.run_id = c.run_id
                   WHERE c.decision = 'approved' OR (c.decision = 'refer' AND r.outcome = 'approve')
               ), cleared AS (
                   SELECT application_id, min(coalesce(resolved_at, checked_at)) AS cleared_at
                   FROM funding_checks
                   WHERE verdict = 'clear' OR resolution = 'clear'
                   GROUP BY application_id
               )
               SELECT p.application_id AS "application_id!",
                      coalesce(a.application -> 'property' -> 'address' ->> 'state', '') AS "state!",
                      cr.subject AS "subject!",
                      cr.kind = 'company_sanctions' AS "company!",
                      cr.evidence ->> 'screened_name' AS "name!",
                      ARRAY(SELECT (c ->> 'entry_id')::bigint
                            FROM jsonb_array_elements(coalesce(cr.evidence -> 'candidates', '[]'::jsonb)) AS c)
                          AS "known_entries!"
               FROM approved p
               JOIN applications a ON a.id = p.application_id
               JOIN check_results cr ON cr.run_id = p.run_id
                    AND cr.kind IN ('person_sanctions', 'company_sanctions')
               LEFT JOIN cleared f ON f.application_id = p.application_id
               WHERE cr.evidence ? 'screened_name'
                 AND (f.cleared_at IS NULL OR f.cleared_at > now() - make_interval(days => $1))
               ORDER BY p.application_id, cr.subject"#,
            funded_days,
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| MonitoredName {
                application_id: r.application_id,
                state: r.state,
                subject: r.subject,
                company: r.company,
                name: r.name,
                known_entries: r.known_entries,
            })
            .collect())
    }

    /// Raises the alerts not raised before (an entry is alerted once per subject) and
    /// queues each new one's delivery to Rails, in one statement. Returns the new ids.
    pub async fn raise_alerts(
        &self,
        list_id: i64,
        alerts: &[NewAlert],
    ) -> Result<Vec<Uuid>, StoreError> {
        if alerts.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = alerts.iter().map(|_| Uuid::now_v7()).collect();
        let applications: Vec<Uuid> = alerts.iter().map(|a| a.application_id).collect();
        let subjects: Vec<String> = alerts.iter().map(|a| a.subject.clone()).collect();
        let entries: Vec<i64> = alerts.iter().map(|a| a.entry_id).collect();
        let list_names: Vec<String> = alerts.iter().map(|a| a.list_name.clone()).collect();
        let matched: Vec<String> = alerts.iter().map(|a| a.matched_name.clone()).collect();
        let programs: Vec<String> = alerts.iter().map(|a| a.program.clone()).collect();
        let scores: Vec<f64> = alerts.iter().map(|a| a.score).collect();
        let severities: Vec<String> = alerts.iter().map(|a| a.severity.to_owned()).collect();
        Ok(sqlx::query_scalar!(
            r#"WITH raised AS (
                   INSERT INTO sanctions_alerts (id, application_id, list_id, subject, entry_id, list_name, matched_name, program, score, severity)
                   SELECT id, application_id, $2, subject, entry_id, list_name, matched_name, program, score, severity
                   FROM unnest($1::uuid[], $3::uuid[], $4::text[], $5::bigint[], $6::text[], $7::text[], $8::text[], $9::float8[], $10::text[])
                        AS t(id, application_id, subject, entry_id, list_name, matched_name, program, score, severity)
                   ON CONFLICT ON CONSTRAINT sanctions_alerts_once DO NOTHING
                   RETURNING id, application_id
               )
               INSERT INTO jobs (kind, application_id, sanctions_alert_id, max_attempts)
               SELECT 'deliver_sanctions_alert', application_id, id, $11 FROM raised
               RETURNING sanctions_alert_id AS "id!""#,
            &ids,
            list_id,
            &applications,
            &subjects,
            &entries,
            &list_names,
            &matched,
            &programs,
            &scores,
            &severities,
            super::jobs::DELIVERY_ATTEMPTS,
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records that list version `list_id` was screened, with its figures.
    pub async fn finish_monitoring_run(
        &self,
        list_id: i64,
        applications: i32,
        names: i32,
        alerts: i32,
    ) -> Result<(), StoreError> {
        sqlx::query!(
            "UPDATE sanctions_monitoring_runs SET finished_at = now(), applications = $2, names = $3, alerts = $4
             WHERE list_id = $1",
            list_id,
            applications,
            names,
            alerts,
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// What a `deliver_sanctions_alert` job sends; None if the alert is gone.
    pub async fn sanctions_alert_delivery(
        &self,
        id: Uuid,
    ) -> Result<Option<AlertNotice>, StoreError> {
        let row = sqlx::query!(
            "SELECT s.id, s.application_id, s.list_id, s.subject, s.severity, s.entry_id, s.list_name, s.program, s.score, s.raised_at,
                    a.idempotency_key, a.rails_application_id
             FROM sanctions_alerts s JOIN applications a ON a.id = s.application_id
             WHERE s.id = $1",
            id,
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| AlertNotice {
            id: r.id,
            application_id: r.application_id,
            submission_key: r.idempotency_key,
            rails_application_id: r.rails_application_id,
            list_id: r.list_id,
            subject: r.subject,
            severity: r.severity,
            entry_id: r.entry_id,
            list_name: r.list_name,
            program: r.program,
            score: r.score,
            raised_at: r.raised_at,
        }))
    }
}
