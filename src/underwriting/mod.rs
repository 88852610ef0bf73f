//! Orchestration: gather upstream answers for an application, run every check as soon
//! as its inputs arrive, record each result, then decide. The judging itself is pure
//! (`checks/`, `policy/`); this module only moves data between them, the upstreams and
//! the store.

pub mod rails_conversion;

use std::sync::Arc;
use std::time::Instant;

use chrono::{NaiveDate, Utc};
use futures::future::join_all;
use serde_json::json;
use uuid::Uuid;

use crate::checks::{self, Verdict};
use crate::domain::{Application, CheckKind, CheckResult, DataSource, DecisionRecord, Report};
use crate::policy::{self, LoadedPolicy};
use crate::store::{Store, StoreError};
use crate::upstream::identity::PersonQuery;
use crate::upstream::property_records::PropertyQuery;
use crate::upstream::{CallContext, Fetched, UpstreamError, Upstreams};

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
    #[error("the application Rails returned is not valid: {0}")]
    RailsInvalid(String),
    #[error("application {0} has no decision yet; refresh it once it is decided")]
    NotDecided(Uuid),
    #[error("unknown job kind {0:?}; was it queued by a newer release?")]
    UnknownJob(String),
}

/// Everything needed to underwrite: the store, the upstream clients and the policy.
#[derive(Debug, Clone)]
pub struct Underwriter {
    pub store: Store,
    pub upstreams: Upstreams,
    pub policy: Arc<LoadedPolicy>,
    /// The OFAC SDN list, screened locally.
    pub sanctions: Arc<crate::upstream::sanctions::SanctionsList>,
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
            Some(crate::domain::Status::Decided) => {
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
        if reason == RunReason::Initial && status == crate::domain::Status::Decided {
            return self
                .store
                .report(application_id)
                .await?
                .ok_or(EvaluateError::NotFound(application_id));
        }
        self.run(application_id, None, reason, deadline).await
    }

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
        let results = self
            .run_checks(run_id, application_id, &application, &ctx)
            .await?;
        let complete = !results
            .iter()
            .any(|r| r.reason_codes.iter().any(|c| c == "DEADLINE_EXCEEDED"));
        let decision = decide(&self.policy, &application.property.address.state, &results);
        self.store
            .record_decision(
                run_id,
                application_id,
                &decision,
                complete,
                reason == RunReason::Initial,
            )
            .await?;
        self.store
            .report(application_id)
            .await?
            .ok_or(EvaluateError::NotFound(application_id))
    }

    async fn run_checks(
        &self,
        run_id: Uuid,
        application_id: Uuid,
        app: &Application,
        ctx: &CallContext,
    ) -> Result<Vec<CheckResult>, StoreError> {
        let today = Utc::now().date_naive();
        let groups = vec![
            Box::pin(self.property_group(app, ctx, today))
                as futures::future::BoxFuture<'_, Vec<CheckResult>>,
            Box::pin(self.contractor_group(app, ctx, today)),
            Box::pin(async {
                vec![stamp(
                    CheckKind::Term,
                    "application",
                    None,
                    checks::financing::term(
                        &app.measures,
                        &app.financing,
                        self.policy.for_state(&app.property.address.state),
                    ),
                )]
            }),
        ]
        .into_iter()
        .chain(app.applicants.iter().enumerate().map(|(i, a)| {
            Box::pin(self.applicant_group(i, a, app, ctx, today))
                as futures::future::BoxFuture<'_, Vec<CheckResult>>
        }));
        // Each group records its results as soon as they exist, so WatchReport streams
        // them while slower upstreams are still answering.
        let recorded = join_all(groups.map(|group| async {
            let results = group.await;
            self.store
                .record_checks(run_id, application_id, &results)
                .await?;
            Ok::<_, StoreError>(results)
        }))
        .await;
        let mut all = Vec::new();
        for r in recorded {
            all.extend(r?);
        }
        all.sort_by(|a, b| (a.kind, &a.subject).cmp(&(b.kind, &b.subject)));
        Ok(all)
    }

    async fn property_group(
        &self,
        app: &Application,
        ctx: &CallContext,
        today: NaiveDate,
    ) -> Vec<CheckResult> {
        let p = self.policy.for_state(&app.property.address.state);
        let addr = &app.property.address;
        let query = PropertyQuery {
            line1: addr.line1.clone(),
            city: addr.city.clone(),
            state: addr.state.clone(),
            postal_code: addr.postal_code.clone(),
            apn: app.property.apn.clone(),
        };
        let (record, avm) = tokio::join!(
            within(
                ctx,
                "property_records",
                self.upstreams.property_records.lookup(&query, ctx)
            ),
            within(
                ctx,
                "valuation",
                self.upstreams.valuation.estimate(&query, ctx)
            ),
        );
        let property_kinds = [
            CheckKind::PropertyOwnership,
            CheckKind::PropertyEligibility,
            CheckKind::PropertyTax,
            CheckKind::Mortgage,
            CheckKind::InvoluntaryLiens,
        ];
        let mut out = Vec::new();
        let avm_value = match &avm {
            Ok(found) => {
                out.push(stamp(
                    CheckKind::Valuation,
                    "property",
                    found.as_ref().map(|f| f.source.clone()),
                    checks::property::valuation(found.as_ref().map(|f| &f.value), p),
                ));
                Some(found.as_ref().map(|f| f.value.clone()))
            }
            Err(e) => {
                out.push(unavailable(CheckKind::Valuation, "property", e));
                None
            }
        };
        match &record {
            Ok(Some(Fetched { value: rec, source })) => {
                let s = Some(source.clone());
                out.push(stamp(
                    CheckKind::PropertyOwnership,
                    "property",
                    s.clone(),
                    checks::property::ownership(rec, &app.applicants),
                ));
                out.push(stamp(
                    CheckKind::PropertyEligibility,
                    "property",
                    s.clone(),
                    checks::property::eligibility(rec, &addr.state, p),
                ));
                out.push(stamp(
                    CheckKind::PropertyTax,
                    "property",
                    s.clone(),
                    checks::property::property_tax(rec, p, today),
                ));
                out.push(stamp(
                    CheckKind::Mortgage,
                    "property",
                    s.clone(),
                    checks::property::mortgage(rec, p),
                ));
                out.push(stamp(
                    CheckKind::InvoluntaryLiens,
                    "property",
                    s.clone(),
                    checks::property::involuntary_liens(rec, p),
                ));
                match &avm_value {
                    Some(avm) => out.push(stamp(
                        CheckKind::AssessmentLimit,
                        "property",
                        s,
                        checks::financing::assessment_limit(rec, avm.as_ref(), &app.financing, p),
                    )),
                    None => out.push(unavailable(
                        CheckKind::AssessmentLimit,
                        "property",
                        avm.as_ref().unwrap_err(),
                    )),
                }
            }
            Ok(None) => {
                for kind in property_kinds
                    .into_iter()
                    .chain([CheckKind::AssessmentLimit])
                {
                    out.push(stamp(
                        kind,
                        "property",
                        None,
                        Verdict::fail(
                            "PROPERTY_NOT_FOUND",
                            "The county has no record of this property; check the address or APN.",
                            json!({}),
                        ),
                    ));
                }
            }
            Err(e) => {
                for kind in property_kinds
                    .into_iter()
                    .chain([CheckKind::AssessmentLimit])
                {
                    out.push(unavailable(kind, "property", e));
                }
            }
        }
        out
    }

    async fn applicant_group(
        &self,
        index: usize,
        applicant: &crate::domain::Applicant,
        app: &Application,
        ctx: &CallContext,
        today: NaiveDate,
    ) -> Vec<CheckResult> {
        let p = self.policy.for_state(&app.property.address.state);
        let subject = format!("applicant {}", index + 1);
        let addr = &app.property.address;
        let query = PersonQuery {
            first_name: applicant.first_name.clone(),
            middle_name: applicant.middle_name.clone(),
            last_name: applicant.last_name.clone(),
            ssn: applicant.ssn.expose().to_owned(),
            date_of_birth: applicant.date_of_birth,
            line1: addr.line1.clone(),
            city: addr.city.clone(),
            state: addr.state.clone(),
            postal_code: addr.postal_code.clone(),
        };
        let (identity, bankruptcies) = tokio::join!(
            within(ctx, "identity", async {
                self.upstreams.identity.verify(&query, ctx).await.map(Some)
            }),
            within(ctx, "identity", async {
                self.upstreams
                    .identity
                    .bankruptcies(&query, ctx)
                    .await
                    .map(Some)
            }),
        );
        vec![
            match identity {
                Ok(Some(f)) => stamp(
                    CheckKind::Identity,
                    &subject,
                    Some(f.source),
                    checks::person::identity(&f.value, p),
                ),
                Ok(None) => unreachable!("identity answers are never empty"),
                Err(e) => unavailable(CheckKind::Identity, &subject, &e),
            },
            match bankruptcies {
                Ok(Some(f)) => stamp(
                    CheckKind::Bankruptcy,
                    &subject,
                    Some(f.source),
                    checks::person::bankruptcy(&f.value, p, today),
                ),
                Ok(None) => unreachable!("bankruptcy answers are never empty"),
                Err(e) => unavailable(CheckKind::Bankruptcy, &subject, &e),
            },
            self.sanctions_check(
                &app.property.address.state,
                CheckKind::PersonSanctions,
                &subject,
                &applicant.display_name(),
                crate::upstream::sanctions::Subject::Person,
            ),
        ]
    }

    /// Screens a name on the local SDN list (no network, no deadline to mind).
    fn sanctions_check(
        &self,
        state: &str,
        kind: CheckKind,
        subject: &str,
        name: &str,
        as_what: crate::upstream::sanctions::Subject,
    ) -> CheckResult {
        let rules = &self.policy.for_state(state).sanctions;
        let answer = self.sanctions.answer(name, as_what, rules.review_threshold);
        let loaded = self.sanctions.version().is_some();
        let verdict = checks::sanctions::screen(&answer.value, loaded, rules, name);
        stamp(kind, subject, loaded.then_some(answer.source), verdict)
    }

    async fn contractor_group(
        &self,
        app: &Application,
        ctx: &CallContext,
        today: NaiveDate,
    ) -> Vec<CheckResult> {
        let p = self.policy.for_state(&app.property.address.state);
        let c = &app.contractor;
        let (license, business) = tokio::join!(
            within(
                ctx,
                "licensing",
                self.upstreams
                    .licensing
                    .license(&c.license_state, &c.license_number, ctx)
            ),
            within(
                ctx,
                "registry",
                self.upstreams
                    .registry
                    .business(&c.business_name, &c.license_state, ctx)
            ),
        );
        vec![
            match license {
                Ok(f) => stamp(
                    CheckKind::ContractorLicense,
                    "contractor",
                    f.as_ref().map(|f| f.source.clone()),
                    checks::company::contractor_license(
                        f.as_ref().map(|f| &f.value),
                        &app.measures,
                        p,
                        today,
                    ),
                ),
                Err(e) => unavailable(CheckKind::ContractorLicense, "contractor", &e),
            },
            match business {
                Ok(f) => stamp(
                    CheckKind::BusinessRegistration,
                    "contractor",
                    f.as_ref().map(|f| f.source.clone()),
                    checks::company::business_registration(f.as_ref().map(|f| &f.value)),
                ),
                Err(e) => unavailable(CheckKind::BusinessRegistration, "contractor", &e),
            },
            self.sanctions_check(
                &app.property.address.state,
                CheckKind::CompanySanctions,
                "contractor",
                &c.business_name,
                crate::upstream::sanctions::Subject::Company,
            ),
        ]
    }
}

/// Awaits an upstream call, giving up at the caller's deadline.
async fn within<T>(
    ctx: &CallContext,
    upstream: &'static str,
    fut: impl std::future::Future<Output = Result<Option<T>, UpstreamError>>,
) -> Result<Option<T>, UpstreamError> {
    match ctx.deadline {
        None => fut.await,
        Some(deadline) => tokio::time::timeout_at(deadline.into(), fut)
            .await
            .unwrap_or(Err(UpstreamError::DeadlineExceeded { upstream })),
    }
}

fn stamp(kind: CheckKind, subject: &str, source: Option<DataSource>, v: Verdict) -> CheckResult {
    CheckResult {
        kind,
        subject: subject.to_owned(),
        outcome: v.outcome,
        reason_codes: v.reason_codes,
        message: v.message,
        source,
        evidence: v.evidence,
        finished_at: Utc::now(),
    }
}

fn unavailable(kind: CheckKind, subject: &str, e: &UpstreamError) -> CheckResult {
    let mut r = stamp(
        kind,
        subject,
        None,
        Verdict::unavailable(e.reason_code(), e.to_string()),
    );
    r.evidence = json!({ "upstream": e.upstream(), "error": e.kind() });
    r
}

/// The decision over a run's results, with the figures underwriters look at first.
/// `state` is the property's: per-state overrides apply to the decision rule too.
pub fn decide(policy: &LoadedPolicy, state: &str, results: &[CheckResult]) -> DecisionRecord {
    let (decision, reason_codes) = policy::decide(policy.for_state(state), results);
    let figures = results
        .iter()
        .find(|r| r.kind == CheckKind::AssessmentLimit)
        .map(|r| r.evidence.clone())
        .filter(|e| e.is_object())
        .unwrap_or_else(|| json!({}));
    DecisionRecord {
        decision,
        reason_codes,
        policy_version: policy.policy.version.clone(),
        policy_hash: policy.hash.clone(),
        figures,
        decided_at: Utc::now(),
    }
}
