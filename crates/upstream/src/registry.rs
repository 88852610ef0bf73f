//! Business registry (secretary of state).
//!
//! HTTP contract (served by `sim::registry`):
//! `GET {base}/v1/businesses?name=&state=` → 200 [`BusinessRecord`],
//! 404 `{"error":"business_not_found"}`.

use chrono::NaiveDate;
use dossier_core::evidence;
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

// The wire types above are the vendor's; the checks see Dossier's evidence.

impl From<BusinessRecord> for evidence::BusinessRecord {
    fn from(w: BusinessRecord) -> Self {
        evidence::BusinessRecord {
            name: w.name,
            status: w.status,
            formed_on: w.formed_on,
            jurisdiction: w.jurisdiction,
            officers: w.officers,
        }
    }
}

/// Client of the business registry.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    layered: std::sync::Arc<super::layered::Layered>,
}

impl RegistryClient {
    pub fn new(layered: std::sync::Arc<super::layered::Layered>) -> Self {
        RegistryClient { layered }
    }

    pub async fn business(
        &self,
        name: &str,
        state: &str,
        ctx: &super::http::CallContext,
    ) -> Result<Option<super::http::Fetched<evidence::BusinessRecord>>, super::error::UpstreamError>
    {
        let (name, state) = (name.trim().to_owned(), state.trim().to_uppercase());
        let key = format!(
            "{}|{state}",
            name.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_uppercase()
        );
        let question = super::layered::Question {
            kind: "business",
            key,
            validate: super::layered::shape_of::<BusinessRecord>,
            send: super::layered::http_send("GET /v1/businesses", move |http| {
                Ok(http
                    .get("/v1/businesses")
                    .query(&[("name", &name), ("state", &state)]))
            }),
        };
        self.layered
            .ask::<BusinessRecord>(question, ctx)
            .await
            .map(|found| found.map(super::http::Fetched::convert))
    }
}
