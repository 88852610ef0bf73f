//! Identity verification and bankruptcy search.
//!
//! HTTP contract (served by `sim::identity`). Requests carry an SSN, so they are POSTs
//! with a JSON body (never a query string that proxies would log); both are read-only
//! look-ups and therefore safe to retry.
//! - `POST {base}/v1/identity/verify` body [`PersonQuery`] → 200 [`IdentityResult`]
//! - `POST {base}/v1/bankruptcies/search` body [`PersonQuery`] → 200 [`BankruptcySearch`]

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// The question asked about a person. Holds PII: never log it, never derive `Debug` output
/// into logs (the manual `Debug` below redacts).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PersonQuery {
    pub first_name: String,
    #[serde(default)]
    pub middle_name: String,
    pub last_name: String,
    /// Nine digits, no dashes.
    pub ssn: String,
    pub date_of_birth: NaiveDate,
    pub line1: String,
    pub city: String,
    pub state: String,
    pub postal_code: String,
}

impl std::fmt::Debug for PersonQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersonQuery")
            .field("first_name", &self.first_name)
            .field("last_name", &self.last_name)
            .field("ssn", &"<redacted>")
            .field("date_of_birth", &"<redacted>")
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentityResult {
    /// 0–100.
    pub score: u32,
    /// e.g. "SSN_DECEASED", "ADDRESS_MISMATCH", "SSN_MULTIPLE_IDENTITIES".
    pub flags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BankruptcySearch {
    pub filings: Vec<BankruptcyFiling>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BankruptcyFiling {
    /// 7, 11 or 13.
    pub chapter: u32,
    pub filed_on: NaiveDate,
    /// "OPEN", "DISCHARGED", "DISMISSED".
    pub disposition: String,
    pub closed_on: Option<NaiveDate>,
}

/// Client of the identity vendor.
#[derive(Debug, Clone)]
pub struct IdentityClient {
    http: super::http::HttpUpstream,
}

impl IdentityClient {
    pub fn new(http: super::http::HttpUpstream) -> Self {
        IdentityClient { http }
    }

    pub async fn verify(
        &self,
        query: &PersonQuery,
        ctx: &super::http::CallContext,
    ) -> Result<super::http::Fetched<IdentityResult>, super::error::UpstreamError> {
        let request = self.http.post("/v1/identity/verify").json(query);
        self.http
            .send_json("POST /v1/identity/verify", request, ctx)
            .await?
            .ok_or(super::error::UpstreamError::Status {
                upstream: "identity",
                status: 404,
                snippet: "identity verification endpoint not found; check the identity base URL"
                    .into(),
            })
    }

    pub async fn bankruptcies(
        &self,
        query: &PersonQuery,
        ctx: &super::http::CallContext,
    ) -> Result<super::http::Fetched<BankruptcySearch>, super::error::UpstreamError> {
        let request = self.http.post("/v1/bankruptcies/search").json(query);
        self.http
            .send_json("POST /v1/bankruptcies/search", request, ctx)
            .await?
            .ok_or(super::error::UpstreamError::Status {
                upstream: "identity",
                status: 404,
                snippet: "bankruptcy search endpoint not found; check the identity base URL".into(),
            })
    }
}
