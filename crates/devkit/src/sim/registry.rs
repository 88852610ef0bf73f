//! Simulated business registry (secretary of state): `GET /v1/businesses?name=&state=`.
//! Triggers are words the business name contains, case-insensitively.

use std::sync::Arc;

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::SimState;
use super::seed::{self, Dice, FIRST_NAMES, LAST_NAMES, normalise, title_case};
use dossier_upstream::registry::BusinessRecord;

pub(crate) fn routes() -> Router<Arc<SimState>> {
    Router::new().route("/v1/businesses", get(get_business))
}

#[derive(Deserialize)]
struct BusinessQuery {
    name: String,
    state: String,
}

async fn get_business(query: Result<Query<BusinessQuery>, QueryRejection>) -> Response {
    let Query(q) = match query {
        Ok(q) => q,
        Err(rejection) => return super::bad_request(rejection.body_text()),
    };
    match business_for(&q.name, &q.state) {
        Some(record) => Json(record).into_response(),
        None => super::json_error(StatusCode::NOT_FOUND, "business_not_found"),
    }
}

/// What the registry simulator answers for a business; `None` means 404.
///
/// The record's `name` is the queried name with whitespace trimmed and collapsed (its case
/// is kept), so a lookup of a name always finds that same name.
pub fn business_for(name: &str, state: &str) -> Option<BusinessRecord> {
    let upper = normalise(name);
    if upper.is_empty() || upper.contains("UNREGISTERED") {
        return None;
    }
    let status = if upper.contains("DISSOLVED") {
        "DISSOLVED"
    } else if upper.contains("SUSPENDED") {
        "SUSPENDED"
    } else {
        "ACTIVE"
    };
    let jurisdiction = normalise(state);
    let mut d = Dice::new("registry", &[&upper, &jurisdiction]);
    let formed_on = seed::days_ago(d.range(2 * 365, 25 * 365) as u64);
    let officers = (0..d.range(1, 3))
        .map(|_| {
            let first = *d.pick(FIRST_NAMES);
            let last = *d.pick(LAST_NAMES);
            format!("{} {}", title_case(first), title_case(last))
        })
        .collect();
    Some(BusinessRecord {
        name: name.split_whitespace().collect::<Vec<_>>().join(" "),
        status: status.to_string(),
        formed_on,
        jurisdiction,
        officers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_business_is_active() {
        let r = business_for(" Golden  State Solar Inc", "ca").unwrap();
        assert_eq!(r.name, "Golden State Solar Inc");
        assert_eq!(r.status, "ACTIVE");
        assert_eq!(r.jurisdiction, "CA");
        assert!((1..=3).contains(&r.officers.len()));
        assert!(r.formed_on <= seed::days_ago(2 * 365));
        assert_eq!(business_for("Golden State Solar Inc", "CA").unwrap(), r);
    }

    #[test]
    fn triggers() {
        assert!(business_for("Acme Unregistered LLC", "CA").is_none());
        assert_eq!(
            business_for("Acme dissolved LLC", "CA").unwrap().status,
            "DISSOLVED"
        );
        assert_eq!(
            business_for("AcmeSuspended LLC", "CA").unwrap().status,
            "SUSPENDED"
        );
    }
}
