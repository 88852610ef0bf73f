//! Simulated automated valuation model: `GET /v1/avm?line1=&city=&state=&postal_code=`.
//!
//! The estimate agrees with the property records simulator: it is within ±8 % of the
//! market value (1.2 × the county's assessed value) of the same address.

use std::sync::Arc;

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::SimState;
use super::property_records::{market_value_cents, record_for};
use super::seed::{self, Dice, has_word, normalise};
use dossier_upstream::property_records::PropertyQuery;
use dossier_upstream::valuation::AvmEstimate;

pub(crate) fn routes() -> Router<Arc<SimState>> {
    routes_answering(estimate_for)
}

/// What one AVM vendor's simulator answers for an address; `None` means 404.
pub(crate) type Estimator = fn(&str, &str, &str, &str) -> Option<AvmEstimate>;

/// `GET /v1/avm` answered by `estimate`: both AVM vendors speak this wire format.
pub(crate) fn routes_answering(estimate: Estimator) -> Router<Arc<SimState>> {
    Router::new().route(
        "/v1/avm",
        get(move |query: Result<Query<PropertyQuery>, QueryRejection>| get_avm(estimate, query)),
    )
}

async fn get_avm(
    estimate: Estimator,
    query: Result<Query<PropertyQuery>, QueryRejection>,
) -> Response {
    let Query(q) = match query {
        Ok(q) => q,
        Err(rejection) => return super::bad_request(rejection.body_text()),
    };
    if q.line1.trim().is_empty() {
        return super::bad_request("line1 must not be empty");
    }
    match estimate(&q.line1, &q.city, &q.state, &q.postal_code) {
        Some(estimate) => Json(estimate).into_response(),
        None => super::json_error(StatusCode::NOT_FOUND, "no_valuation"),
    }
}

/// What sets one AVM vendor's answers apart from another's, for the same addresses.
pub(crate) struct AvmVendor {
    /// Keeps this vendor's numbers independent of the other vendor's.
    pub(crate) dice_domain: &'static str,
    /// Confidence of an ordinary estimate, inclusive.
    pub(crate) confidence: (i64, i64),
    /// The `line1` word for which this vendor has no estimate (404).
    pub(crate) no_valuation_word: &'static str,
    /// The `line1` word for which this vendor is only 40 % confident.
    pub(crate) low_confidence_word: &'static str,
}

/// The primary AVM vendor (`Upstream::Valuation`).
pub(crate) const PRIMARY: AvmVendor = AvmVendor {
    dice_domain: "valuation",
    confidence: (80, 97),
    no_valuation_word: "NOAVM",
    low_confidence_word: "LOWCONF",
};

/// What the valuation simulator answers for an address; `None` means 404.
pub fn estimate_for(
    line1: &str,
    city: &str,
    state: &str,
    postal_code: &str,
) -> Option<AvmEstimate> {
    estimate_by(&PRIMARY, line1, city, state, postal_code)
}

/// What `vendor` estimates for an address; `None` means 404. Every vendor values the
/// same market value (from the property records simulator), so their estimates agree
/// within a few percent, and none knows an address the county does not.
pub(crate) fn estimate_by(
    vendor: &AvmVendor,
    line1: &str,
    city: &str,
    state: &str,
    postal_code: &str,
) -> Option<AvmEstimate> {
    let norm_line1 = normalise(line1);
    if has_word(&norm_line1, vendor.no_valuation_word) {
        return None;
    }
    let record = record_for(&PropertyQuery {
        line1: line1.to_string(),
        city: city.to_string(),
        state: state.to_string(),
        postal_code: postal_code.to_string(),
        apn: String::new(),
    })?;

    let mut d = Dice::new(vendor.dice_domain, &[line1, city, state, postal_code]);
    let market = market_value_cents(&record);
    // Within ±8 % of the market value, rounded to whole thousands of dollars.
    let value_cents = market * d.range(92, 108) / 100 / 100_000 * 100_000;
    let confidence = if has_word(&norm_line1, vendor.low_confidence_word) {
        40
    } else {
        let (lo, hi) = vendor.confidence;
        d.range(lo, hi) as u32
    };
    // The band widens as confidence falls: ±(100 − confidence) / 2 %.
    let half_band = value_cents * (100 - confidence as i64) / 200 / 100 * 100;
    Some(AvmEstimate {
        value_cents,
        confidence,
        low_cents: value_cents - half_band,
        high_cents: value_cents + half_band,
        as_of: seed::days_ago(d.range(1, 30) as u64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::seed::dollars;

    fn estimate(line1: &str) -> Option<AvmEstimate> {
        estimate_for(line1, "Fresno", "CA", "93721")
    }

    #[test]
    fn ordinary_estimate_is_confident_and_close_to_market() {
        for n in 0..200 {
            let line1 = format!("{} Maple Ave", 100 + n);
            let e = estimate(&line1).unwrap();
            let r = record_for(&PropertyQuery {
                line1,
                city: "Fresno".into(),
                state: "CA".into(),
                postal_code: "93721".into(),
                apn: String::new(),
            })
            .unwrap();
            let market = market_value_cents(&r) as f64;
            let ratio = e.value_cents as f64 / market;
            assert!((0.9..=1.1).contains(&ratio), "ratio {ratio}");
            assert!((80..=97).contains(&e.confidence));
            assert!(e.low_cents <= e.value_cents && e.value_cents <= e.high_cents);
        }
    }

    #[test]
    fn triggers() {
        assert_eq!(estimate("1 Lowconf St").unwrap().confidence, 40);
        assert!(estimate("1 Noavm St").is_none());
        assert!(estimate("1 Unknown St").is_none());
        assert!(estimate("1 Mansion Dr").unwrap().value_cents > dollars(3_000_000));
    }
}
