//! The lender's Ruby on Rails backend.
//!
//! HTTP contract (served by `sim::rails`):
//! `GET {base}/api/v1/pace_applications/{id}` → 200 [`RailsApplication`],
//! 404 `{"error":"not_found"}`.
//! Requests carry `Authorization: Bearer {credential}`.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// An application as the Rails backend serialises it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RailsApplication {
    pub id: String,
    pub applicants: Vec<RailsApplicant>,
    pub property: RailsProperty,
    pub contractor: RailsContractor,
    pub measures: Vec<RailsMeasure>,
    pub amount_cents: i64,
    pub term_years: i32,
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct RailsApplicant {
    pub first_name: String,
    #[serde(default)]
    pub middle_name: String,
    pub last_name: String,
    #[serde(default)]
    pub suffix: String,
    pub ssn: String,
    pub date_of_birth: NaiveDate,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub stated_annual_income_cents: i64,
}

impl std::fmt::Debug for RailsApplicant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RailsApplicant")
            .field("first_name", &self.first_name)
            .field("last_name", &self.last_name)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RailsProperty {
    pub line1: String,
    #[serde(default)]
    pub line2: String,
    pub city: String,
    pub state: String,
    pub postal_code: String,
    #[serde(default)]
    pub apn: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RailsContractor {
    pub business_name: String,
    pub license_number: String,
    pub license_state: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RailsMeasure {
    /// "solar_pv", "battery_storage", "hvac", "roof", "windows", "insulation",
    /// "water_heater", "seismic_retrofit".
    pub kind: String,
    pub cost_cents: i64,
    #[serde(default)]
    pub description: String,
}

/// Client of the Rails backend.
#[derive(Debug, Clone)]
pub struct RailsClient {
    layered: std::sync::Arc<super::layered::Layered>,
}

impl RailsClient {
    pub fn new(layered: std::sync::Arc<super::layered::Layered>) -> Self {
        RailsClient { layered }
    }

    pub async fn application(
        &self,
        id: &str,
        ctx: &super::http::CallContext,
    ) -> Result<Option<super::http::Fetched<RailsApplication>>, super::error::UpstreamError> {
        let owned = id.to_owned();
        let question = super::layered::Question {
            kind: "application",
            key: id.to_owned(),
            validate: super::layered::shape_of::<RailsApplication>,
            send: super::layered::http_send("GET /api/v1/pace_applications/{id}", move |http| {
                http.get_segments("/api/v1/pace_applications", &[&owned])
            }),
        };
        self.layered.ask(question, ctx).await
    }
}
