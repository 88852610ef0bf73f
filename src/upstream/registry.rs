//! Business registry (secretary of state).
//!
//! HTTP contract (served by `sim::registry`):
//! `GET {base}/v1/businesses?name=&state=` → 200 [`BusinessRecord`],
//! 404 `{"error":"business_not_found"}`.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BusinessRecord {
    pub name: String,
    /// "ACTIVE", "SUSPENDED", "DISSOLVED".
    pub status: String,
    pub formed_on: NaiveDate,
    pub jurisdiction: String,
    pub officers: Vec<String>,
}

/// Client of the business registry.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    http: super::http::HttpUpstream,
}

impl RegistryClient {
    pub fn new(http: super::http::HttpUpstream) -> Self {
        RegistryClient { http }
    }

    pub async fn business(
        &self,
        name: &str,
        state: &str,
        ctx: &super::http::CallContext,
    ) -> Result<Option<super::http::Fetched<BusinessRecord>>, super::error::UpstreamError> {
        let request = self
            .http
            .get("/v1/businesses")
            .query(&[("name", name), ("state", state)]);
        self.http
            .send_json("GET /v1/businesses", request, ctx)
            .await
    }
}
