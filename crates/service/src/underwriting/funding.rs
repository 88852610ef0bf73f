//! PrepareFunding: before an approved application is funded, ask again what can have
//! changed since the approval (ownership, taxes, mortgage, liens and assessments from
//! the property records; each applicant's bankruptcy search; the contractor's licence
//! and registration; sanctions screening against the list loaded now), re-run every
//! check with the final amount and measures, and say CLEAR or HOLD with what changed.
//!
//! What cannot change, or is not re-bought, is taken from the approval's inputs: the
//! valuation, identity and income answers. The caches are bypassed for everything
//! asked again (the data must be as of today), the rate limits are not. The check is
//! stored beside the decisions (`funding_checks`), never replacing one, and queued for
//! delivery to Rails in the same transaction.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use dossier_core::domain::{Application, Decision, Financing, Measure};
use dossier_core::funding::{self, FundingVerdict};
use dossier_core::judge::{self, RunInputs};
use dossier_core::policy::LoadedPolicy;
use dossier_sanctions::Subject;
use dossier_store::Store;
use dossier_store::funding::{FundingCheck, NewFundingCheck};
use dossier_upstream::CallContext;
use dossier_upstream::identity::PersonQuery;
use dossier_upstream::property_records::PropertyQuery;
use futures::future::join_all;
use tracing::Instrument as _;
use uuid::Uuid;

use super::{EvaluateError, Underwriter, decide};

/// What Rails sends as final: each part, when given, replaces the approved one.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FinalTerms {
    pub financing: Option<Financing>,
    pub measures: Option<Vec<Measure>>,
}

/// The outcome of a PrepareFunding, shared by every caller that joined it.
pub type FundingOutcome = Arc<Result<FundingCheck, EvaluateError>>;

impl Underwriter {
    /// Queues a funding check as a job (PrepareFunding with `queue`): the approval is
    /// checked now, the work done by a worker, the outcome delivered to Rails.
    pub async fn queue_funding_check(
        &self,
        application_id: Uuid,
        terms: &FinalTerms,
    ) -> Result<i64, EvaluateError> {
        self.standing_approval(application_id).await?;
        let payload = serde_json::to_value(terms).expect("final terms serialise");
        let trace_parent = dossier_upstream::trace_context::current_traceparent();
        Ok(self
            .store
            .queue_funding_check(application_id, &payload, trace_parent.as_deref())
            .await?)
    }

    /// Re-verifies an approved application before funding. A second call for the same
    /// application while one runs in this process joins it (and gets its outcome,
    /// whatever terms it sent). The work runs in a task of its own, so a caller that
    /// goes away does not cut it short.
    pub fn prepare_funding(
        &self,
        application_id: Uuid,
        terms: FinalTerms,
        deadline: Option<Instant>,
    ) -> impl Future<Output = FundingOutcome> + use<> {
        let me = self.clone();
        // Calls join only when they ask the same question: the same final terms.
        let key = format!(
            "{application_id} {:?} {:?}",
            terms.financing, terms.measures
        );
        let (flight, _joined) = self.funding_flights.join_or_start(
            &key,
            move || {
                async move { Arc::new(me.run_funding_check(application_id, terms, deadline).await) }
                    .in_current_span()
            },
            move || {
                Arc::new(Err(EvaluateError::Internal(format!(
                    "the funding check of application {application_id} failed internally; it has been logged, retry it"
                ))))
            },
        );
        flight
    }

    #[tracing::instrument(name = "funding_check", skip_all, fields(application_id = %application_id))]
    async fn run_funding_check(
        &self,
        application_id: Uuid,
        terms: FinalTerms,
        deadline: Option<Instant>,
    ) -> Result<FundingCheck, EvaluateError> {
        let (approval, accepted) = self.standing_approval(application_id).await?;
        let approved: RunInputs = approval
            .inputs
            .ok_or_else(|| {
                EvaluateError::Replay(format!(
                    "the approved run {} of application {application_id} was decided before inputs were stored; refresh the application, then prepare funding",
                    approval.run_id
                ))
            })
            .and_then(|v| {
                serde_json::from_value(v).map_err(|e| {
                    EvaluateError::Replay(format!(
                        "the inputs of run {} do not decode: {e}",
                        approval.run_id
                    ))
                })
            })?;
        let application = self
            .store
            .load_application(application_id)
            .await?
            .ok_or(EvaluateError::NotFound(application_id))?;
        let ctx = CallContext {
            application_id: Some(application_id),
            deadline,
            // The data must be as of today; the rate limits still apply.
            force_refresh: true,
        };
        let now = self
            .gather_changeable(&application, &approved, terms, &ctx)
            .await;
        let results = judge::judge_all(&now, &self.policy);
        let decision = decide(&self.policy, &now, &results);
        let verdict = FundingVerdict::of(
            decision.decision,
            &decision.reason_codes,
            accepted.as_deref(),
        );
        let changes = funding::changes(&approved, &now);
        let id = Uuid::now_v7();
        let inputs = serde_json::to_value(&now).expect("run inputs serialise");
        let trace_parent = dossier_upstream::trace_context::current_traceparent();
        let checked_at = Utc::now();
        self.store
            .record_funding_check(NewFundingCheck {
                id,
                application_id,
                approval_run_id: approval.run_id,
                verdict,
                reason_codes: &decision.reason_codes,
                accepted_codes: accepted.as_deref(),
                changes: &changes,
                checks: &results,
                financing: now.financing,
                inputs: &inputs,
                policy_version: &self.policy.policy.version,
                policy_hash: &self.policy.hash,
                checked_at,
                trace_parent: trace_parent.as_deref(),
            })
            .await?;
        metrics::counter!("dossier_funding_checks_total", "verdict" => verdict.as_str())
            .increment(1);
        tracing::info!(
            funding_check_id = %id,
            verdict = verdict.as_str(),
            changes = changes.len(),
            "funding check recorded"
        );
        Ok(FundingCheck {
            id,
            application_id,
            approval_run_id: approval.run_id,
            verdict,
            reason_codes: decision.reason_codes,
            accepted_codes: accepted,
            changes,
            checks: results,
            financing: now.financing,
            policy_version: self.policy.policy.version.clone(),
            policy_hash: self.policy.hash.clone(),
            checked_at,
            resolution: None,
        })
    }

    /// The run whose approval stands, with the codes an underwriter accepted when the
    /// approval was theirs; NotApproved naming the state otherwise. The decision that
    /// stands is the latest run's: an approval, or a REFER an underwriter approved on
    /// that very run (a refresh after a review stands alone).
    async fn standing_approval(
        &self,
        application_id: Uuid,
    ) -> Result<(dossier_store::StoredRun, Option<Vec<String>>), EvaluateError> {
        let status = self
            .store
            .application_status(application_id)
            .await?
            .ok_or(EvaluateError::NotFound(application_id))?;
        let latest = self.store.decided_runs(application_id).await?.pop();
        let review = self.store.review_of(application_id).await?;
        let Some(approval) = latest else {
            return Err(EvaluateError::NotApproved {
                id: application_id,
                state: status.as_str().to_owned(),
            });
        };
        let reviewed = review.filter(|r| r.run_id == approval.run_id);
        let accepted = match (approval.decision.decision, &reviewed) {
            (Decision::Approved, _) => None,
            (Decision::Refer, Some(r)) if r.approve => Some(approval.decision.reason_codes.clone()),
            (decision, _) => {
                let state = match (decision, &reviewed) {
                    (Decision::Refer, None) => "referred, awaiting an underwriter",
                    (_, Some(_)) => "declined by an underwriter",
                    (d, None) => d.as_str(),
                };
                return Err(EvaluateError::NotApproved {
                    id: application_id,
                    state: state.to_owned(),
                });
            }
        };
        Ok((approval, accepted))
    }

    /// Today's inputs: the changeable answers asked again, the rest as approved.
    async fn gather_changeable(
        &self,
        app: &Application,
        approved: &RunInputs,
        terms: FinalTerms,
        ctx: &CallContext,
    ) -> RunInputs {
        let p = self.policy.for_state(&approved.state);
        let query = PropertyQuery::of(&app.property);
        let c = &app.contractor;
        // Through the same waterfalls as an evaluation (a funding check is not billed
        // to a decision: its spending is not counted).
        let property = self.ask_property_record(&query, ctx);
        let license = self.ask_license(&c.license_state, &c.license_number, ctx);
        let business = self.ask_business(&c.business_name, &c.license_state, ctx);
        let bankruptcies = join_all(app.applicants.iter().map(|a| {
            let query = PersonQuery::of(a, &app.property.address);
            async move { self.ask_bankruptcies(&query, ctx).await }
        }));
        let (property, license, business, bankruptcies) =
            tokio::join!(property, license, business, bankruptcies);
        let applicants = approved
            .applicants
            .iter()
            .zip(bankruptcies)
            .map(|(before, bankruptcy)| judge::ApplicantInputs {
                bankruptcy: bankruptcy.answer,
                sanctions: self.screen(&before.display_name, Subject::Person, p),
                ..before.clone()
            })
            .collect();
        RunInputs {
            as_of: Utc::now().date_naive(),
            state: approved.state.clone(),
            measures: terms.measures.unwrap_or_else(|| approved.measures.clone()),
            financing: terms.financing.unwrap_or(approved.financing),
            property_record: property.answer,
            avm: approved.avm.clone(),
            applicants,
            license: license.answer,
            business: business.answer,
            company_sanctions: self.screen(&c.business_name, Subject::Company, p),
        }
    }
}

/// A funding check recomputed from its stored inputs and policy.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayedFunding {
    pub funding_check_id: Uuid,
    pub stored: FundingVerdict,
    pub recomputed: FundingVerdict,
    pub stored_reasons: Vec<String>,
    pub recomputed_reasons: Vec<String>,
}

impl ReplayedFunding {
    pub fn matches(&self) -> bool {
        self.stored == self.recomputed && self.stored_reasons == self.recomputed_reasons
    }
}

/// Recomputes a funding check's verdict from the inputs and the exact policy it used.
pub async fn replay_funding_check(
    store: &Store,
    id: Uuid,
) -> Result<ReplayedFunding, EvaluateError> {
    let check = store
        .funding_delivery(id)
        .await?
        .ok_or_else(|| EvaluateError::Replay(format!("funding check {id} does not exist")))?
        .check;
    let inputs: RunInputs = store
        .funding_inputs(id)
        .await?
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| {
            EvaluateError::Replay(format!(
                "the inputs of funding check {id} do not decode: {e}"
            ))
        })?
        .ok_or_else(|| EvaluateError::Replay(format!("funding check {id} has no inputs")))?;
    let source = store
        .policy_source(&check.policy_hash)
        .await?
        .ok_or_else(|| {
            EvaluateError::Replay(format!(
                "the policy {} of funding check {id} is not stored",
                check.policy_hash
            ))
        })?;
    let policy = LoadedPolicy::parse(&source)
        .map_err(|e| EvaluateError::Replay(format!("stored policy no longer parses: {e}")))?;
    let results = judge::judge_all(&inputs, &policy);
    let decision = decide(&policy, &inputs, &results);
    Ok(ReplayedFunding {
        funding_check_id: id,
        stored: check.verdict,
        recomputed: FundingVerdict::of(
            decision.decision,
            &decision.reason_codes,
            check.accepted_codes.as_deref(),
        ),
        stored_reasons: check.reason_codes,
        recomputed_reasons: decision.reason_codes,
    })
}
