//! State contractor licence board.
//!
//! HTTP contract (served by `sim::licensing`):
//! `GET {base}/v1/licenses/{state}/{number}` → 200 [`LicenseRecord`],
//! 404 `{"error":"license_not_found"}`.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LicenseRecord {
    pub number: String,
    pub state: String,
    /// "ACTIVE", "EXPIRED", "SUSPENDED", "REVOKED".
    pub status: String,
    /// e.g. "B" (general building), "C-10" (electrical), "C-20" (HVAC), "C-39" (roofing),
    /// "C-46" (solar).
    pub classifications: Vec<String>,
    pub expires_on: NaiveDate,
    pub bonded: bool,
    pub workers_comp: bool,
    pub business_name: String,
}

/// Client of the contractor licence board.
#[derive(Debug, Clone)]
pub struct LicensingClient {
    http: super::http::HttpUpstream,
}

impl LicensingClient {
    pub fn new(http: super::http::HttpUpstream) -> Self {
        LicensingClient { http }
    }

    pub async fn license(
        &self,
        state: &str,
        number: &str,
        ctx: &super::http::CallContext,
    ) -> Result<Option<super::http::Fetched<LicenseRecord>>, super::error::UpstreamError> {
        let request = self.http.get_segments("/v1/licenses", &[state, number])?;
        self.http
            .send_json("GET /v1/licenses/{state}/{number}", request, ctx)
            .await
    }
}
