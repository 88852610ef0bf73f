//! Orchestration: gather upstream answers for an application, run every check as soon
//! as its inputs arrive, record each result, then decide. The judging itself is pure
//! (`checks/`, `policy/`); this module only moves data between them, the upstreams and
//! the store.

pub mod funding;
pub mod monitoring;
pub mod rails_conversion;

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use futures::future::join_all;
use serde_json::json;
use tracing::Instrument as _;
use uuid::Uuid;

use dossier_core::domain::{Application, CheckKind, CheckResult, DecisionRecord, Report};
use dossier_core::judge;
use dossier_core::policy::{self, LoadedPolicy};
use dossier_core::reason::ReasonCode;
use dossier_sanctions::Subject;
use dossier_store::reports::FinishedRun;
use dossier_store::{Store, StoreError};
use dossier_upstream::identity::PersonQuery;
use dossier_upstream::property_records::PropertyQuery;
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
        let (results, inputs) = self
            .run_checks(run_id, application_id, &application, &ctx)
            .await?;
        let complete = !results.iter().any(|r| {
            r.reason_codes
                .iter()
                .any(|c| *c == ReasonCode::DeadlineExceeded)
        });
        let decision = decide(&self.policy, &inputs, &results);
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
        if recorded {
            metrics::counter!("dossier_decisions_total", "decision" => decision.decision.as_str())
                .increment(1);
            // What was just stored, without reading it all back: only the parts this
            // run does not hold (one round trip instead of seven).
            if let Some(header) = self.store.report_header(application_id).await? {
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
        }
        // Another run decided first: report what stands.
        self.store
            .report(application_id)
            .await?
            .ok_or(EvaluateError::NotFound(application_id))
    }

    /// Gathers every upstream answer concurrently (each group judged and recorded as
    /// soon as its answers are in, so WatchReport streams them), and returns the results
    /// with the inputs they were computed from.
    async fn run_checks(
        &self,
        run_id: Uuid,
        application_id: Uuid,
        app: &Application,
        ctx: &CallContext,
    ) -> Result<(Vec<CheckResult>, judge::RunInputs), StoreError> {
        let today = Utc::now().date_naive();
        let state = app.property.address.state.clone();
        let p = self.policy.for_state(&state);
        let record = |results: Vec<CheckResult>| async move {
            self.store
                .record_checks(run_id, application_id, &results)
                .await?;
            Ok::<_, StoreError>(results)
        };
        let names: Vec<(String, String)> = app
            .applicants
            .iter()
            .map(|a| (a.first_name.clone(), a.last_name.clone()))
            .collect();

        let property = async {
            let query = PropertyQuery::of(&app.property);
            let (rec, avm) = tokio::join!(
                within(
                    ctx,
                    Upstream::PropertyRecords,
                    self.upstreams.property_records.lookup(&query, ctx)
                ),
                within(
                    ctx,
                    Upstream::Valuation,
                    self.upstreams.valuation.estimate(&query, ctx)
                ),
            );
            let (rec, avm) = (
                dossier_upstream::answer_of(rec),
                dossier_upstream::answer_of(avm),
            );
            let results = record(judge::property_checks(
                &names,
                &state,
                &app.financing,
                &rec,
                &avm,
                p,
                today,
            ))
            .await?;
            Ok::<_, StoreError>((results, rec, avm))
        }
        .instrument(group_span("property"));
        let contractor = async {
            let c = &app.contractor;
            let (license, business) = tokio::join!(
                within(
                    ctx,
                    Upstream::Licensing,
                    self.upstreams
                        .licensing
                        .license(&c.license_state, &c.license_number, ctx)
                ),
                within(
                    ctx,
                    Upstream::Registry,
                    self.upstreams
                        .registry
                        .business(&c.business_name, &c.license_state, ctx)
                ),
            );
            let (license, business) = (
                dossier_upstream::answer_of(license),
                dossier_upstream::answer_of(business),
            );
            let screened = self.screen(&c.business_name, Subject::Company, p);
            let results = record(judge::contractor_checks(
                &app.measures,
                &license,
                &business,
                &screened,
                p,
                today,
            ))
            .await?;
            Ok::<_, StoreError>((results, license, business, screened))
        }
        .instrument(group_span("contractor"));
        let term = record(vec![judge::term_check(&app.measures, &app.financing, p)])
            .instrument(group_span("term"));
        let applicants = join_all(app.applicants.iter().enumerate().map(|(i, a)| {
            let record = &record;
            async move {
                let query = PersonQuery::of(a, &app.property.address);
                let (identity, bankruptcy, income) = tokio::join!(
                    within(ctx, Upstream::Identity, async {
                        self.upstreams.identity.verify(&query, ctx).await.map(Some)
                    }),
                    within(ctx, Upstream::Identity, async {
                        self.upstreams
                            .identity
                            .bankruptcies(&query, ctx)
                            .await
                            .map(Some)
                    }),
                    within(ctx, Upstream::Identity, async {
                        self.upstreams.identity.income(&query, ctx).await.map(Some)
                    }),
                );
                let inputs = judge::ApplicantInputs {
                    first_name: a.first_name.clone(),
                    last_name: a.last_name.clone(),
                    display_name: a.display_name(),
                    identity: dossier_upstream::answer_of(identity),
                    bankruptcy: dossier_upstream::answer_of(bankruptcy),
                    income: dossier_upstream::answer_of(income),
                    sanctions: self.screen(&a.display_name(), Subject::Person, p),
                };
                let results = record(judge::applicant_checks(i, &inputs, p)).await?;
                Ok::<_, StoreError>((results, inputs))
            }
            .instrument(tracing::info_span!(
                "checks",
                otel.name = %format_args!("checks applicant {i}"),
                group = "applicant",
                applicant = i,
            ))
        }));
        let (property, contractor, term, applicants) =
            tokio::join!(property, contractor, term, applicants);
        let (mut all, property_record, avm) = property?;
        let (contractor_results, license, business, company_sanctions) = contractor?;
        all.extend(contractor_results);
        all.extend(term?);
        let mut applicant_inputs = Vec::new();
        for a in applicants {
            let (results, inputs) = a?;
            all.extend(results);
            applicant_inputs.push(inputs);
        }
        // These need answers from more than one group: the whole household's income and
        // the property's obligations and payment record.
        let mut late = vec![judge::ability_to_pay_check(
            &applicant_inputs,
            &property_record,
            &app.financing,
            p,
        )];
        for (i, a) in applicant_inputs.iter().enumerate() {
            late.push(judge::bankruptcy_check(i, a, &property_record, p, today));
        }
        all.extend(record(late).instrument(group_span("household")).await?);
        all.sort_by(|a, b| (a.kind, &a.subject).cmp(&(b.kind, &b.subject)));
        let inputs = judge::RunInputs {
            as_of: today,
            state,
            measures: app.measures.clone(),
            financing: app.financing,
            property_record,
            avm,
            applicants: applicant_inputs,
            license,
            business,
            company_sanctions,
        };
        Ok((all, inputs))
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
/// The span of one group of checks answered together (their upstream questions are
/// its children).
fn group_span(group: &'static str) -> tracing::Span {
    tracing::info_span!("checks", otel.name = %format_args!("checks {group}"), group)
}

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
        .find(|r| r.kind == CheckKind::AssessmentLimit)
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
