//! Rails' JSON application → a validated domain application, through the same intake
//! validation as the API's requests.

use dossier_core::domain::Application;
use dossier_core::intake::{self, Violation};
use dossier_upstream::rails::RailsApplication;

/// Converts and validates; the error lists every invalid field with its path in the
/// Rails application, for the audit and the operator (Rails sent something Dossier
/// cannot underwrite).
pub fn to_domain(
    r: &RailsApplication,
    program: &dossier_core::policy::Program,
) -> Result<Application, Vec<Violation>> {
    intake::application(&to_draft(r), "", program)
}

/// Rails' JSON application as an intake draft (not validated).
pub fn to_draft(r: &RailsApplication) -> intake::ApplicationDraft {
    intake::ApplicationDraft {
        applicants: r
            .applicants
            .iter()
            .map(|a| intake::ApplicantDraft {
                first_name: a.first_name.clone(),
                middle_name: a.middle_name.clone(),
                last_name: a.last_name.clone(),
                suffix: a.suffix.clone(),
                ssn: a.ssn.clone(),
                date_of_birth: Some(intake::DateDraft {
                    year: chrono::Datelike::year(&a.date_of_birth),
                    month: chrono::Datelike::month(&a.date_of_birth) as i32,
                    day: chrono::Datelike::day(&a.date_of_birth) as i32,
                }),
                email: a.email.clone(),
                stated_annual_income_cents: a.stated_annual_income_cents,
            })
            .collect(),
        property: Some(intake::PropertyDraft {
            address: Some(intake::AddressDraft {
                line1: r.property.line1.clone(),
                line2: r.property.line2.clone(),
                city: r.property.city.clone(),
                state: r.property.state.clone(),
                postal_code: r.property.postal_code.clone(),
            }),
            apn: r.property.apn.clone(),
        }),
        contractor: Some(intake::ContractorDraft {
            business_name: r.contractor.business_name.clone(),
            license_number: r.contractor.license_number.clone(),
            license_state: r.contractor.license_state.clone(),
        }),
        measures: r
            .measures
            .iter()
            .map(|m| intake::MeasureDraft {
                kind: dossier_core::domain::MeasureKind::parse(&m.kind),
                cost_cents: m.cost_cents,
                description: m.description.clone(),
            })
            .collect(),
        financing: Some(intake::FinancingDraft {
            amount_cents: r.amount_cents,
            term_years: r.term_years,
        }),
    }
}
