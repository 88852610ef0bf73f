//! Automated valuation model (AVM).
//!
//! HTTP contract (served by `sim::valuation`):
//! `GET {base}/v1/avm?line1=&city=&state=&postal_code=`
//! → 200 [`AvmEstimate`], 404 `{"error":"no_valuation"}` when the model has no estimate.

use chrono::NaiveDate;
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

/// Client of the AVM vendor.
#[derive(Debug, Clone)]
pub struct ValuationClient {
    http: super::http::HttpUpstream,
}

impl ValuationClient {
    pub fn new(http: super::http::HttpUpstream) -> Self {
        ValuationClient { http }
    }

    pub async fn estimate(
        &self,
        query: &super::property_records::PropertyQuery,
        ctx: &super::http::CallContext,
    ) -> Result<Option<super::http::Fetched<AvmEstimate>>, super::error::UpstreamError> {
        let request = self.http.get("/v1/avm").query(&[
            ("line1", &query.line1),
            ("city", &query.city),
            ("state", &query.state),
            ("postal_code", &query.postal_code),
        ]);
        self.http.send_json("GET /v1/avm", request, ctx).await
    }
}
