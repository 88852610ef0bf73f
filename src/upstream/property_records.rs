//! County-records property data: owners, taxes, mortgages, liens, assessments.
//!
//! HTTP contract (served by `sim::property_records`):
//! `GET {base}/v1/properties?line1=&city=&state=&postal_code=[&apn=]`
//! → 200 [`PropertyRecord`], 404 `{"error":"property_not_found"}` when the county has no parcel.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// The question asked of the property records vendor.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PropertyQuery {
    pub line1: String,
    pub city: String,
    pub state: String,
    pub postal_code: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub apn: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PropertyRecord {
    pub apn: String,
    pub line1: String,
    pub city: String,
    pub state: String,
    pub postal_code: String,
    /// Owners of record as the county writes them, e.g. "SMITH, JOHN A".
    pub owners: Vec<String>,
    /// "INDIVIDUAL", "JOINT_TENANTS", "COMMUNITY_PROPERTY", "TRUST", "LLC".
    pub vesting: String,
    /// "SINGLE_FAMILY", "CONDOMINIUM", "MULTI_FAMILY", "MANUFACTURED", "COMMERCIAL", "VACANT_LAND".
    pub property_type: String,
    pub units: u32,
    pub assessed_value_cents: i64,
    pub annual_tax_cents: i64,
    pub tax: TaxStatus,
    pub mortgages: Vec<MortgageRecord>,
    pub liens: Vec<LienRecord>,
    pub assessments: Vec<AssessmentRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaxStatus {
    /// Taxes are delinquent now.
    pub delinquent: bool,
    /// Dates of late installments in the last five years.
    pub late_payments: Vec<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MortgageRecord {
    pub lender: String,
    pub balance_cents: i64,
    pub days_late: u32,
    pub late_payments_12m: u32,
    pub notice_of_default: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LienRecord {
    /// "TAX_LIEN", "JUDGMENT", "MECHANICS_LIEN".
    pub kind: String,
    pub amount_cents: i64,
    pub recorded_on: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssessmentRecord {
    pub program: String,
    pub balance_cents: i64,
    pub annual_payment_cents: i64,
}

/// Client of the property records vendor.
#[derive(Debug, Clone)]
pub struct PropertyRecordsClient {
    http: super::http::HttpUpstream,
}

impl PropertyRecordsClient {
    pub fn new(http: super::http::HttpUpstream) -> Self {
        PropertyRecordsClient { http }
    }

    pub async fn lookup(
        &self,
        query: &PropertyQuery,
        ctx: &super::http::CallContext,
    ) -> Result<Option<super::http::Fetched<PropertyRecord>>, super::error::UpstreamError> {
        let request = self.http.get("/v1/properties").query(query);
        self.http
            .send_json("GET /v1/properties", request, ctx)
            .await
    }
}
