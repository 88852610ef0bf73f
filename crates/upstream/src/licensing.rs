//! State contractor licence board.
//!
//! HTTP contract (served by `sim::licensing`):
//! `GET {base}/v1/licenses/{state}/{number}` → 200 [`LicenseRecord`],
//! 404 `{"error":"license_not_found"}`.

use chrono::NaiveDate;
use dossier_core::evidence;
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

// The wire types above are the vendor's; the checks see Dossier's evidence.

impl From<LicenseRecord> for evidence::LicenseRecord {
    fn from(w: LicenseRecord) -> Self {
        evidence::LicenseRecord {
            number: w.number,
            state: w.state,
            status: w.status,
            classifications: w.classifications,
            expires_on: w.expires_on,
            bonded: w.bonded,
            workers_comp: w.workers_comp,
            business_name: w.business_name,
        }
    }
}

/// Client of the contractor licence board.
#[derive(Debug, Clone)]
pub struct LicensingClient {
    layered: std::sync::Arc<super::layered::Layered>,
}

impl LicensingClient {
    pub fn new(layered: std::sync::Arc<super::layered::Layered>) -> Self {
        LicensingClient { layered }
    }

    pub async fn license(
        &self,
        state: &str,
        number: &str,
        ctx: &super::http::CallContext,
    ) -> Result<Option<super::http::Fetched<evidence::LicenseRecord>>, super::error::UpstreamError>
    {
        let (state, number) = (state.trim().to_uppercase(), number.trim().to_uppercase());
        let key = format!("{state}|{number}");
        let question = super::layered::Question {
            kind: "license",
            key,
            validate: super::layered::shape_of::<LicenseRecord>,
            send: super::layered::http_send("GET /v1/licenses/{state}/{number}", move |http| {
                http.get_segments("/v1/licenses", &[&state, &number])
            }),
        };
        self.layered
            .ask::<LicenseRecord>(question, ctx)
            .await
            .map(|found| found.map(super::http::Fetched::convert))
    }
}
