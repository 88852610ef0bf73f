//! Automated valuation model (AVM).
//!
//! HTTP contract (served by `sim::valuation`):
//! `GET {base}/v1/avm?line1=&city=&state=&postal_code=`
//! → 200 [`AvmEstimate`], 404 `{"error":"no_valuation"}` when the model has no estimate.

use chrono::NaiveDate;
use dossier_core::evidence;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AvmEstimate {
    pub value_cents: i64,
    /// 0–100.
    pub confidence: u32,
    pub low_cents: i64,
    pub high_cents: i64,
    pub as_of: NaiveDate,
}

// The wire types above are the vendor's; the checks see Dossier's evidence.

impl From<AvmEstimate> for evidence::AvmEstimate {
    fn from(w: AvmEstimate) -> Self {
        evidence::AvmEstimate {
            value_cents: w.value_cents,
            confidence: w.confidence,
            low_cents: w.low_cents,
            high_cents: w.high_cents,
            as_of: w.as_of,
        }
    }
}

/// Client of the AVM vendor.
#[derive(Debug, Clone)]
pub struct ValuationClient {
    layered: std::sync::Arc<super::layered::Layered>,
}

impl ValuationClient {
    pub fn new(layered: std::sync::Arc<super::layered::Layered>) -> Self {
        ValuationClient { layered }
    }

    pub async fn estimate(
        &self,
        query: &super::property_records::PropertyQuery,
        ctx: &super::http::CallContext,
    ) -> Result<Option<super::http::Fetched<evidence::AvmEstimate>>, super::error::UpstreamError>
    {
        let n = super::property_records::normalised(query);
        let key = format!("{}|{}|{}|{}", n.line1, n.city, n.state, n.postal_code);
        let q = query.clone();
        let question = super::layered::Question {
            kind: "avm",
            key,
            validate: super::layered::shape_of::<AvmEstimate>,
            send: super::layered::http_send("GET /v1/avm", move |http| {
                Ok(http.get("/v1/avm").query(&[
                    ("line1", &q.line1),
                    ("city", &q.city),
                    ("state", &q.state),
                    ("postal_code", &q.postal_code),
                ]))
            }),
        };
        self.layered
            .ask::<AvmEstimate>(question, ctx)
            .await
            .map(|found| found.map(super::http::Fetched::convert))
    }
}
