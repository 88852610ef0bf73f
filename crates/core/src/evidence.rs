//! What Dossier knows about a property, a person or a company, in its own words.
//!
//! The checks judge these types and replay stores them (`evaluation_runs.inputs`), so
//! they are Dossier's contract with itself, not any vendor's: each upstream client in
//! `dossier-upstream` converts its vendor's wire type into one of these at the boundary,
//! and a vendor changing its JSON changes that conversion only. The serialised form is
//! the replay format: change it only additively (new fields with `#[serde(default)]`),
//! or stored decisions stop replaying (a test replays a fixture stored by an earlier
//! release).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// A parcel as the county records it.
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

/// A special assessment already on the tax bill (another PACE loan, a district bond).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssessmentRecord {
    pub program: String,
    pub balance_cents: i64,
    pub annual_payment_cents: i64,
}

/// An automated valuation (AVM).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AvmEstimate {
    pub value_cents: i64,
    /// 0–100.
    pub confidence: u32,
    pub low_cents: i64,
    pub high_cents: i64,
    pub as_of: NaiveDate,
}

/// How well a person's identity verified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentityResult {
    /// 0–100.
    pub score: u32,
    /// e.g. "SSN_DECEASED", "ADDRESS_MISMATCH", "SSN_MULTIPLE_IDENTITIES".
    pub flags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncomeVerification {
    pub verified_annual_income_cents: i64,
    pub monthly_debt_payments_cents: i64,
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

/// A contractor's state licence.
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

/// A company as the secretary of state registers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BusinessRecord {
    pub name: String,
    /// "ACTIVE", "SUSPENDED", "DISSOLVED".
    pub status: String,
    pub formed_on: NaiveDate,
    pub jurisdiction: String,
    pub officers: Vec<String>,
}

/// One SDN list entry a screened name may be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SanctionsHit {
    /// The entry's `ent_num`.
    pub entry_id: i64,
    /// The name (primary or alias) that matched, as written in the list.
    pub matched_name: String,
    /// The entry's primary name.
    pub list_name: String,
    /// 0–1; 1 is the same name after normalisation.
    pub score: f64,
    pub program: String,
    pub is_alias: bool,
}
