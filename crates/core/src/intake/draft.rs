//! An application as it arrives, before validation: every field as sent, nothing
//! checked. The API converts its request message into one, the Rails conversion its
//! JSON; [`super::application`] turns a draft into a domain [`crate::domain::Application`]
//! or the list of what is wrong with it.

use chrono::NaiveDate;

use crate::domain::MeasureKind;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplicationDraft {
    pub applicants: Vec<ApplicantDraft>,
    pub property: Option<PropertyDraft>,
    pub contractor: Option<ContractorDraft>,
    pub measures: Vec<MeasureDraft>,
    pub financing: Option<FinancingDraft>,
}

/// Holds an SSN as sent: no `Debug` output of a draft may reach a log.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ApplicantDraft {
    pub first_name: String,
    pub middle_name: String,
    pub last_name: String,
    pub suffix: String,
    pub ssn: String,
    pub date_of_birth: Option<DateDraft>,
    pub email: String,
    pub stated_annual_income_cents: i64,
}

impl std::fmt::Debug for ApplicantDraft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplicantDraft").finish_non_exhaustive()
    }
}

/// A calendar date as sent (it may not exist, e.g. February 30).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DateDraft {
    pub year: i32,
    pub month: i32,
    pub day: i32,
}

impl DateDraft {
    pub fn to_date(self) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(
            self.year,
            u32::try_from(self.month).ok()?,
            u32::try_from(self.day).ok()?,
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressDraft {
    pub line1: String,
    pub line2: String,
    pub city: String,
    pub state: String,
    pub postal_code: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PropertyDraft {
    pub address: Option<AddressDraft>,
    pub apn: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContractorDraft {
    pub business_name: String,
    pub license_number: String,
    pub license_state: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeasureDraft {
    /// None: not a kind Dossier knows (or none given).
    pub kind: Option<MeasureKind>,
    pub cost_cents: i64,
    pub description: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FinancingDraft {
    pub amount_cents: i64,
    pub term_years: i32,
}
