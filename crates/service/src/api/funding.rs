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
        funding_check: Some(convert::funding_check(check)),
    }))
}
