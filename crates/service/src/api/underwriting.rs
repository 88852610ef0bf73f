//! dossier.v1.UnderwritingService.

use std::time::{Duration, Instant};

use prost::Message;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::error::{self, ApiError};
use super::{RpcLog, accesses, convert, page_token, validate};
use crate::identity::Principal;
use crate::proto;
use crate::proto::underwriting_service_server::UnderwritingService;
use crate::underwriting::{RunReason, Underwriter};
use dossier_core::domain::{Application, Report};
use dossier_store::access_log::AccessLog;
use dossier_store::applications::{Accepted, NewApplication, Source};
use dossier_store::notify::Notifications;
use dossier_store::reports::ListFilter;

/// Time kept back from the caller's deadline to write the report and answer.
const DEADLINE_MARGIN: Duration = Duration::from_millis(300);
/// EvaluateApplication's budget when the caller sets no deadline.
const DEFAULT_EVALUATE_BUDGET: Duration = Duration::from_secs(30);
const DEFAULT_PAGE_SIZE: i64 = 50;
const MAX_PAGE_SIZE: i64 = 500;

pub struct UnderwritingApi {
    pub underwriter: Underwriter,
    pub notifications: Notifications,
    /// Cancelled when the server starts draining: open WatchReport streams end.
    pub stopping: tokio_util::sync::CancellationToken,
    /// Verifies underwriters' ID tokens; without it every review is refused.
    pub reviewers: Option<std::sync::Arc<crate::identity::ReviewerVerifier>>,
    /// Who may do what beyond calling a method (naming Rails applications).
    pub access: crate::identity::Access,
    /// Caps on open WatchReport streams.
    pub watch_limits: std::sync::Arc<super::watch_limits::WatchLimits>,
    /// Where every access to an application is recorded before it is answered.
    pub access_log: AccessLog,
}

const SUBMIT: &str = "dossier.v1.UnderwritingService/SubmitApplication";
const EVALUATE: &str = "dossier.v1.UnderwritingService/EvaluateApplication";
const GET_REPORT: &str = "dossier.v1.UnderwritingService/GetReport";
const LIST_REPORTS: &str = "dossier.v1.UnderwritingService/ListReports";
const REVIEW: &str = "dossier.v1.UnderwritingService/ReviewApplication";
const REFRESH: &str = "dossier.v1.UnderwritingService/RefreshApplication";
pub(super) const WATCH: &str = "dossier.v1.UnderwritingService/WatchReport";

impl UnderwritingApi {
    /// The underwriter of a review, from the verified ID token it carries.
    pub(super) fn reviewer<T>(
        &self,
        request: &Request<T>,
    ) -> Result<crate::identity::Reviewer, Status> {
        let Some(verifier) = &self.reviewers else {
            return Err(Status::failed_precondition(
                "reviews are refused: this server has no reviewer identity provider configured (DOSSIER_REVIEWER_JWKS_FILE, DOSSIER_REVIEWER_ISSUER, DOSSIER_REVIEWER_AUDIENCE)",
            ));
        };
        verifier.verify_metadata(request.metadata()).map_err(|e| {
            let caller = crate::identity::Caller::of_grpc(request);
            tracing::warn!(target: "dossier::authz", %caller, error = %e, "review refused: the reviewer's token");
            Status::unauthenticated(e.to_string())
        })
    }
}

/// The validated source of a submit or evaluate request.
enum Validated {
    Inline(Box<Application>),
    Rails(String),
}

impl UnderwritingApi {
    /// A submission by Rails id makes Dossier fetch the applicants from Rails with its
    /// own token: only callers the access policy lets name Rails applications may.
    fn may_submit<T>(&self, request: &Request<T>, validated: &Validated) -> Result<(), Status> {
        let caller = crate::identity::Caller::of_grpc(request);
        if matches!(validated, Validated::Rails(_))
            && !self.access.may_name_rails_applications(&caller)
        {
            tracing::warn!(target: "dossier::authz", %caller, "submission by rails_application_id refused: the access policy does not let this caller name Rails applications");
            return Err(Status::permission_denied(
                "this caller may not submit applications by rails_application_id",
            ));
        }
        Ok(())
    }

    fn validate_source(
        &self,
        key: &str,
        key_required: bool,
        source: Option<&proto::submit_application_request::Source>,
    ) -> Result<Validated, Status> {
        let mut violations = validate::idempotency_key(key, "idempotency_key", key_required)
            .err()
            .unwrap_or_default();
        let program = &self.underwriter.policy.policy.program;
        let validated = match source {
            None => {
                violations.push(tonic_types::FieldViolation::new(
                    "source",
                    "set either application or rails_application_id",
                ));
                None
            }
            Some(proto::submit_application_request::Source::Application(a)) => {
                match validate::application(a, "application", program) {
                    Ok(app) => Some(Validated::Inline(Box::new(app))),
                    Err(v) => {
                        violations.extend(v);
                        None
                    }
                }
            }
            Some(proto::submit_application_request::Source::RailsApplicationId(id)) => {
                match validate::rails_application_id(id, "rails_application_id") {
                    Ok(()) => Some(Validated::Rails(id.clone())),
                    Err(v) => {
                        violations.extend(v);
                        None
                    }
                }
            }
        };
        match validated {
            Some(v) if violations.is_empty() => Ok(v),
            _ => Err(error::invalid(violations)),
        }
    }

    /// Keyed fingerprint of the request payload: equal payloads → equal fingerprints,
    /// and nothing about the payload (an SSN) can be recovered from it.
    fn fingerprint(&self, source: &Option<proto::submit_application_request::Source>) -> Vec<u8> {
        let canonical = proto::SubmitApplicationRequest {
            idempotency_key: String::new(),
            source: source.clone(),
        }
        .encode_to_vec();
        self.underwriter
            .store
            .vault
            .lookup_hash("request", &canonical)
    }

    async fn accept(
        &self,
        principal: &Principal,
        key: &str,
        source: &Option<proto::submit_application_request::Source>,
        validated: &Validated,
        enqueue_after: Duration,
    ) -> Result<Accepted, Status> {
        let accepted = self
            .underwriter
            .store
            .accept_application(NewApplication {
                submitted_by: &principal.name,
                submitted_by_id: principal.spiffe_id().as_deref(),
                idempotency_key: key,
                payload_hmac: self.fingerprint(source),
                source: match validated {
                    Validated::Inline(app) => Source::Inline(app),
                    Validated::Rails(id) => Source::Rails(id),
                },
                enqueue_after: Some(enqueue_after),
                trace_parent: dossier_upstream::trace_context::current_traceparent().as_deref(),
            })
            .await
            .map_err(ApiError::from)?;
        if let Accepted::Conflict = accepted {
            return Err(Status::already_exists(format!(
                "idempotency_key {key:?} was already used with a different payload; use a new key for a new application"
            )));
        }
        Ok(accepted)
    }

    /// The report as `principal` may see it: an application it may not read is not
    /// found, the same answer as one that does not exist.
    pub(super) async fn load_report(
        &self,
        principal: &Principal,
        id: Uuid,
    ) -> Result<Report, Status> {
        self.underwriter
            .store
            .report_visible_to(id, principal.read_scope())
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| Status::not_found(format!("application {id} does not exist")))
    }
}

pub(super) fn parse_id(id: &str, field: &str) -> Result<Uuid, Status> {
    Uuid::parse_str(id)
        .map_err(|_| error::invalid_field(field, "must be an application id (a UUID)"))
}

pub(super) fn note_application<T>(request: &Request<T>, id: impl ToString) {
    if let Some(log) = request.extensions().get::<RpcLog>() {
        log.set_application(id.to_string());
    }
}

/// The caller's deadline from the grpc-timeout header, less a margin to answer in.
/// The latest a call's last write may finish: into the margin [`caller_deadline`] kept
/// for the reply (an evaluation works until `deadline` itself), leaving half of it to
/// send the answer.
fn reply_by(deadline: Instant) -> Instant {
    deadline + DEADLINE_MARGIN / 2
}

/// Waits for a write (the accept, the access log) until the caller's deadline. A
/// database that went away (the pool then waits for a connection, the access writer
/// batch after batch) must not hold the answer past the deadline: the caller gets
/// UNAVAILABLE in time. The write is one statement, so it happened entirely or not at
/// all; a retry with the same idempotency key finds out which (a replay or a new
/// application).
async fn within_deadline<T>(
    deadline: Instant,
    write: impl std::future::Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    tokio::time::timeout_at(deadline.into(), write)
        .await
        .unwrap_or_else(|_| {
            Err(Status::unavailable(
                "the database did not answer before the call's deadline; retry with the same idempotency key",
            ))
        })
}

pub(super) fn caller_deadline<T>(request: &Request<T>) -> Instant {
    let budget = super::caller_budget(request).unwrap_or(DEFAULT_EVALUATE_BUDGET);
    Instant::now() + budget.saturating_sub(DEADLINE_MARGIN)
}

fn filter_fingerprint(r: &proto::ListReportsRequest) -> String {
    let f = proto::ListReportsRequest {
        page_size: 0,
        page_token: String::new(),
        ..r.clone()
    };
    let digest = <sha2::Sha256 as sha2::Digest>::digest(f.encode_to_vec());
    hex::encode(&digest[..8])
}

use super::watch::WatchStream;

#[tonic::async_trait]
impl UnderwritingService for UnderwritingApi {
    async fn submit_application(
        &self,
        request: Request<proto::SubmitApplicationRequest>,
    ) -> Result<Response<proto::SubmitApplicationResponse>, Status> {
        let deadline = caller_deadline(&request);
        let r = request.get_ref();
        let validated = self.validate_source(&r.idempotency_key, true, r.source.as_ref())?;
        self.may_submit(&request, &validated)?;
        let principal = Principal::of_grpc(&request);
        let accepted = within_deadline(
            deadline,
            self.accept(
                &principal,
                &r.idempotency_key,
                &r.source,
                &validated,
                Duration::ZERO,
            ),
        )
        .await?;
        let (id, status, replayed) = match accepted {
            Accepted::New { id } => (id, dossier_core::domain::ApplicationStatus::Pending, false),
            Accepted::Replayed { id, status } => (id, status, true),
            Accepted::Conflict => unreachable!("conflicts are refused in accept"),
        };
        note_application(&request, id);
        within_deadline(
            reply_by(deadline),
            accesses::applications(&self.access_log, &principal, SUBMIT, [id]),
        )
        .await?;
        Ok(Response::new(proto::SubmitApplicationResponse {
            application_id: id.to_string(),
            status: convert::status_to_proto(status) as i32,
            replayed,
        }))
    }

    async fn evaluate_application(
        &self,
        request: Request<proto::EvaluateApplicationRequest>,
    ) -> Result<Response<proto::EvaluateApplicationResponse>, Status> {
        let deadline = caller_deadline(&request);
        let r = request.get_ref();
        // Same payload shape as SubmitApplication, so idempotency spans both RPCs.
        let source = r.source.clone().map(|s| match s {
            proto::evaluate_application_request::Source::Application(a) => {
                proto::submit_application_request::Source::Application(a)
            }
            proto::evaluate_application_request::Source::RailsApplicationId(id) => {
                proto::submit_application_request::Source::RailsApplicationId(id)
            }
        });
        let validated = self.validate_source(&r.idempotency_key, false, source.as_ref())?;
        self.may_submit(&request, &validated)?;
        let key = if r.idempotency_key.is_empty() {
            format!("evaluate-{}", Uuid::now_v7())
        } else {
            r.idempotency_key.clone()
        };
        // Persist with a job delayed past this call's budget: if this pod dies
        // mid-evaluation a worker finishes it, so an accepted application is always
        // decided; if it does not, the job is closed below without running.
        let budget = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(5);
        let principal = Principal::of_grpc(&request);
        let accepted = within_deadline(
            deadline,
            self.accept(&principal, &key, &source, &validated, budget),
        )
        .await?;
        let id = match accepted {
            Accepted::New { id } | Accepted::Replayed { id, .. } => id,
            Accepted::Conflict => unreachable!("conflicts are refused in accept"),
        };
        note_application(&request, id);
        // A new inline application is still in hand: no need to read it back.
        let known = match (&accepted, validated) {
            (Accepted::New { .. }, Validated::Inline(app)) => Some(*app),
            _ => None,
        };
        let report = self
            .underwriter
            .evaluate_known(id, known, RunReason::Initial, Some(deadline))
            .await
            .map_err(ApiError::from)?;
        within_deadline(
            reply_by(deadline),
            accesses::applications(&self.access_log, &principal, EVALUATE, [id]),
        )
        .await?;
        Ok(Response::new(proto::EvaluateApplicationResponse {
            report: Some(convert::report(&report, &self.underwriter.notices)),
        }))
    }

    async fn get_report(
        &self,
        request: Request<proto::GetReportRequest>,
    ) -> Result<Response<proto::GetReportResponse>, Status> {
        let id = parse_id(&request.get_ref().application_id, "application_id")?;
        note_application(&request, id);
        let principal = Principal::of_grpc(&request);
        let report = self.load_report(&principal, id).await?;
        accesses::applications(&self.access_log, &principal, GET_REPORT, [id]).await?;
        Ok(Response::new(proto::GetReportResponse {
            report: Some(convert::report(&report, &self.underwriter.notices)),
        }))
    }

    async fn list_reports(
        &self,
        request: Request<proto::ListReportsRequest>,
    ) -> Result<Response<proto::ListReportsResponse>, Status> {
        let r = request.get_ref();
        let mut violations = Vec::new();
        if r.page_size < 0 || i64::from(r.page_size) > MAX_PAGE_SIZE {
            violations.push(tonic_types::FieldViolation::new(
                "page_size",
                format!("must be between 0 and {MAX_PAGE_SIZE}"),
            ));
        }
        let status = proto::ApplicationStatus::try_from(r.status).ok();
        if status.is_none() {
            violations.push(tonic_types::FieldViolation::new(
                "status",
                "is not an ApplicationStatus",
            ));
        }
        let decision = proto::Decision::try_from(r.decision).ok();
        if decision.is_none() {
            violations.push(tonic_types::FieldViolation::new(
                "decision",
                "is not a Decision",
            ));
        }
        let created_after = r.created_after.as_ref().map(convert::from_timestamp);
        let created_before = r.created_before.as_ref().map(convert::from_timestamp);
        if matches!(created_after, Some(None)) {
            violations.push(tonic_types::FieldViolation::new(
                "created_after",
                "is not a valid timestamp",
            ));
        }
        if matches!(created_before, Some(None)) {
            violations.push(tonic_types::FieldViolation::new(
                "created_before",
                "is not a valid timestamp",
            ));
        }
        let fingerprint = filter_fingerprint(r);
        let principal = Principal::of_grpc(&request);
        let caller = &principal.caller;
        let vault = &self.underwriter.store.vault;
        let after = if r.page_token.is_empty() {
            None
        } else {
            match page_token::decode(vault, caller, &r.page_token, &fingerprint) {
                Ok(t) => Some((t.c, t.i)),
                Err(page_token::Refused::OtherFilters) => {
                    violations.push(tonic_types::FieldViolation::new(
                        "page_token",
                        "was issued for different filters; repeat the filters of the first request",
                    ));
                    None
                }
                Err(page_token::Refused::NotIssued) => {
                    violations.push(tonic_types::FieldViolation::new(
                        "page_token",
                        "is not a token this service issued to this caller; start the listing again without one",
                    ));
                    None
                }
            }
        };
        if !violations.is_empty() {
            return Err(error::invalid(violations));
        }
        let limit = if r.page_size == 0 {
            DEFAULT_PAGE_SIZE
        } else {
            i64::from(r.page_size)
        };
        let filter = ListFilter {
            status: status.and_then(convert::status_from_proto),
            decision: decision.and_then(convert::decision_from_proto),
            created_after: created_after.flatten(),
            created_before: created_before.flatten(),
            after,
            submitted_by: principal.read_scope().map(str::to_owned),
            // One extra row tells whether another page exists.
            limit: limit + 1,
        };
        let mut rows = self
            .underwriter
            .store
            .list_reports(&filter)
            .await
            .map_err(ApiError::from)?;
        let next_page_token = if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            let last = rows.last().expect("limit is at least 1");
            let token = page_token::PageToken {
                c: last.created_at,
                i: last.application_id,
                f: fingerprint,
            };
            page_token::encode(vault, caller, &token)
        } else {
            String::new()
        };
        let listed = rows.iter().map(|row| row.application_id);
        accesses::applications(&self.access_log, &principal, LIST_REPORTS, listed).await?;
        Ok(Response::new(proto::ListReportsResponse {
            reports: rows.iter().map(convert::summary).collect(),
            next_page_token,
        }))
    }

    async fn review_application(
        &self,
        request: Request<proto::ReviewApplicationRequest>,
    ) -> Result<Response<proto::ReviewApplicationResponse>, Status> {
        // Who reviews is proven, not asserted: before anything else is looked at.
        let reviewer = self.reviewer(&request)?.subject;
        let r = request.get_ref();
        let mut violations = Vec::new();
        let id = Uuid::parse_str(&r.application_id).ok();
        if id.is_none() {
            violations.push(tonic_types::FieldViolation::new(
                "application_id",
                "must be an application id (a UUID)",
            ));
        }
        let approve = match proto::ReviewOutcome::try_from(r.outcome) {
            Ok(proto::ReviewOutcome::Approve) => Some(true),
            Ok(proto::ReviewOutcome::Decline) => Some(false),
            _ => {
                violations.push(tonic_types::FieldViolation::new(
                    "outcome",
                    "must be REVIEW_OUTCOME_APPROVE or REVIEW_OUTCOME_DECLINE",
                ));
                None
            }
        };
        let mut v = validate::Violations::new();
        let note = v.required_text("note", &r.note, 2000);
        if let Err(more) = v.into_result(()) {
            violations.extend(validate::field_violations(more));
        }
        let (Some(id), Some(approve)) = (id, approve) else {
            return Err(error::invalid(violations));
        };
        if !violations.is_empty() {
            return Err(error::invalid(violations));
        }
        note_application(&request, id);
        let principal = Principal::of_grpc(&request);
        if principal.read_scope().is_some() {
            self.load_report(&principal, id).await?;
        }
        use dossier_store::reports::Reviewed;
        match self
            .underwriter
            .store
            .record_review(
                id,
                approve,
                &note,
                &reviewer,
                dossier_upstream::trace_context::current_traceparent().as_deref(),
            )
            .await
            .map_err(ApiError::from)?
        {
            Reviewed::Recorded => {
                let outcome = if approve { "approve" } else { "decline" };
                metrics::counter!("dossier_reviews_total", "outcome" => outcome).increment(1);
                let caller = crate::identity::Caller::of_grpc(&request);
                tracing::info!(application_id = %id, reviewer = %reviewer, %caller, approve, "underwriter review recorded");
            }
            Reviewed::NotFound => {
                return Err(Status::not_found(format!(
                    "application {id} does not exist"
                )));
            }
            Reviewed::NotReferred(None) => {
                return Err(Status::failed_precondition(format!(
                    "application {id} has no decision yet; only REFER decisions are reviewed"
                )));
            }
            Reviewed::NotReferred(Some(d)) => {
                return Err(Status::failed_precondition(format!(
                    "application {id} was {}, not referred; only REFER decisions are reviewed",
                    d.as_str().to_uppercase()
                )));
            }
            Reviewed::AlreadyReviewed => {
                return Err(Status::failed_precondition(format!(
                    "application {id} has already been reviewed; a review is final"
                )));
            }
        }
        let report = self.load_report(&principal, id).await?;
        accesses::applications(&self.access_log, &principal, REVIEW, [id]).await?;
        Ok(Response::new(proto::ReviewApplicationResponse {
            report: Some(convert::report(&report, &self.underwriter.notices)),
        }))
    }

    async fn refresh_application(
        &self,
        request: Request<proto::RefreshApplicationRequest>,
    ) -> Result<Response<proto::RefreshApplicationResponse>, Status> {
        let deadline = caller_deadline(&request);
        let id = parse_id(&request.get_ref().application_id, "application_id")?;
        note_application(&request, id);
        let principal = Principal::of_grpc(&request);
        if principal.read_scope().is_some() {
            self.load_report(&principal, id).await?;
        }
        let report = self
            .underwriter
            .refresh(id, Some(deadline))
            .await
            .map_err(ApiError::from)?;
        accesses::applications(&self.access_log, &principal, REFRESH, [id]).await?;
        Ok(Response::new(proto::RefreshApplicationResponse {
            report: Some(convert::report(&report, &self.underwriter.notices)),
        }))
    }

    async fn prepare_funding(
        &self,
        request: Request<proto::PrepareFundingRequest>,
    ) -> Result<Response<proto::PrepareFundingResponse>, Status> {
        super::funding::prepare_funding(self, request).await
    }

    async fn review_funding(
        &self,
        request: Request<proto::ReviewFundingRequest>,
    ) -> Result<Response<proto::ReviewFundingResponse>, Status> {
        super::funding::review_funding(self, request).await
    }

    type WatchReportStream = WatchStream;

    async fn watch_report(
        &self,
        request: Request<proto::WatchReportRequest>,
    ) -> Result<Response<Self::WatchReportStream>, Status> {
        super::watch::watch_report(self, request).await
    }
}
