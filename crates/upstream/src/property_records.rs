//! County-records property data: owners, taxes, mortgages, liens, assessments.
//!
//! HTTP contract (served by `sim::property_records`):
//! `GET {base}/v1/properties?line1=&city=&state=&postal_code=[&apn=]`
//! → 200 [`PropertyRecord`], 404 `{"error":"property_not_found"}` when the county has no parcel.

use chrono::NaiveDate;
use dossier_core::{domain, evidence};
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

impl PropertyQuery {
    /// The question for a property as an application describes it (the vendor knows
    /// no second address line).
    pub fn of(property: &domain::Property) -> PropertyQuery {
        let a = &property.address;
        PropertyQuery {
            line1: a.line1.clone(),
            city: a.city.clone(),
            state: a.state.clone(),
            postal_code: a.postal_code.clone(),
            apn: property.apn.clone(),
        }
    }
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

// The wire types above are the vendor's; the checks see Dossier's evidence.

impl From<PropertyRecord> for evidence::PropertyRecord {
    fn from(w: PropertyRecord) -> Self {
        evidence::PropertyRecord {
            apn: w.apn,
            line1: w.line1,
            city: w.city,
            state: w.state,
            postal_code: w.postal_code,
            owners: w.owners,
            vesting: w.vesting,
            property_type: w.property_type,
            units: w.units,
            assessed_value_cents: w.assessed_value_cents,
            annual_tax_cents: w.annual_tax_cents,
            tax: w.tax.into(),
            mortgages: w.mortgages.into_iter().map(Into::into).collect(),
            liens: w.liens.into_iter().map(Into::into).collect(),
            assessments: w.assessments.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<TaxStatus> for evidence::TaxStatus {
    fn from(w: TaxStatus) -> Self {
        evidence::TaxStatus {
            delinquent: w.delinquent,
            late_payments: w.late_payments,
        }
    }
}

impl From<MortgageRecord> for evidence::MortgageRecord {
    fn from(w: MortgageRecord) -> Self {
        evidence::MortgageRecord {
            lender: w.lender,
            balance_cents: w.balance_cents,
            days_late: w.days_late,
            late_payments_12m: w.late_payments_12m,
            notice_of_default: w.notice_of_default,
        }
    }
}

impl From<LienRecord> for evidence::LienRecord {
    fn from(w: LienRecord) -> Self {
        evidence::LienRecord {
            kind: w.kind,
            amount_cents: w.amount_cents,
            recorded_on: w.recorded_on,
        }
    }
}

impl From<AssessmentRecord> for evidence::AssessmentRecord {
    fn from(w: AssessmentRecord) -> Self {
        evidence::AssessmentRecord {
            program: w.program,
            balance_cents: w.balance_cents,
            annual_payment_cents: w.annual_payment_cents,
        }
    }
}

/// Client of the property records vendor.
#[derive(Debug, Clone)]
pub struct PropertyRecordsClient {
    layered: std::sync::Arc<super::layered::Layered>,
}

impl PropertyRecordsClient {
    pub fn new(layered: std::sync::Arc<super::layered::Layered>) -> Self {
        PropertyRecordsClient { layered }
    }

    pub async fn lookup(
        &self,
        query: &PropertyQuery,
        ctx: &super::http::CallContext,
    ) -> Result<Option<super::http::Fetched<evidence::PropertyRecord>>, super::error::UpstreamError>
    {
        let q = query.clone();
        let question = super::layered::Question {
            kind: "property",
            key: serde_json::to_string(&normalised(query)).expect("a query serialises"),
            validate: super::layered::shape_of::<PropertyRecord>,
            send: super::layered::http_send("GET /v1/properties", move |http| {
                Ok(http.get("/v1/properties").query(&q))
            }),
        };
        self.layered
            .ask::<PropertyRecord>(question, ctx)
            .await
            .map(|found| found.map(super::http::Fetched::convert))
    }
}

/// The cache key form of a query: case and spacing do not make a new question.
pub fn normalised(q: &PropertyQuery) -> PropertyQuery {
    let n = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_uppercase()
    };
    PropertyQuery {
        line1: n(&q.line1),
        city: n(&q.city),
        state: n(&q.state),
        postal_code: n(&q.postal_code),
        apn: n(&q.apn),
    }
}
