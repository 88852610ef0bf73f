//! Evaluation runs, check results, decisions and the reports built from them.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use super::applications::parse_status;
use super::{REPORT_CHANNEL, Store, StoreError};
pub use crate::replay::StoredRun;
use dossier_core::domain::{
    ApplicationStatus, CheckKind, CheckResult, DataSource, Decision, DecisionRecord, Outcome,
    Report, ReportSummary, ReviewRecord, Upstream,
};
use dossier_core::plan::{Mode, VendorCost};

/// Filters and position of a report listing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListFilter {
    pub status: Option<ApplicationStatus>,
    pub decision: Option<Decision>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    /// Continue after this (created_at, id), exclusive: keyset pagination, stable under
    /// concurrent inserts.
    pub after: Option<(DateTime<Utc>, Uuid)>,
    /// Only applications this caller submitted (a caller that may read only its own).
    pub submitted_by: Option<String>,
    pub limit: i64,
}

/// A finished evaluation run, as [`Store::record_decision`] records it.
pub struct FinishedRun<'a> {
    pub run_id: Uuid,
    pub application_id: Uuid,
    pub decision: &'a DecisionRecord,
    /// Every check had its answers (none cut off by the deadline).
    pub complete: bool,
    /// Record it only if the application has no decision yet (the first run).
    pub once: bool,
    pub inputs: &'a serde_json::Value,
    /// The run's W3C `traceparent`, kept with the delivery job so it continues the trace.
    pub trace_parent: Option<&'a str>,
}

impl Store {
    /// Opens a new evaluation run and marks the application running.
    pub async fn start_run(&self, application_id: Uuid, reason: &str) -> Result<Uuid, StoreError> {
        let run_id = Uuid::now_v7();
        // One statement (one round trip), atomic.
        sqlx::query!(
            "WITH run AS (
                 INSERT INTO evaluation_runs (id, application_id, reason) VALUES ($1, $2, $3) RETURNING application_id
             )
             UPDATE applications SET status = 'running', updated_at = now()
             WHERE id = (SELECT application_id FROM run) AND status = 'pending'",
            run_id,
            application_id,
            reason,
        )
        .execute(&self.pool)
        .await?;
        Ok(run_id)
    }

    /// Records finished checks and announces them, in one statement (one round trip,
    /// atomic): a group of checks fed by the same upstream answers lands together.
    pub async fn record_checks(
        &self,
        run_id: Uuid,
        application_id: Uuid,
        results: &[CheckResult],
    ) -> Result<(), StoreError> {
        if results.is_empty() {
            return Ok(());
        }
        let rows: Vec<serde_json::Value> = results
            .iter()
            .map(|r| {
                serde_json::json!({
                    "kind": r.kind.as_str(),
                    "subject": r.subject,
                    "outcome": r.outcome.as_str(),
                    "reason_codes": r.reason_codes,
                    "message": r.message,
                    "upstream": r.source.as_ref().map(|s| s.upstream),
                    "fetched_at": r.source.as_ref().map(|s| s.fetched_at),
                    "cached": r.source.as_ref().is_some_and(|s| s.cached),
                    "stale": r.source.as_ref().is_some_and(|s| s.stale),
                    "evidence": r.evidence,
                    "finished_at": r.finished_at,
                    "cache": r.source.as_ref().map(|s| s.cache.as_str()),
                    "passed_over": r.source.as_ref().filter(|s| !s.passed_over.is_empty()).map(|s| &s.passed_over),
                })
            })
            .collect();
        sqlx::query!(
            "WITH inserted AS (
                 INSERT INTO check_results (run_id, application_id, kind, subject, outcome, reason_codes, message,
                                            upstream, fetched_at, cached, stale, evidence, finished_at, cache, passed_over)
                 SELECT $1, $2, r.kind, r.subject, r.outcome,
                        ARRAY(SELECT jsonb_array_elements_text(r.reason_codes)), r.message,
                        r.upstream, r.fetched_at, r.cached, r.stale, coalesce(r.evidence, '{}'), r.finished_at, r.cache,
                        r.passed_over
                 FROM jsonb_to_recordset($3) AS r(kind text, subject text, outcome text, reason_codes jsonb,
                      message text, upstream text, fetched_at timestamptz, cached bool, stale bool,
                      evidence jsonb, finished_at timestamptz, cache text, passed_over jsonb)
                 ON CONFLICT (run_id, kind, subject) DO NOTHING
                 RETURNING 1
             )
             SELECT pg_notify($4, $5) FROM (SELECT count(*) FROM inserted) AS c",
            run_id,
            application_id,
            // `as _`: the macro checks a jsonb parameter against serde_json::Value only.
            Json(rows) as _,
            REPORT_CHANNEL,
            application_id.to_string(),
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The status of an application, if it exists.
    pub async fn application_status(
        &self,
        application_id: Uuid,
    ) -> Result<Option<ApplicationStatus>, StoreError> {
        let status = sqlx::query_scalar!(
            "SELECT status FROM applications WHERE id = $1",
            application_id
        )
        .fetch_optional(&self.pool)
        .await?;
        status.as_deref().map(parse_status).transpose()
    }

    /// Records the decision of a run and marks the application decided, atomically and
    /// in one round trip. A second decision for the same run is ignored, and with `once`
    /// a decision for an application that already has one (a run that lost its lease
    /// and was taken over) is ignored too: an application is decided exactly once. The
    /// row lock on the application queues concurrent deciders; the second one re-reads
    /// the row after the first commits and sees it decided. Returns, when this decision
    /// was recorded, the parts of the report the run does not hold (so the caller need
    /// not read them back: one round trip instead of two); None when it was not.
    pub async fn record_decision(
        &self,
        run: FinishedRun<'_>,
    ) -> Result<Option<ReportHeader>, StoreError> {
        let FinishedRun {
            run_id,
            application_id,
            decision: d,
            complete,
            once,
            inputs,
            trace_parent,
        } = run;
        let (public_inputs, sealed_inputs) = crate::run_inputs::seal(&self.vault, run_id, inputs);
        let r = sqlx::query!(
            r#"WITH app AS (
                 SELECT id, status, idempotency_key, rails_application_id, created_at
                 FROM applications WHERE id = $2 FOR UPDATE
             ), decided AS (
                 INSERT INTO decisions (run_id, application_id, decision, reason_codes, policy_version, policy_hash, figures, decided_at,
                                        evaluation_mode, vendor_cost_cents, vendor_cost_avoided_cents)
                 SELECT $1, app.id, $3, $4, $5, $6, $7, $8, $18, $19, $20 FROM app
                 WHERE NOT ($10 AND app.status = 'decided')
                 ON CONFLICT (run_id) DO NOTHING
                 RETURNING run_id
             ), run AS (
                 UPDATE evaluation_runs SET finished_at = $8, complete = $9, inputs = $12,
                        inputs_sealed = $15, inputs_key_id = $16
                 WHERE id IN (SELECT run_id FROM decided)
             ), job AS (
                 -- A queued evaluation job of a decided application has nothing left to do.
                 UPDATE jobs SET state = 'done', finished_at = now()
                 WHERE application_id = $2 AND kind = 'evaluate' AND state = 'queued'
                   AND EXISTS (SELECT 1 FROM decided)
             ), application AS (
                 UPDATE applications SET status = 'decided', decided_at = $8, updated_at = now()
                 WHERE id = $2 AND EXISTS (SELECT 1 FROM decided)
             ), outbox AS (
                 -- The decision's delivery to Rails, in the same transaction (outbox).
                 INSERT INTO jobs (kind, application_id, run_id, max_attempts, trace_parent)
                 SELECT 'deliver', $2, run_id, $14, $17 FROM decided
             )
             SELECT EXISTS (SELECT 1 FROM decided)
                    AND pg_notify($11, $2::text) IS NOT NULL
                    AND pg_notify($13, '') IS NOT NULL AS "recorded!",
                    app.idempotency_key AS "idempotency_key?",
                    app.rails_application_id AS "rails_application_id?",
                    app.created_at AS "created_at?",
                    (SELECT count(*) FROM evaluation_runs r WHERE r.application_id = $2) AS "run_count!",
                    v.outcome AS "outcome?", v.note AS "note?", v.reviewer AS "reviewer?",
                    v.reviewed_at AS "reviewed_at?"
             FROM (SELECT 1) AS one
                  LEFT JOIN app ON true
                  LEFT JOIN reviews v ON v.application_id = $2"#,
            run_id,
            application_id,
            d.decision.as_str(),
            &d.reason_codes,
            &d.policy_version,
            &d.policy_hash,
            // `as _`: the macro checks a jsonb parameter against serde_json::Value only.
            Json(&d.figures) as _,
            d.decided_at,
            complete,
            once,
            REPORT_CHANNEL,
            Json(&public_inputs) as _,
            super::JOBS_CHANNEL,
            super::jobs::DELIVERY_ATTEMPTS,
            sealed_inputs.as_ref().map(|s| s.bytes.as_slice()),
            sealed_inputs.as_ref().map(|s| s.key_id.as_str()),
            trace_parent,
            d.vendor_cost.map(|c| c.mode.as_str()),
            d.vendor_cost.map(|c| c.spent_cents),
            d.vendor_cost.map(|c| c.avoided_cents),
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(match (r.recorded, r.idempotency_key, r.created_at) {
            (true, Some(idempotency_key), Some(created_at)) => Some(ReportHeader {
                idempotency_key,
                rails_application_id: r.rails_application_id,
                created_at,
                run_count: r.run_count as i32,
                review: review_record(r.outcome, r.note, r.reviewer, r.reviewed_at),
            }),
            _ => None,
        })
    }

    /// The report of an application: its latest run's checks and decision.
    pub async fn report(&self, application_id: Uuid) -> Result<Option<Report>, StoreError> {
        self.report_visible_to(application_id, None).await
    }

    /// The same, as a caller sees it: `submitted_by` Some(caller) for a caller that may
    /// read only its own applications, to which any other is None (not found).
    pub async fn report_visible_to(
        &self,
        application_id: Uuid,
        submitted_by: Option<&str>,
    ) -> Result<Option<Report>, StoreError> {
        // One snapshot for every read: a report read while a run is being decided must
        // not pair the decision with only some of its checks.
        let mut tx = crate::transaction::begin(
            &self.pool,
            Some("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"),
        )
        .await?;
        let Some(app) = sqlx::query!(
            "SELECT id, idempotency_key, rails_application_id, status, created_at FROM applications
             WHERE id = $1 AND ($2::text IS NULL OR submitted_by = $2)",
            application_id,
            submitted_by,
        )
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(None);
        };
        let run = sqlx::query!(
            "SELECT r.id, r.complete FROM evaluation_runs r
             WHERE r.application_id = $1
             -- The decided run wins over a later run that lost the race to decide.
             ORDER BY EXISTS (SELECT 1 FROM decisions d WHERE d.run_id = r.id) DESC, r.started_at DESC, r.id DESC
             LIMIT 1",
            application_id,
        )
        .fetch_optional(&mut *tx)
        .await?;
        let (checks, decision, complete) = match run {
            None => (Vec::new(), None, false),
            Some(run) => {
                let run_id = run.id;
                let checks = run_checks_on(&mut tx, run_id).await?;
                let decision = sqlx::query_as!(
                    DecisionRow,
                    "SELECT decision, reason_codes, policy_version, policy_hash, figures, decided_at,
                            evaluation_mode, vendor_cost_cents, vendor_cost_avoided_cents
                     FROM decisions WHERE run_id = $1",
                    run_id,
                )
                .fetch_optional(&mut *tx)
                .await?
                .map(DecisionRow::into_record)
                .transpose()?;
                (checks, decision, run.complete.unwrap_or(false))
            }
        };
        let review = sqlx::query!(
            "SELECT outcome, note, reviewer, reviewed_at FROM reviews WHERE application_id = $1",
            application_id,
        )
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| ReviewRecord {
            approve: row.outcome == "approve",
            note: row.note,
            reviewer: row.reviewer,
            reviewed_at: row.reviewed_at,
        });
        let run_count = sqlx::query_scalar!(
            r#"SELECT count(*) AS "count!" FROM evaluation_runs WHERE application_id = $1"#,
            application_id,
        )
        .fetch_one(&mut *tx)
        .await?;
        Ok(Some(Report {
            review,
            run_count: run_count as i32,
            application_id,
            idempotency_key: app.idempotency_key,
            rails_application_id: app.rails_application_id,
            status: parse_status(&app.status)?,
            created_at: app.created_at,
            checks,
            decision,
            complete,
        }))
    }

    /// Check results of one run in a stable order (kind, then subject).
    pub async fn run_checks(&self, run_id: Uuid) -> Result<Vec<CheckResult>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        run_checks_on(&mut conn, run_id).await
    }
}

async fn run_checks_on(
    conn: &mut sqlx::PgConnection,
    run_id: Uuid,
) -> Result<Vec<CheckResult>, StoreError> {
    {
        let rows = sqlx::query_as!(
            CheckRow,
            "SELECT kind, subject, outcome, reason_codes, message, upstream, fetched_at, cached, stale, evidence, finished_at, cache, passed_over
             FROM check_results WHERE run_id = $1 ORDER BY finished_at, kind, subject",
            run_id,
        )
        .fetch_all(&mut *conn)
        .await?;
        let mut checks = rows
            .into_iter()
            .map(CheckRow::into_result)
            .collect::<Result<Vec<_>, _>>()?;
        checks.sort_by(|a, b| (a.kind, &a.subject).cmp(&(b.kind, &b.subject)));
        Ok(checks)
    }
}

impl Store {
    pub async fn list_reports(&self, f: &ListFilter) -> Result<Vec<ReportSummary>, StoreError> {
        // d.* come through a LEFT JOIN: "?" (nullable) whatever the inference says.
        let rows = sqlx::query!(
            r#"SELECT a.id, a.idempotency_key, a.status, a.created_at, a.decided_at,
                    d.decision AS "decision?", d.reason_codes AS "reason_codes?"
             FROM applications a
             LEFT JOIN LATERAL (
                 SELECT decision, reason_codes FROM decisions
                 WHERE application_id = a.id ORDER BY decided_at DESC LIMIT 1
             ) d ON true
             WHERE ($1::text IS NULL OR a.status = $1)
               AND ($2::text IS NULL OR d.decision = $2)
               AND ($3::timestamptz IS NULL OR a.created_at >= $3)
               AND ($4::timestamptz IS NULL OR a.created_at < $4)
               AND ($5::timestamptz IS NULL OR (a.created_at, a.id) < ($5, $6::uuid))
               AND ($8::text IS NULL OR a.submitted_by = $8)
             ORDER BY a.created_at DESC, a.id DESC
             LIMIT $7"#,
            f.status.map(ApplicationStatus::as_str),
            f.decision.map(Decision::as_str),
            f.created_after,
            f.created_before,
            f.after.map(|a| a.0),
            f.after.map(|a| a.1),
            f.limit,
            f.submitted_by.as_deref(),
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(ReportSummary {
                    application_id: row.id,
                    idempotency_key: row.idempotency_key,
                    status: parse_status(&row.status)?,
                    decision: row.decision.as_deref().map(parse_decision).transpose()?,
                    reason_codes: row.reason_codes.unwrap_or_default(),
                    created_at: row.created_at,
                    decided_at: row.decided_at,
                })
            })
            .collect()
    }
}

fn parse_decision(s: &str) -> Result<Decision, StoreError> {
    Decision::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown decision {s:?}")))
}

/// A row of `check_results`.
struct CheckRow {
    kind: String,
    subject: String,
    outcome: String,
    reason_codes: Vec<String>,
    message: String,
    upstream: Option<String>,
    fetched_at: Option<DateTime<Utc>>,
    cached: bool,
    stale: bool,
    evidence: serde_json::Value,
    finished_at: DateTime<Utc>,
    cache: Option<String>,
    passed_over: Option<serde_json::Value>,
}

impl CheckRow {
    fn into_result(self) -> Result<CheckResult, StoreError> {
        let CheckRow { kind, outcome, .. } = &self;
        Ok(CheckResult {
            kind: CheckKind::parse(kind)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown check kind {kind:?}")))?,
            outcome: Outcome::parse(outcome)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown outcome {outcome:?}")))?,
            subject: self.subject,
            reason_codes: self.reason_codes,
            message: self.message,
            source: match (self.upstream, self.fetched_at) {
                (Some(upstream), Some(fetched_at)) => Some(DataSource {
                    upstream: Upstream::parse(&upstream).ok_or_else(|| {
                        StoreError::Corrupt(format!("unknown upstream {upstream:?}"))
                    })?,
                    fetched_at,
                    cached: self.cached,
                    stale: self.stale,
                    cache: self
                        .cache
                        .and_then(|c| dossier_core::domain::CacheOutcome::parse(&c))
                        .unwrap_or_default(),
                    passed_over: match self.passed_over {
                        Some(v) => serde_json::from_value(v).map_err(|e| {
                            StoreError::Corrupt(format!("passed_over of a check: {e}"))
                        })?,
                        None => Vec::new(),
                    },
                }),
                _ => None,
            },
            evidence: self.evidence,
            finished_at: self.finished_at,
        })
    }
}

/// A row of `decisions`, as a report shows it.
pub(crate) struct DecisionRow {
    pub(crate) decision: String,
    pub(crate) reason_codes: Vec<String>,
    pub(crate) policy_version: String,
    pub(crate) policy_hash: String,
    pub(crate) figures: serde_json::Value,
    pub(crate) decided_at: DateTime<Utc>,
    pub(crate) evaluation_mode: Option<String>,
    pub(crate) vendor_cost_cents: Option<i64>,
    pub(crate) vendor_cost_avoided_cents: Option<i64>,
}

impl DecisionRow {
    pub(crate) fn into_record(self) -> Result<DecisionRecord, StoreError> {
        let vendor_cost = vendor_cost(
            self.evaluation_mode,
            self.vendor_cost_cents,
            self.vendor_cost_avoided_cents,
        )?;
        Ok(DecisionRecord {
            decision: parse_decision(&self.decision)?,
            reason_codes: self.reason_codes,
            policy_version: self.policy_version,
            policy_hash: self.policy_hash,
            figures: self.figures,
            decided_at: self.decided_at,
            vendor_cost,
        })
    }
}

/// A decision's vendor spending from its columns (all NULL before it was kept).
pub(crate) fn vendor_cost(
    mode: Option<String>,
    spent_cents: Option<i64>,
    avoided_cents: Option<i64>,
) -> Result<Option<VendorCost>, StoreError> {
    let (Some(mode), Some(spent_cents)) = (mode, spent_cents) else {
        return Ok(None);
    };
    Ok(Some(VendorCost {
        mode: Mode::parse(&mode)
            .ok_or_else(|| StoreError::Corrupt(format!("evaluation mode {mode:?}")))?,
        spent_cents,
        avoided_cents: avoided_cents.unwrap_or(0),
    }))
}

/// What happened to a review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reviewed {
    Recorded,
    NotFound,
    /// The current decision is not REFER (or there is none yet); carries what it is.
    NotReferred(Option<Decision>),
    AlreadyReviewed,
}

impl Store {
    /// Records an underwriter's review of the current REFER decision, once.
    pub async fn record_review(
        &self,
        application_id: Uuid,
        approve: bool,
        note: &str,
        reviewer: &str,
        trace_parent: Option<&str>,
    ) -> Result<Reviewed, StoreError> {
        let mut tx = crate::transaction::begin(&self.pool, None).await?;
        let exists = sqlx::query_scalar!(
            "SELECT status FROM applications WHERE id = $1 FOR UPDATE",
            application_id,
        )
        .fetch_optional(&mut *tx)
        .await?;
        if exists.is_none() {
            return Ok(Reviewed::NotFound);
        }
        let current = sqlx::query!(
            "SELECT d.run_id, d.decision FROM decisions d WHERE d.application_id = $1 ORDER BY d.decided_at DESC LIMIT 1",
            application_id,
        )
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| (r.run_id, r.decision));
        let Some((run_id, decision)) = current else {
            return Ok(Reviewed::NotReferred(None));
        };
        if decision != "refer" {
            return Ok(Reviewed::NotReferred(Some(parse_decision(&decision)?)));
        }
        let inserted = sqlx::query!(
            "INSERT INTO reviews (application_id, run_id, outcome, note, reviewer) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (application_id) DO NOTHING",
            application_id,
            run_id,
            if approve { "approve" } else { "decline" },
            note,
            reviewer,
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(Reviewed::AlreadyReviewed);
        }
        // The review's delivery to Rails, in the same transaction (outbox).
        sqlx::query!(
            "INSERT INTO jobs (kind, application_id, max_attempts, trace_parent) VALUES ('deliver_review', $1, $2, $3)",
            application_id,
            super::jobs::DELIVERY_ATTEMPTS,
            trace_parent,
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "SELECT pg_notify($1, $2), pg_notify($3, '')",
            REPORT_CHANNEL,
            application_id.to_string(),
            super::JOBS_CHANNEL,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Reviewed::Recorded)
    }
}

/// The parts of a report that are not its latest run's checks and decision.
#[derive(Debug, Clone)]
pub struct ReportHeader {
    pub idempotency_key: String,
    pub rails_application_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub review: Option<ReviewRecord>,
    pub run_count: i32,
}

/// A review from its LEFT JOINed columns: all NULL (no review) or none.
fn review_record(
    outcome: Option<String>,
    note: Option<String>,
    reviewer: Option<String>,
    reviewed_at: Option<DateTime<Utc>>,
) -> Option<ReviewRecord> {
    match (outcome, note, reviewer, reviewed_at) {
        (Some(o), Some(note), Some(reviewer), Some(reviewed_at)) => Some(ReviewRecord {
            approve: o == "approve",
            note,
            reviewer,
            reviewed_at,
        }),
        _ => None,
    }
}
