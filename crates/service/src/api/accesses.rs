//! Recording accesses before answering: every call that hands out an application or a
//! person's data leaves a row in the access log first (`dossier_store::access_log`). If
//! the row cannot be written the caller gets UNAVAILABLE, not the data.

use tonic::Status;
use uuid::Uuid;

use super::error::ApiError;
use crate::identity::Principal;
use dossier_store::access_log::{Access, AccessLog};

/// Records `principal`'s access through `method` (`package.Service/Method`) to these
/// applications.
pub async fn applications(
    log: &AccessLog,
    principal: &Principal,
    method: &'static str,
    ids: impl IntoIterator<Item = Uuid>,
) -> Result<(), Status> {
    let now = chrono::Utc::now();
    let caller_id = principal.spiffe_id();
    let rows = ids
        .into_iter()
        .map(|id| Access {
            caller: principal.name.to_string(),
            caller_id: caller_id.clone(),
            method,
            application_id: Some(id),
            person_ref: None,
            purpose: None,
            accessed_at: now,
        })
        .collect();
    log.record(rows).await.map_err(|e| ApiError::from(e).into())
}

/// Records a person look-up: `person_ref` is the keyed hash of the SSN.
pub async fn person(
    log: &AccessLog,
    principal: &Principal,
    method: &'static str,
    person_ref: Vec<u8>,
    purpose: &str,
) -> Result<(), Status> {
    let row = Access {
        caller: principal.name.to_string(),
        caller_id: principal.spiffe_id(),
        method,
        application_id: None,
        person_ref: Some(person_ref),
        purpose: Some(purpose.to_owned()),
        accessed_at: chrono::Utc::now(),
    };
    log.record(vec![row])
        .await
        .map_err(|e| ApiError::from(e).into())
}
