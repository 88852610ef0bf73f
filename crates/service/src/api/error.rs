//! One place where failures become gRPC statuses, with messages for operators and
//! callers. Internal details are logged, not sent.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::underwriting::EvaluateError;
use dossier_store::StoreError;

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

pub fn invalid_field(field: &str, description: &str) -> Status {
    invalid(vec![FieldViolation::new(field, description)])
}

pub fn store(e: StoreError) -> Status {
    if e.is_unavailable() {
        tracing::warn!(error = %e, "database unavailable");
        Status::unavailable("the database is unavailable; retry with backoff")
    } else {
        tracing::error!(error = %e, "database operation failed");
        Status::internal("internal error while reading or writing the database; it has been logged")
    }
}

pub fn evaluate(e: EvaluateError) -> Status {
    match e {
        EvaluateError::Store(e) => store(e),
        EvaluateError::NotFound(id) => {
            Status::not_found(format!("application {id} does not exist"))
        }
        EvaluateError::RailsNotFound(id) => {
            Status::not_found(format!("the Rails backend has no application {id}"))
        }
        EvaluateError::RailsInvalid(why) => Status::failed_precondition(format!(
            "the application the Rails backend returned cannot be underwritten: {why}"
        )),
        EvaluateError::NotDecided(id) => Status::failed_precondition(format!(
            "application {id} has no decision yet; refresh it once it is decided"
        )),
        EvaluateError::Replay(why) => Status::failed_precondition(why),
        EvaluateError::UnknownJob(kind) => Status::internal(format!("unknown job kind {kind:?}")),
        EvaluateError::Rails(e) => {
            tracing::warn!(error = %e, "Rails fetch failed");
            Status::unavailable(format!(
                "fetching the application from the Rails backend failed: {e}"
            ))
        }
    }
}
