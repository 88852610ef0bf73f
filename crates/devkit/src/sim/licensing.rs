//! Simulated state contractor licence board: `GET /v1/licenses/{state}/{number}`.
//! Triggers are the licence number's last two characters.

use std::sync::Arc;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::SimState;
use super::seed::{self, Dice, normalise};
use dossier_upstream::licensing::LicenseRecord;

/// Last two digits of a licence number that trigger a scenario.
#[cfg(test)]
pub(crate) const TRIGGER_ENDINGS: [&str; 5] = ["00", "99", "98", "97", "96"];

const PREFIXES: &[&str] = &[
    "Golden State",
    "Sunrise",
    "Pacific",
    "Sierra",
    "Bright Path",
    "Coastal",
    "Redwood",
    "Summit",
    "Valley",
    "Evergreen",
    "Blue Sky",
    "Westside",
    "Central Valley",
    "Mission",
];
const TRADES: &[&str] = &[
    "Solar",
    "Energy",
    "Home Performance",
    "Heating & Air",
    "Roofing",
    "Electric",
    "Builders",
    "Comfort Systems",
    "Power",
];
const ENTITY_SUFFIXES: &[&str] = &["Inc", "LLC", "Inc.", "Co"];

pub(crate) fn routes() -> Router<Arc<SimState>> {
    Router::new().route("/v1/licenses/{state}/{number}", get(get_license))
}

async fn get_license(Path((state, number)): Path<(String, String)>) -> Response {
    match license_for(&state, &number) {
        Some(record) => Json(record).into_response(),
        None => super::json_error(StatusCode::NOT_FOUND, "license_not_found"),
    }
}

/// The business a licence number belongs to (also used by the Rails simulator, so that a
/// generated contractor's name matches its licence).
pub(crate) fn business_name_for(state: &str, number: &str) -> String {
    let mut d = Dice::new("licensing-business", &[state, number]);
    format!(
        "{} {} {}",
        d.pick(PREFIXES),
        d.pick(TRADES),
        d.pick(ENTITY_SUFFIXES)
    )
}

/// What the licensing simulator answers for a licence; `None` means 404.
pub fn license_for(state: &str, number: &str) -> Option<LicenseRecord> {
    let state = normalise(state);
    let number = normalise(number);
    if number.is_empty() || number.ends_with("00") {
        return None;
    }
    let mut d = Dice::new("licensing", &[&state, &number]);
    let all = ["B", "C-10", "C-20", "C-39", "C-46"];
    let mut record = LicenseRecord {
        number: number.clone(),
        state: state.clone(),
        status: "ACTIVE".to_string(),
        classifications: all.iter().map(|c| c.to_string()).collect(),
        expires_on: seed::days_ahead(d.range(365, 3 * 365) as u64),
        bonded: true,
        workers_comp: true,
        business_name: business_name_for(&state, &number),
    };
    if number.ends_with("99") {
        record.status = "EXPIRED".to_string();
        record.expires_on = seed::months_ago(3);
    } else if number.ends_with("98") {
        record.status = "SUSPENDED".to_string();
    } else if number.ends_with("97") {
        record.bonded = false;
    } else if number.ends_with("96") {
        record.classifications = vec!["C-10".to_string()];
    }
    Some(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_licence_is_active() {
        for n in 100_001..100_095 {
            let r = license_for("ca", &n.to_string()).unwrap();
            assert_eq!(r.status, "ACTIVE");
            assert_eq!(r.state, "CA");
            assert!(r.bonded && r.workers_comp);
            assert_eq!(r.classifications, ["B", "C-10", "C-20", "C-39", "C-46"]);
            assert!(r.expires_on >= seed::days_ahead(365));
            assert!(r.expires_on <= seed::days_ahead(3 * 365));
            assert_eq!(r.business_name, business_name_for("CA", &n.to_string()));
            assert_eq!(license_for("CA", &n.to_string()).unwrap(), r);
        }
    }

    #[test]
    fn triggers() {
        assert!(license_for("CA", "123400").is_none());
        let r = license_for("CA", "123499").unwrap();
        assert_eq!(r.status, "EXPIRED");
        assert_eq!(r.expires_on, seed::months_ago(3));
        assert_eq!(license_for("CA", "123498").unwrap().status, "SUSPENDED");
        let r = license_for("CA", "123497").unwrap();
        assert_eq!((r.status.as_str(), r.bonded), ("ACTIVE", false));
        let r = license_for("CA", "123496").unwrap();
        assert_eq!(r.status, "ACTIVE");
        assert_eq!(r.classifications, ["C-10"]);
    }
}
