//! Orchestration: gather upstream answers for an application, run every check as soon
//! as its inputs arrive, record each result, then decide. The judging itself is pure
//! (`checks/`, `policy/`); this module only moves data between them, the upstreams and
//! the store.

pub mod funding;
mod gather;
pub mod monitoring;
pub mod rails_conversion;
mod waterfall;

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use dossier_core::domain::{Application, CheckKind, CheckResult, DecisionRecord, Outcome, Report};
use dossier_core::judge;
use dossier_core::policy::{self, LoadedPolicy};
use dossier_core::reason::ReasonCode;
use dossier_sanctions::Subject;
use dossier_store::reports::FinishedRun;
use dossier_store::{Store, StoreError};
use dossier_upstream::{CallContext, Upstream, UpstreamError, Upstreams};

#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("application {0} does not exist")]
    NotFound(Uuid),
    #[error("fetching the application from Rails failed: {0}")]
    Rails(UpstreamError),
    #[error("Rails has no application {0}")]
    RailsNotFound(String),
    #[error("the application Rails returned is not valid: {}", join_violations(.0))]
    RailsInvalid(Vec<dossier_core::intake::Violation>),
    #[error("application {0} has no decision yet; refresh it once it is decided")]
    NotDecided(Uuid),
    #[error("{0}")]
    Replay(String),
    #[error(
        "application {id} is {state}: only an approved application can be prepared for funding"
    )]
    NotApproved { id: Uuid, state: String },
    /// A failure of Dossier's own (logged where it happened); the caller may retry.
    #[error("{0}")]
    Internal(String),
}

fn join_violations(v: &[dossier_core::intake::Violation]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Everything needed to underwrite: the store, the upstream clients and the policy.
#[derive(Debug, Clone)]
pub struct Underwriter {
    pub store: Store,
    pub upstreams: Upstreams,
    pub policy: Arc<LoadedPolicy>,
    /// Who adverse-action notices name.
    pub notices: Arc<dossier_core::adverse_action::NoticeSettings>,
    /// The OFAC SDN list, screened locally.
    pub sanctions: Arc<dossier_upstream::sanctions::SanctionsList>,
    /// PrepareFunding calls in flight in this process, by application: a second call
    /// joins the first.
    pub funding_flights: Arc<dossier_upstream::Coalescer<funding::FundingOutcome>>,
    /// Sanctions monitoring also re-screens applications cleared for funding up to this
    /// many days ago (0: only those not cleared yet).
    pub monitor_funded_days: i32,
}

/// Which evaluation this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunReason {
    /// The first evaluation: decided at most once, whoever runs it.
    Initial,
    /// A re-run with fresh data on request; its decision becomes the current one.
    Refresh,
}

impl RunReason {
    fn as_str(self) -> &'static str {
        match self {
            RunReason::Initial => "initial",
            RunReason::Refresh => "refresh",
        }
    }
}

impl Underwriter {
    /// Fetches an application by Rails id and converts it.
    pub async fn fetch_rails(
        &self,
        rails_id: &str,
        ctx: &CallContext,
    ) -> Result<Application, EvaluateError> {
        let fetched = self
            .upstreams
            .rails
            .application(rails_id, ctx)
            .await
            .map_err(EvaluateError::Rails)?
            .ok_or_else(|| EvaluateError::RailsNotFound(rails_id.to_owned()))?;
        rails_conversion::to_domain(&fetched.value, &self.policy.policy.program)
            .map_err(EvaluateError::RailsInvalid)
    }

    /// Runs every check for a stored application and records results and decision.
    /// Checks not finished by `deadline` are recorded UNAVAILABLE and the run is
    /// marked incomplete. An application already decided is returned as it is.
    pub async fn evaluate(
        &self,
        application_id: Uuid,
        reason: RunReason,
        deadline: Option<Instant>,
    ) -> Result<Report, EvaluateError> {
        self.evaluate_known(application_id, None, reason, deadline)
            .await
    }

    /// Re-runs every check of a decided application with fresh data; the earlier run
    /// and its decision stay in history.
    pub async fn refresh(
        &self,
        application_id: Uuid,
        deadline: Option<Instant>,
    ) -> Result<Report, EvaluateError> {
        match self.store.application_status(application_id).await? {
            None => Err(EvaluateError::NotFound(application_id)),
            Some(dossier_core::domain::ApplicationStatus::Decided) => {
                self.run(application_id, None, RunReason::Refresh, deadline)
                    .await
            }
            Some(_) => Err(EvaluateError::NotDecided(application_id)),
        }
    }

    /// As [`Underwriter::evaluate`], for an application this process has just accepted
    /// and still holds: it is neither looked up nor read back and unsealed.
    pub async fn evaluate_known(
        &self,
        application_id: Uuid,
        known: Option<Application>,
        reason: RunReason,
        deadline: Option<Instant>,
    ) -> Result<Report, EvaluateError> {
        if known.is_some() {
            return self.run(application_id, known, reason, deadline).await;
        }
        let status = self
            .store
            .application_status(application_id)
            .await?
            .ok_or(EvaluateError::NotFound(application_id))?;
        if reason == RunReason::Initial
            && status == dossier_core::domain::ApplicationStatus::Decided
        {
            return self
                .store
                .report(application_id)
                .await?
                .ok_or(EvaluateError::NotFound(application_id));
        }
        self.run(application_id, None, reason, deadline).await
    }

    #[tracing::instrument(
        name = "evaluation",
        skip_all,
        fields(application_id = %application_id, reason = reason.as_str())
    )]
    async fn run(
        &self,
        application_id: Uuid,
        known: Option<Application>,
        reason: RunReason,
        deadline: Option<Instant>,
    ) -> Result<Report, EvaluateError> {
        let ctx = CallContext {
            application_id: Some(application_id),
            deadline,
            // A refresh exists to get new data: skip the caches (not the rate limits).
            force_refresh: reason == RunReason::Refresh,
        };
        let stored = match known {
            Some(app) => Some(app),
            None => self.store.load_application(application_id).await?,
        };
        let application = match stored {
            Some(app) => app,
            None => {
                let rails_id = self
                    .store
                    .rails_id(application_id)
                    .await?
                    .unwrap_or_default();
                let app = self.fetch_rails(&rails_id, &ctx).await?;
                self.store
                    .attach_fetched_application(application_id, &app)
                    .await?;
                app
            }
        };
        let run_id = self
            .store
            .start_run(application_id, reason.as_str())
            .await?;
        let gather::Gathered {
            results,
            inputs,
            cost,
        } = self
            .run_checks(run_id, application_id, &application, &ctx)
            .await?;
        let complete = !results.iter().any(|r| {
            r.reason_codes
                .iter()
                .any(|c| *c == ReasonCode::DeadlineExceeded)
        });
        let decision = DecisionRecord {
            vendor_cost: Some(cost),
            ..decide(&self.policy, &inputs, &results)
        };
        let inputs = serde_json::to_value(&inputs).expect("run inputs serialise");
        let trace_parent = dossier_upstream::trace_context::current_traceparent();
        let recorded = self
            .store
            .record_decision(FinishedRun {
                run_id,
                application_id,
                decision: &decision,
                complete,
                once: reason == RunReason::Initial,
                inputs: &inputs,
                trace_parent: trace_parent.as_deref(),
            })
            .await?;
        if let Some(header) = recorded {
            metrics::counter!("dossier_decisions_total", "decision" => decision.decision.as_str())
                .increment(1);
            for (spending, cents) in [("spent", cost.spent_cents), ("avoided", cost.avoided_cents)]
            {
                metrics::counter!("dossier_vendor_cost_cents_total", "mode" => cost.mode.as_str(), "spending" => spending)
                    .increment(cents.max(0).unsigned_abs());
            }
            // What was just stored, without reading it back: the decision's statement
            // returned the parts this run does not hold.
            return Ok(Report {
                application_id,
                idempotency_key: header.idempotency_key,
                rails_application_id: header.rails_application_id,
                status: dossier_core::domain::ApplicationStatus::Decided,
                created_at: header.created_at,
                checks: results,
                decision: Some(decision),
                complete,
                review: header.review,
                run_count: header.run_count,
            });
        }
        // Another run decided first: report what stands.
        self.store
            .report(application_id)
            .await?
            .ok_or(EvaluateError::NotFound(application_id))
    }

    /// Screens a name on the local SDN list (no network, no deadline to mind).
    fn screen(
        &self,
        name: &str,
        as_what: Subject,
        p: &dossier_core::policy::Policy,
    ) -> judge::Screened {
        let answer = self
            .sanctions
            .answer(name, as_what, p.sanctions.review_threshold);
        let loaded = self.sanctions.version().is_some();
        judge::Screened {
            name: name.to_owned(),
            loaded,
            hits: answer.value,
            source: loaded.then_some(answer.source),
        }
    }
}

/// Awaits an upstream call, giving up at the caller's deadline.
async fn within<T>(
    ctx: &CallContext,
    upstream: Upstream,
    fut: impl std::future::Future<Output = Result<Option<T>, UpstreamError>>,
) -> Result<Option<T>, UpstreamError> {
    match ctx.deadline {
        None => fut.await,
        Some(deadline) => tokio::time::timeout_at(deadline.into(), fut)
            .await
            .unwrap_or(Err(UpstreamError::DeadlineExceeded { upstream })),
    }
}

/// The decision over a run's results, with the figures underwriters look at first:
/// the assessment limit's, and for a decline that a smaller amount would cure, the
/// amount that would pass (`amount_that_would_pass_cents`). The property's state
/// (in `inputs`) selects per-state overrides of the decision rule too.
pub fn decide(
    policy: &LoadedPolicy,
    inputs: &judge::RunInputs,
    results: &[CheckResult],
) -> DecisionRecord {
    let p = policy.for_state(&inputs.state);
    let (decision, reason_codes) = policy::decide(p, results);
    let mut figures = results
        .iter()
        .find(|r| r.kind == CheckKind::AssessmentLimit && r.outcome != Outcome::NotRun)
        .map(|r| r.evidence.clone())
        .filter(|e| e.is_object())
        .unwrap_or_else(|| json!({}));
    if let Some(amount) = dossier_core::rescope::amount_that_would_pass(inputs, results, p) {
        figures[DecisionRecord::AMOUNT_THAT_WOULD_PASS] = json!(amount);
    }
    DecisionRecord {
        decision,
        reason_codes,
        policy_version: policy.policy.version.clone(),
        policy_hash: policy.hash.clone(),
        figures,
        decided_at: Utc::now(),
        vendor_cost: None,
    }
}

/// The outcome of replaying one stored decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Replayed {
    pub run_id: Uuid,
    pub stored: dossier_core::domain::Decision,
    pub recomputed: dossier_core::domain::Decision,
    pub stored_reasons: Vec<String>,
    pub recomputed_reasons: Vec<String>,
    /// Checks whose outcome or reason codes differ: (kind, subject, stored, recomputed).
    pub differences: Vec<(CheckKind, String, String, String)>,
}

impl Replayed {
    pub fn matches(&self) -> bool {
        self.stored == self.recomputed
            && self.stored_reasons == self.recomputed_reasons
            && self.differences.is_empty()
    }
}

/// Recomputes every decision of an application from its stored inputs and policy.
pub async fn replay(store: &Store, application_id: Uuid) -> Result<Vec<Replayed>, EvaluateError> {
    let runs = store.decided_runs(application_id).await?;
    if runs.is_empty() {
        return Err(EvaluateError::Replay(format!(
            "application {application_id} has no decision to replay"
        )));
    }
    let mut out = Vec::new();
    for run in runs {
        let inputs: judge::RunInputs =
            serde_json::from_value(run.inputs.clone().ok_or_else(|| {
                EvaluateError::Replay(format!(
                    "run {} was decided before inputs were stored; it cannot be replayed",
                    run.run_id
                ))
            })?)
            .map_err(|e| {
                EvaluateError::Replay(format!(
                    "stored inputs of run {} do not decode: {e}",
                    run.run_id
                ))
            })?;
        let source = run.policy_source.clone().ok_or_else(|| {
            EvaluateError::Replay(format!(
                "the policy {} of run {} is not stored",
                run.decision.policy_hash, run.run_id
            ))
        })?;
        let policy = LoadedPolicy::parse(&source)
            .map_err(|e| EvaluateError::Replay(format!("stored policy no longer parses: {e}")))?;
        let results = judge::judge_all(&inputs, &policy);
        let decision = decide(&policy, &inputs, &results);
        let mut differences = Vec::new();
        for r in &results {
            let stored = run
                .checks
                .iter()
                .find(|c| c.kind == r.kind && c.subject == r.subject);
            let describe = |outcome: dossier_core::domain::Outcome, codes: &[String]| {
                format!("{} {}", outcome.as_str(), codes.join(","))
            };
            let now = describe(r.outcome, &r.reason_codes);
            let then = stored
                .map(|c| describe(c.outcome, &c.reason_codes))
                .unwrap_or_else(|| "missing".into());
            if now != then {
                differences.push((r.kind, r.subject.clone(), then, now));
            }
        }
        out.push(Replayed {
            run_id: run.run_id,
            stored: run.decision.decision,
            recomputed: decision.decision,
            stored_reasons: run.decision.reason_codes.clone(),
            recomputed_reasons: decision.reason_codes,
            differences,
        });
    }
    Ok(out)
}
