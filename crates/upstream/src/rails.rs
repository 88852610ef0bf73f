//! The lender's Ruby on Rails backend.
//!
//! HTTP contract (served by `sim::rails`):
//! `GET {base}/api/v1/pace_applications/{id}` → 200 [`RailsApplication`],
//! 404 `{"error":"not_found"}`;
//! `GET {base}/api/v1/pace_applications?ids=a,b,c` (at most 100) → 200
//! [`RailsApplicationBatch`].
//!
//! Concurrent look-ups of different ids within a few milliseconds are merged into one
//! batch request ([`RailsBatcher`], DataLoader style): Rails sees one request instead
//! of many.
//! `POST {base}/api/v1/underwriting_decisions` with `Idempotency-Key: {decision_id}` and
//! a [`RailsDecision`] → 200 [`RailsDecisionAck`] (`duplicate: true` when Rails had it).
//! Dossier delivers every decision this way from its outbox, retrying until
//! acknowledged, so Rails must treat the key as idempotent.
//!
//! Requests carry `Authorization: Bearer {credential}`.

use chrono::NaiveDate;
use dossier_core::domain::{self, Upstream};
use serde::{Deserialize, Serialize};

/// The answer of the batch endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RailsApplicationBatch {
    pub applications: Vec<RailsApplication>,
    /// Requested ids Rails does not have.
    pub missing: Vec<String>,
}

/// An application as the Rails backend serialises it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RailsApplication {
    pub id: String,
    pub applicants: Vec<RailsApplicant>,
    pub property: RailsProperty,
    pub contractor: RailsContractor,
    pub measures: Vec<RailsMeasure>,
    pub amount_cents: i64,
    pub term_years: i32,
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct RailsApplicant {
    pub first_name: String,
    #[serde(default)]
    pub middle_name: String,
    pub last_name: String,
    #[serde(default)]
    pub suffix: String,
    pub ssn: String,
    pub date_of_birth: NaiveDate,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub stated_annual_income_cents: i64,
}

impl std::fmt::Debug for RailsApplicant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RailsApplicant")
            .field("first_name", &self.first_name)
            .field("last_name", &self.last_name)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RailsProperty {
    pub line1: String,
    #[serde(default)]
    pub line2: String,
    pub city: String,
    pub state: String,
    pub postal_code: String,
    #[serde(default)]
    pub apn: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RailsContractor {
    pub business_name: String,
    pub license_number: String,
    pub license_state: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RailsMeasure {
    /// "solar_pv", "battery_storage", "hvac", "roof", "windows", "insulation",
    /// "water_heater", "seismic_retrofit".
    pub kind: String,
    pub cost_cents: i64,
    #[serde(default)]
    pub description: String,
}

/// A decision as Dossier delivers it to Rails. No applicant data: Rails has it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RailsDecision {
    /// The evaluation run that decided; also the delivery's idempotency key.
    pub decision_id: uuid::Uuid,
    /// Dossier's application id.
    pub application_id: uuid::Uuid,
    /// The idempotency key the application was submitted with.
    pub submission_key: String,
    /// The Rails application, when it was submitted by Rails id.
    pub rails_application_id: Option<String>,
    /// "approved", "declined" or "refer".
    pub decision: String,
    pub reason_codes: Vec<String>,
    pub policy_version: String,
    pub decided_at: chrono::DateTime<chrono::Utc>,
    /// Who decided: the underwriting policy, or an underwriter reviewing a REFER.
    #[serde(default)]
    pub decided_by: DecidedBy,
    /// For an underwriter's decision: the REFER decision it resolves.
    #[serde(default)]
    pub replaces: Option<uuid::Uuid>,
    /// For an underwriter's decision: the underwriter, as the subject of the ID token
    /// their review carried (verified by Dossier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewer: Option<String>,
    /// For a decline: the content of the adverse-action notice the lender must send
    /// (docs/reason-codes.md#adverse-action-notices). A notice whose `missing` is not
    /// empty lacks configured contact details and must not be sent as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adverse_action: Option<dossier_core::adverse_action::NoticeContent>,
    /// For the policy's decision: the evaluation's mode and vendor spending
    /// (`{"mode": "frugal", "spent_cents": 160, "avoided_cents": 275}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_cost: Option<dossier_core::plan::VendorCost>,
}

/// Who made a delivered decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecidedBy {
    /// The automated checks under the underwriting policy.
    #[default]
    Policy,
    /// An underwriter (ReviewApplication). `reason_codes` are the REFER's.
    Underwriter,
}

impl From<domain::DecisionNotice> for RailsDecision {
    fn from(n: domain::DecisionNotice) -> Self {
        RailsDecision {
            decision_id: n.decision_id,
            application_id: n.application_id,
            submission_key: n.submission_key,
            rails_application_id: n.rails_application_id,
            decision: n.decision.as_str().to_owned(),
            reason_codes: n.reason_codes,
            policy_version: n.policy_version,
            decided_at: n.decided_at,
            decided_by: match n.decided_by {
                domain::DecidedBy::Policy => DecidedBy::Policy,
                domain::DecidedBy::Underwriter => DecidedBy::Underwriter,
            },
            replaces: n.replaces,
            reviewer: n.reviewer,
            adverse_action: None,
            vendor_cost: n.vendor_cost,
        }
    }
}

/// Rails's acknowledgement of a delivered decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RailsDecisionAck {
    pub decision_id: uuid::Uuid,
    /// Rails had already recorded this decision (a redelivery).
    #[serde(default)]
    pub duplicate: bool,
}

/// Path of the decision callback endpoint.
pub const DECISIONS_PATH: &str = "/api/v1/underwriting_decisions";

/// Path of the funding-check callback endpoint.
pub const FUNDING_CHECKS_PATH: &str = "/api/v1/funding_checks";

/// A pre-funding re-verification as Dossier delivers it to Rails. No applicant data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RailsFundingCheck {
    /// Dossier's id of the funding check; also the delivery's idempotency key.
    pub funding_check_id: uuid::Uuid,
    pub application_id: uuid::Uuid,
    /// The idempotency key the application was submitted with.
    pub submission_key: String,
    pub rails_application_id: Option<String>,
    /// The approval this check re-verified (its decision id).
    pub approval_decision_id: uuid::Uuid,
    /// "clear" (fund) or "hold" (an underwriter must look first).
    pub verdict: String,
    /// For a hold: the codes of the checks that drove it.
    pub reason_codes: Vec<String>,
    /// What differs from the evidence of the approval.
    pub changes: Vec<dossier_core::funding::EvidenceChange>,
    /// The final amount and term the checks were run with.
    pub amount_cents: i64,
    pub term_years: i32,
    pub policy_version: String,
    pub checked_at: chrono::DateTime<chrono::Utc>,
}

/// Path of the callback for underwriters' resolutions of funding HOLDs.
pub const FUNDING_RESOLUTIONS_PATH: &str = "/api/v1/funding_check_resolutions";

/// An underwriter's resolution of a funding HOLD, as Dossier delivers it to Rails.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RailsFundingResolution {
    /// The funding check resolved; also the delivery's idempotency key (a HOLD is
    /// resolved once).
    pub funding_check_id: uuid::Uuid,
    pub application_id: uuid::Uuid,
    pub submission_key: String,
    pub rails_application_id: Option<String>,
    /// "clear" (fund after all) or "decline".
    pub outcome: String,
    /// The underwriter, as the subject of the verified ID token of their review.
    pub reviewer: String,
    pub resolved_at: chrono::DateTime<chrono::Utc>,
    /// The HOLD's reason codes.
    pub reason_codes: Vec<String>,
    /// For a decline: the adverse-action notice the lender must send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adverse_action: Option<dossier_core::adverse_action::NoticeContent>,
}

/// Path of the callback for sanctions monitoring alerts.
pub const SANCTIONS_ALERTS_PATH: &str = "/api/v1/sanctions_alerts";

/// A sanctions monitoring alert, as Dossier delivers it to Rails: an approved
/// applicant or contractor resembles an entry of a newly loaded SDN list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RailsSanctionsAlert {
    /// Dossier's id of the alert; also the delivery's idempotency key.
    pub alert_id: uuid::Uuid,
    pub application_id: uuid::Uuid,
    pub submission_key: String,
    pub rails_application_id: Option<String>,
    /// "applicant N" or "contractor".
    pub subject: String,
    /// "match" (at or above the policy's match threshold) or "near_match".
    pub severity: String,
    /// The SDN entry (ent_num), its name and program, and the score of the match.
    pub entry_id: i64,
    pub candidate: String,
    pub program: String,
    pub score: f64,
    /// The list version that raised it.
    pub list_version: i64,
    pub raised_at: chrono::DateTime<chrono::Utc>,
}

/// Rails's acknowledgement of a delivered alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RailsSanctionsAlertAck {
    pub alert_id: uuid::Uuid,
}

/// Rails's acknowledgement of a delivered funding check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RailsFundingCheckAck {
    pub funding_check_id: uuid::Uuid,
    #[serde(default)]
    pub duplicate: bool,
}

/// Merges concurrent single look-ups into batch requests.
#[derive(Debug, Clone)]
pub struct RailsBatcher {
    tx: tokio::sync::mpsc::Sender<BatchItem>,
}

type BatchReply = Result<Option<serde_json::Value>, super::error::UpstreamError>;

#[derive(Debug)]
struct BatchItem {
    id: String,
    ctx: super::http::CallContext,
    reply: tokio::sync::oneshot::Sender<BatchReply>,
}

/// How long the first look-up of a batch waits for others to join it.
pub const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(5);
/// Most ids per batch request.
pub const BATCH_MAX: usize = 50;

impl RailsBatcher {
    /// Starts the batching task; it ends when every handle is dropped.
    pub fn start(http: super::http::HttpUpstream) -> RailsBatcher {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<BatchItem>(1024);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut items = vec![first];
                let window = tokio::time::sleep(BATCH_WINDOW);
                tokio::pin!(window);
                while items.len() < BATCH_MAX {
                    tokio::select! {
                        more = rx.recv() => match more {
                            Some(item) => items.push(item),
                            None => break,
                        },
                        _ = &mut window => break,
                    }
                }
                tokio::spawn(send_batch(http.clone(), items));
            }
        });
        RailsBatcher { tx }
    }

    async fn get(&self, id: String, ctx: super::http::CallContext) -> BatchReply {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let lost = || super::error::UpstreamError::Internal {
            upstream: Upstream::Rails,
            detail: "the batching task stopped".into(),
        };
        self.tx
            .send(BatchItem { id, ctx, reply })
            .await
            .map_err(|_| lost())?;
        answer.await.map_err(|_| lost())?
    }
}

async fn send_batch(http: super::http::HttpUpstream, items: Vec<BatchItem>) {
    let mut ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    // The batch lives as long as its most patient member.
    let ctx = super::http::CallContext {
        deadline: items.iter().map(|i| i.ctx.deadline).max().flatten(),
        ..items[0].ctx
    };
    let request = http
        .get("/api/v1/pace_applications")
        .query(&[("ids", ids.join(","))]);
    let result = http
        .send_json::<RailsApplicationBatch>("GET /api/v1/pace_applications?ids", request, &ctx)
        .await;
    metrics::histogram!("dossier_rails_batch_size").record(ids.len() as f64);
    match result {
        Ok(Some(batch)) => {
            let found: std::collections::HashMap<String, serde_json::Value> = batch
                .value
                .applications
                .into_iter()
                .map(|a| {
                    (
                        a.id.clone(),
                        serde_json::to_value(a).expect("an application serialises"),
                    )
                })
                .collect();
            for item in items {
                let _ = item.reply.send(Ok(found.get(&item.id).cloned()));
            }
        }
        Ok(None) => {
            for item in items {
                let _ = item.reply.send(Err(super::error::UpstreamError::Status {
                    upstream: Upstream::Rails,
                    status: 404,
                    retry_after: None,
                    snippet: "the batch endpoint was not found; check the Rails base URL".into(),
                }));
            }
        }
        Err(e) => {
            for item in items {
                let _ = item.reply.send(Err(e.clone()));
            }
        }
    }
}

/// Client of the Rails backend.
#[derive(Debug, Clone)]
pub struct RailsClient {
    layered: std::sync::Arc<super::layered::Layered>,
    batcher: RailsBatcher,
}

impl RailsClient {
    pub fn new(layered: std::sync::Arc<super::layered::Layered>) -> Self {
        let batcher = RailsBatcher::start(layered.http.clone());
        RailsClient { layered, batcher }
    }

    /// One application; concurrent calls for different ids share a batch request.
    pub async fn application(
        &self,
        id: &str,
        ctx: &super::http::CallContext,
    ) -> Result<Option<super::http::Fetched<RailsApplication>>, super::error::UpstreamError> {
        let owned = id.to_owned();
        let batcher = self.batcher.clone();
        let question = super::layered::Question {
            kind: "application",
            key: id.to_owned(),
            validate: super::layered::shape_of::<RailsApplication>,
            send: std::sync::Arc::new(move |_http, ctx| {
                let batcher = batcher.clone();
                let id = owned.clone();
                let ctx = *ctx;
                Box::pin(async move { batcher.get(id, ctx).await })
            }),
        };
        self.layered.ask(question, ctx).await
    }

    /// Delivers a decision and waits for Rails's acknowledgement. Rate limited, guarded
    /// by the breaker and retried like every Rails request; never cached.
    pub async fn deliver_decision(
        &self,
        decision: &RailsDecision,
        ctx: &super::http::CallContext,
    ) -> Result<RailsDecisionAck, super::error::UpstreamError> {
        let ack: RailsDecisionAck = self
            .post_callback(&DECISIONS, decision.decision_id, decision, ctx)
            .await?;
        acknowledged("decision", ack.decision_id, decision.decision_id)?;
        Ok(ack)
    }

    /// Delivers a funding check, as [`RailsClient::deliver_decision`] a decision.
    pub async fn deliver_funding_check(
        &self,
        check: &RailsFundingCheck,
        ctx: &super::http::CallContext,
    ) -> Result<RailsFundingCheckAck, super::error::UpstreamError> {
        let ack: RailsFundingCheckAck = self
            .post_callback(&FUNDING_CHECKS, check.funding_check_id, check, ctx)
            .await?;
        acknowledged(
            "funding check",
            ack.funding_check_id,
            check.funding_check_id,
        )?;
        Ok(ack)
    }

    /// Delivers an underwriter's resolution of a funding HOLD, keyed by its funding
    /// check (a HOLD is resolved once).
    pub async fn deliver_funding_resolution(
        &self,
        resolution: &RailsFundingResolution,
        ctx: &super::http::CallContext,
    ) -> Result<RailsFundingCheckAck, super::error::UpstreamError> {
        let ack: RailsFundingCheckAck = self
            .post_callback(
                &FUNDING_RESOLUTIONS,
                resolution.funding_check_id,
                resolution,
                ctx,
            )
            .await?;
        acknowledged(
            "funding check",
            ack.funding_check_id,
            resolution.funding_check_id,
        )?;
        Ok(ack)
    }

    /// Delivers a sanctions monitoring alert.
    pub async fn deliver_sanctions_alert(
        &self,
        alert: &RailsSanctionsAlert,
        ctx: &super::http::CallContext,
    ) -> Result<RailsSanctionsAlertAck, super::error::UpstreamError> {
        let ack: RailsSanctionsAlertAck = self
            .post_callback(&SANCTIONS_ALERTS, alert.alert_id, alert, ctx)
            .await?;
        acknowledged("alert", ack.alert_id, alert.alert_id)?;
        Ok(ack)
    }

    /// POSTs `body` to one of Rails's callbacks with `key` as its idempotency key and
    /// returns Rails's acknowledgement: rate limited, guarded by the breaker and retried
    /// like every Rails request, never cached.
    async fn post_callback<B, A>(
        &self,
        callback: &'static Callback,
        key: uuid::Uuid,
        body: &B,
        ctx: &super::http::CallContext,
    ) -> Result<A, super::error::UpstreamError>
    where
        B: Serialize + Clone + Send + Sync + 'static,
        A: serde::de::DeserializeOwned,
    {
        let body = body.clone();
        let question = super::layered::Question {
            kind: callback.kind,
            key: key.to_string(),
            validate: super::layered::shape_of::<A>,
            send: super::layered::http_send(callback.endpoint, move |http| {
                Ok(http
                    .post(callback.path)
                    .header("Idempotency-Key", key.to_string())
                    .json(&body))
            }),
        };
        let Some(answer) = self.layered.send_uncached(&question, ctx).await? else {
            return Err(super::error::UpstreamError::Status {
                upstream: Upstream::Rails,
                status: 404,
                retry_after: None,
                snippet: format!(
                    "{} was not found; check the Rails base URL and that this Rails release has the {} callback",
                    callback.path, callback.what
                ),
            });
        };
        serde_json::from_value(answer).map_err(|e| super::error::UpstreamError::Malformed {
            upstream: Upstream::Rails,
            detail: e.to_string(),
        })
    }
}

/// One of Rails's callbacks: where the outbox delivers.
struct Callback {
    /// The question's kind (metrics, traces).
    kind: &'static str,
    /// The endpoint as the audit and the spans name it.
    endpoint: &'static str,
    path: &'static str,
    /// What it receives, for the message when Rails does not have it.
    what: &'static str,
}

const DECISIONS: Callback = Callback {
    kind: "decision",
    endpoint: "POST /api/v1/underwriting_decisions",
    path: DECISIONS_PATH,
    what: "decision",
};
const FUNDING_CHECKS: Callback = Callback {
    kind: "funding_check",
    endpoint: "POST /api/v1/funding_checks",
    path: FUNDING_CHECKS_PATH,
    what: "funding-check",
};
const FUNDING_RESOLUTIONS: Callback = Callback {
    kind: "funding_resolution",
    endpoint: "POST /api/v1/funding_check_resolutions",
    path: FUNDING_RESOLUTIONS_PATH,
    what: "funding-resolution",
};
const SANCTIONS_ALERTS: Callback = Callback {
    kind: "sanctions_alert",
    endpoint: "POST /api/v1/sanctions_alerts",
    path: SANCTIONS_ALERTS_PATH,
    what: "sanctions-alert",
};

/// Rails must acknowledge what it was sent, not something else.
fn acknowledged(
    what: &str,
    got: uuid::Uuid,
    sent: uuid::Uuid,
) -> Result<(), super::error::UpstreamError> {
    if got == sent {
        return Ok(());
    }
    Err(super::error::UpstreamError::Malformed {
        upstream: Upstream::Rails,
        detail: format!("acknowledged {what} {got} instead of {sent}"),
    })
}
