//! Identity verification and bankruptcy search.
//!
//! HTTP contract (served by `sim::identity`). Requests carry an SSN, so they are POSTs
//! with a JSON body (never a query string that proxies would log); both are read-only
//! look-ups and therefore safe to retry.
//! - `POST {base}/v1/identity/verify` body [`PersonQuery`] → 200 [`IdentityResult`]
//! - `POST {base}/v1/bankruptcies/search` body [`PersonQuery`] → 200 [`BankruptcySearch`]
//! - `POST {base}/v1/income/verify` body [`PersonQuery`] → 200 [`IncomeVerification`]

use chrono::NaiveDate;
use dossier_core::domain;
use dossier_core::evidence;
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

impl PersonQuery {
    /// The question for an applicant living at `home` (the property: PACE applicants
    /// own and live in it). The vendor knows no suffix and no second address line.
    pub fn of(applicant: &domain::Applicant, home: &domain::Address) -> PersonQuery {
        PersonQuery {
            first_name: applicant.first_name.clone(),
            middle_name: applicant.middle_name.clone(),
            last_name: applicant.last_name.clone(),
            ssn: applicant.ssn.expose().to_owned(),
            date_of_birth: applicant.date_of_birth,
            line1: home.line1.clone(),
            city: home.city.clone(),
            state: home.state.clone(),
            postal_code: home.postal_code.clone(),
        }
    }
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

/// Verified income and recurring debt of one person.
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

// The wire types above are the vendor's; the checks see Dossier's evidence.

impl From<IdentityResult> for evidence::IdentityResult {
    fn from(w: IdentityResult) -> Self {
        evidence::IdentityResult {
            score: w.score,
            flags: w.flags,
        }
    }
}

impl From<IncomeVerification> for evidence::IncomeVerification {
    fn from(w: IncomeVerification) -> Self {
        evidence::IncomeVerification {
            verified_annual_income_cents: w.verified_annual_income_cents,
            monthly_debt_payments_cents: w.monthly_debt_payments_cents,
        }
    }
}

impl From<BankruptcySearch> for evidence::BankruptcySearch {
    fn from(w: BankruptcySearch) -> Self {
        evidence::BankruptcySearch {
            filings: w.filings.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<BankruptcyFiling> for evidence::BankruptcyFiling {
    fn from(w: BankruptcyFiling) -> Self {
        evidence::BankruptcyFiling {
            chapter: w.chapter,
            filed_on: w.filed_on,
            disposition: w.disposition,
            closed_on: w.closed_on,
        }
    }
}

/// Client of the identity vendor.
#[derive(Debug, Clone)]
pub struct IdentityClient {
    layered: std::sync::Arc<super::layered::Layered>,
}

impl IdentityClient {
    pub fn new(layered: std::sync::Arc<super::layered::Layered>) -> Self {
        IdentityClient { layered }
    }

    fn question<T: serde::de::DeserializeOwned>(
        kind: &'static str,
        path: &'static str,
        endpoint: &'static str,
        query: &PersonQuery,
    ) -> super::layered::Question {
        let q = query.clone();
        super::layered::Question {
            kind,
            // Holds the SSN: only its keyed hash leaves memory (see layered.rs).
            key: serde_json::to_string(query)
                .expect("a query serialises")
                .to_uppercase(),
            validate: super::layered::shape_of::<T>,
            send: super::layered::http_send(endpoint, move |http| Ok(http.post(path).json(&q))),
        }
    }

    /// A 404 from an identity vendor means a wrong URL, not an answer: an error naming
    /// the vendor whose URL to check (the primary or the second vendor).
    fn required<T>(
        &self,
        found: Option<super::http::Fetched<T>>,
        what: &str,
    ) -> Result<super::http::Fetched<T>, super::error::UpstreamError> {
        let upstream = self.layered.name;
        found.ok_or_else(|| super::error::UpstreamError::Status {
            upstream,
            status: 404,
            retry_after: None,
            snippet: format!("{what} endpoint not found; check the {upstream} base URL"),
        })
    }

    pub async fn verify(
        &self,
        query: &PersonQuery,
        ctx: &super::http::CallContext,
    ) -> Result<super::http::Fetched<evidence::IdentityResult>, super::error::UpstreamError> {
        let q = Self::question::<IdentityResult>(
            "identity",
            "/v1/identity/verify",
            "POST /v1/identity/verify",
            query,
        );
        self.required(
            self.layered.ask::<IdentityResult>(q, ctx).await?,
            "identity verification",
        )
        .map(super::http::Fetched::convert)
    }

    pub async fn income(
        &self,
        query: &PersonQuery,
        ctx: &super::http::CallContext,
    ) -> Result<super::http::Fetched<evidence::IncomeVerification>, super::error::UpstreamError>
    {
        let q = Self::question::<IncomeVerification>(
            "income",
            "/v1/income/verify",
            "POST /v1/income/verify",
            query,
        );
        self.required(
            self.layered.ask::<IncomeVerification>(q, ctx).await?,
            "income verification",
        )
        .map(super::http::Fetched::convert)
    }

    pub async fn bankruptcies(
        &self,
        query: &PersonQuery,
        ctx: &super::http::CallContext,
    ) -> Result<super::http::Fetched<evidence::BankruptcySearch>, super::error::UpstreamError> {
        let q = Self::question::<BankruptcySearch>(
            "bankruptcy",
            "/v1/bankruptcies/search",
            "POST /v1/bankruptcies/search",
            query,
        );
        self.required(
            self.layered.ask::<BankruptcySearch>(q, ctx).await?,
            "bankruptcy search",
        )
        .map(super::http::Fetched::convert)
    }
}
