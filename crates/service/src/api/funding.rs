//! PrepareFunding: the pre-funding re-verification of an approved application
//! (`underwriting::funding`), validated and answered here.

use tonic::{Request, Response, Status};

use super::error;
use super::underwriting::{UnderwritingApi, note_application, parse_id};
use super::{accesses, convert};
use crate::identity::Principal;
use crate::proto;
use crate::underwriting::funding::FinalTerms;
use dossier_core::intake;

pub(super) const PREPARE_FUNDING: &str = "dossier.v1.UnderwritingService/PrepareFunding";

/// The final terms of the request, validated like an application's financing and
/// measures (INVALID_ARGUMENT with a field violation for each problem).
fn final_terms(
    r: &proto::PrepareFundingRequest,
    program: &dossier_core::policy::Program,
) -> Result<FinalTerms, Status> {
    let financing = r.final_financing.as_ref().map(|f| intake::FinancingDraft {
        amount_cents: f.amount_cents,
        term_years: f.term_years,
    });
    let measures: Vec<intake::MeasureDraft> = r
        .final_measures
        .iter()
        .map(super::validate::measure_draft)
        .collect();
    let (financing, measures) = intake::final_terms(financing.as_ref(), &measures, program)
        .map_err(error::invalid_draft)?;
    Ok(FinalTerms {
        financing,
        measures,
    })
}

pub(super) async fn prepare_funding(
    api: &UnderwritingApi,
    request: Request<proto::PrepareFundingRequest>,
) -> Result<Response<proto::PrepareFundingResponse>, Status> {
    let deadline = super::underwriting::caller_deadline(&request);
    let r = request.get_ref();
    let id = parse_id(&r.application_id, "application_id")?;
    note_application(&request, id);
    let terms = final_terms(r, &api.underwriter.policy.policy.program)?;
    let principal = Principal::of_grpc(&request);
    if principal.read_scope().is_some() {
        // A caller limited to some applications learns nothing of the others.
        api.load_report(&principal, id).await?;
    }
    if r.queue {
        api.underwriter
            .queue_funding_check(id, &terms)
            .await
            .map_err(|e| error::evaluate_status(&e))?;
        accesses::applications(&api.access_log, &principal, PREPARE_FUNDING, [id]).await?;
        return Ok(Response::new(proto::PrepareFundingResponse {
            funding_check: None,
            queued: true,
        }));
    }
    let outcome = api
        .underwriter
        .prepare_funding(id, terms, Some(deadline))
        .await;
    let check = match outcome.as_ref() {
        Ok(check) => check,
        Err(e) => return Err(error::evaluate_status(e)),
    };
    accesses::applications(&api.access_log, &principal, PREPARE_FUNDING, [id]).await?;
    Ok(Response::new(proto::PrepareFundingResponse {
        funding_check: Some(convert::funding_check(check, &api.underwriter.notices)),
        queued: false,
    }))
}

pub(super) const REVIEW_FUNDING: &str = "dossier.v1.UnderwritingService/ReviewFunding";

pub(super) async fn review_funding(
    api: &UnderwritingApi,
    request: Request<proto::ReviewFundingRequest>,
) -> Result<Response<proto::ReviewFundingResponse>, Status> {
    // Who reviews is proven, not asserted: before anything else is looked at.
    let reviewer = api.reviewer(&request)?.subject;
    let r = request.get_ref();
    let mut v = intake::Violations::new();
    let id = uuid::Uuid::parse_str(&r.funding_check_id).ok();
    if id.is_none() {
        v.add("funding_check_id", "must be a funding check id (a UUID)");
    }
    let clear = match proto::FundingReviewOutcome::try_from(r.outcome) {
        Ok(proto::FundingReviewOutcome::Clear) => Some(true),
        Ok(proto::FundingReviewOutcome::Decline) => Some(false),
        _ => {
            v.add(
                "outcome",
                "must be FUNDING_REVIEW_OUTCOME_CLEAR or FUNDING_REVIEW_OUTCOME_DECLINE",
            );
            None
        }
    };
    let note = v.required_text("note", &r.note, 2000);
    v.into_result(()).map_err(error::invalid_draft)?;
    let (Some(id), Some(clear)) = (id, clear) else {
        unreachable!("violations were reported above");
    };
    let principal = Principal::of_grpc(&request);
    if principal.read_scope().is_some() {
        // A caller limited to some applications resolves only their checks.
        let application_id = api
            .underwriter
            .store
            .funding_delivery(id)
            .await
            .map_err(super::error::ApiError::from)?
            .map(|n| n.check.application_id)
            .ok_or_else(|| Status::not_found(format!("funding check {id} does not exist")))?;
        api.load_report(&principal, application_id).await?;
    }
    use dossier_store::funding::Resolved;
    let resolved = api
        .underwriter
        .store
        .resolve_funding_hold(
            id,
            clear,
            &reviewer,
            &note,
            dossier_upstream::trace_context::current_traceparent().as_deref(),
        )
        .await
        .map_err(super::error::ApiError::from)?;
    let check = match resolved {
        Resolved::Recorded(check) => {
            let outcome = if clear { "clear" } else { "decline" };
            metrics::counter!("dossier_funding_reviews_total", "outcome" => outcome).increment(1);
            tracing::info!(funding_check_id = %id, application_id = %check.application_id, reviewer = %reviewer, outcome, "funding hold resolved");
            check
        }
        Resolved::NotFound => {
            return Err(Status::not_found(format!(
                "funding check {id} does not exist"
            )));
        }
        Resolved::NotAHold => {
            return Err(Status::failed_precondition(format!(
                "funding check {id} is CLEAR: only a HOLD is reviewed"
            )));
        }
        Resolved::Superseded => {
            return Err(Status::failed_precondition(format!(
                "funding check {id} was replaced by a later funding check of its application; review that one"
            )));
        }
        Resolved::AlreadyResolved(check) => {
            let by = check.resolution.map(|r| r.reviewer).unwrap_or_default();
            return Err(Status::failed_precondition(format!(
                "funding check {id} was already resolved by {by}; run PrepareFunding again for a new check"
            )));
        }
    };
    note_application(&request, check.application_id);
    accesses::applications(
        &api.access_log,
        &principal,
        REVIEW_FUNDING,
        [check.application_id],
    )
    .await?;
    Ok(Response::new(proto::ReviewFundingResponse {
        funding_check: Some(convert::funding_check(&check, &api.underwriter.notices)),
    }))
}
