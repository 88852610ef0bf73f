//! Simulated second AVM vendor (`Upstream::AltValuation`): the valuation wire format
//! (`GET /v1/avm?line1=&city=&state=&postal_code=`) with its own data.
//!
//! It values the same market value as the primary vendor (so the two agree within the
//! ±8 % both allow), from its own dice, and has its own trigger words: it estimates the
//! addresses the primary cannot (`NOAVM`) or is unsure of (`LOWCONF`), which is what a
//! valuation waterfall falls back to it for, and `NOALTAVM` / `ALTLOWCONF` make it the
//! one that cannot help.

use std::sync::Arc;

use axum::Router;

use super::SimState;
use super::valuation::{AvmVendor, estimate_by, routes_answering};
use dossier_upstream::valuation::AvmEstimate;

pub(crate) const ALT: AvmVendor = AvmVendor {
    dice_domain: "alt_valuation",
    confidence: (78, 95),
    no_valuation_word: "NOALTAVM",
    low_confidence_word: "ALTLOWCONF",
};

pub(crate) fn routes() -> Router<Arc<SimState>> {
    routes_answering(estimate_for)
}

/// What the second AVM vendor's simulator answers for an address; `None` means 404.
pub fn estimate_for(
    line1: &str,
    city: &str,
    state: &str,
    postal_code: &str,
) -> Option<AvmEstimate> {
    estimate_by(&ALT, line1, city, state, postal_code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::property_records::{market_value_cents, record_for};
    use crate::sim::valuation;
    use dossier_upstream::property_records::PropertyQuery;

    fn estimate(line1: &str) -> Option<AvmEstimate> {
        estimate_for(line1, "Fresno", "CA", "93721")
    }

    fn primary(line1: &str) -> Option<AvmEstimate> {
        valuation::estimate_for(line1, "Fresno", "CA", "93721")
    }

    #[test]
    fn ordinary_estimate_is_confident_close_to_market_and_its_own() {
        let mut differs_from_primary = 0;
        for n in 0..200 {
            let line1 = format!("{} Maple Ave", 100 + n);
            let e = estimate(&line1).unwrap();
            let r = record_for(&PropertyQuery {
                line1: line1.clone(),
                city: "Fresno".into(),
                state: "CA".into(),
                postal_code: "93721".into(),
                apn: String::new(),
            })
            .unwrap();
            let ratio = e.value_cents as f64 / market_value_cents(&r) as f64;
            // ±8 %, less the rounding down to whole thousands.
            assert!((0.915..=1.08).contains(&ratio), "ratio {ratio}");
            assert!((78..=95).contains(&e.confidence));
            assert!(e.low_cents <= e.value_cents && e.value_cents <= e.high_cents);
            assert_eq!(estimate(&line1), Some(e.clone()), "deterministic");
            if primary(&line1) != Some(e) {
                differs_from_primary += 1;
            }
        }
        // Its own dice: not the primary's numbers under another name.
        assert!(differs_from_primary > 150, "{differs_from_primary}");
    }

    #[test]
    fn answers_where_the_primary_cannot() {
        assert!(primary("1 Noavm St").is_none());
        assert!(estimate("1 Noavm St").unwrap().confidence >= 78);
        assert_eq!(primary("1 Lowconf St").unwrap().confidence, 40);
        assert!(estimate("1 Lowconf St").unwrap().confidence >= 78);
    }

    #[test]
    fn triggers_of_its_own() {
        assert!(estimate("1 Noaltavm St").is_none());
        assert!(primary("1 Noaltavm St").is_some());
        assert_eq!(estimate("1 Altlowconf St").unwrap().confidence, 40);
        assert!(primary("1 Altlowconf St").unwrap().confidence >= 80);
        assert!(estimate("1 Unknown St").is_none());
        // A waterfall of both vendors that no vendor can value.
        assert!(estimate("1 Noavm Noaltavm St").is_none());
        assert!(primary("1 Noavm Noaltavm St").is_none());
    }
}
