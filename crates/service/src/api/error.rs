//! One place where failures become gRPC statuses, with messages for operators and
//! callers. Internal details are logged, not sent.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::underwriting::EvaluateError;
use dossier_store::StoreError;
use dossier_upstream::UpstreamError;

pub fn invalid(violations: Vec<FieldViolation>) -> Status {
    let summary = violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ");
    Status::with_error_details(
        Code::InvalidArgument,
        format!("invalid request: {summary}"),
        ErrorDetails::with_bad_request(violations),
    )
}

/// INVALID_ARGUMENT for intake's violations.
pub fn invalid_draft(violations: Vec<dossier_core::intake::Violation>) -> Status {
    invalid(super::validate::field_violations(violations))
}

pub fn invalid_field(field: &str, description: &str) -> Status {
    invalid(vec![FieldViolation::new(field, description)])
}

/// Every failure an RPC answers with besides invalid input, mapped to a gRPC status in
/// one place (`From<ApiError> for Status`). The store's and the upstreams' error types
/// know nothing of gRPC, so the mapping lives here rather than beside them; handlers
/// convert with `map_err(ApiError::from)?`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Evaluate(#[from] EvaluateError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

impl From<EvaluateError> for Status {
    fn from(e: EvaluateError) -> Status {
        ApiError::from(e).into()
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        match e {
            ApiError::Store(e) => store(&e),
            ApiError::Evaluate(e) => evaluate_status(&e),
            ApiError::Upstream(e) => upstream(e),
        }
    }
}

fn store(e: &StoreError) -> Status {
    if e.is_unavailable() {
        tracing::warn!(error = %e, "database unavailable");
        Status::unavailable("the database is unavailable; retry with backoff")
    } else {
        tracing::error!(error = %e, "database operation failed");
        Status::internal("internal error while reading or writing the database; it has been logged")
    }
}

/// The status of an underwriting failure (by reference: a PrepareFunding outcome is
/// shared by every caller that joined it).
pub fn evaluate_status(e: &EvaluateError) -> Status {
    match e {
        EvaluateError::Store(e) => store(e),
        EvaluateError::NotApproved { .. } => Status::failed_precondition(e.to_string()),
        EvaluateError::Internal(why) => Status::internal(why.clone()),
        EvaluateError::NotFound(id) => {
            Status::not_found(format!("application {id} does not exist"))
        }
        EvaluateError::RailsNotFound(id) => {
            Status::not_found(format!("the Rails backend has no application {id}"))
        }
        EvaluateError::RailsInvalid(violations) => Status::failed_precondition(format!(
            "the application the Rails backend returned cannot be underwritten: {}; fix it in Rails and submit it again",
            violations
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )),
        EvaluateError::NotDecided(id) => Status::failed_precondition(format!(
            "application {id} has no decision yet; refresh it once it is decided"
        )),
        EvaluateError::Replay(why) => Status::failed_precondition(why.clone()),
        EvaluateError::Rails(e) => {
            tracing::warn!(error = %e, "Rails fetch failed");
            Status::unavailable(format!(
                "fetching the application from the Rails backend failed: {e}"
            ))
        }
    }
}

/// A data look-up's upstream failure: RESOURCE_EXHAUSTED with RetryInfo when rate
/// limited, DEADLINE_EXCEEDED when out of time, UNAVAILABLE otherwise.
fn upstream(e: UpstreamError) -> Status {
    match e {
        UpstreamError::RateLimited { retry_after, .. } => Status::with_error_details(
            Code::ResourceExhausted,
            format!("{e}; retry later"),
            ErrorDetails::with_retry_info(retry_after),
        ),
        UpstreamError::DeadlineExceeded { .. } | UpstreamError::Timeout { .. } => {
            Status::deadline_exceeded(e.to_string())
        }
        _ => Status::unavailable(e.to_string()),
    }
}
