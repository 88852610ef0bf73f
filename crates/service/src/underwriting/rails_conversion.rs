//! Rails' JSON application → a validated domain application.

use crate::api::validate;
use dossier_core::domain::Application;
use dossier_upstream::rails::RailsApplication;

/// Converts and validates; the error lists every invalid field, for the audit and the
/// operator (Rails sent something Dossier cannot underwrite).
pub fn to_domain(
    r: &RailsApplication,
    program: &dossier_core::policy::Program,
) -> Result<Application, String> {
    let proto = to_proto(r);
    validate::application(&proto, "", program).map_err(|violations| {
        violations
            .iter()
            .map(|v| format!("{}: {}", v.field, v.description))
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// Rails' JSON application as the API's message (not validated).
pub fn to_proto(r: &RailsApplication) -> crate::proto::Application {
    crate::proto::Application {
        applicants: r
            .applicants
            .iter()
            .map(|a| crate::proto::Applicant {
                first_name: a.first_name.clone(),
                middle_name: a.middle_name.clone(),
                last_name: a.last_name.clone(),
                suffix: a.suffix.clone(),
                ssn: a.ssn.clone(),
                date_of_birth: Some(crate::proto::Date {
                    year: chrono::Datelike::year(&a.date_of_birth),
                    month: chrono::Datelike::month(&a.date_of_birth) as i32,
                    day: chrono::Datelike::day(&a.date_of_birth) as i32,
                }),
                email: a.email.clone(),
                stated_annual_income_cents: a.stated_annual_income_cents,
            })
            .collect(),
        property: Some(crate::proto::Property {
            address: Some(crate::proto::Address {
                line1: r.property.line1.clone(),
                line2: r.property.line2.clone(),
                city: r.property.city.clone(),
                state: r.property.state.clone(),
                postal_code: r.property.postal_code.clone(),
            }),
            apn: r.property.apn.clone(),
        }),
        contractor: Some(crate::proto::Contractor {
            business_name: r.contractor.business_name.clone(),
            license_number: r.contractor.license_number.clone(),
            license_state: r.contractor.license_state.clone(),
        }),
        measures: r
            .measures
            .iter()
            .map(|m| crate::proto::Measure {
                kind: dossier_core::domain::MeasureKind::parse(&m.kind)
                    .map(|k| crate::api::convert::measure_kind_to_proto(k) as i32)
                    .unwrap_or(0),
                cost_cents: m.cost_cents,
                description: m.description.clone(),
            })
            .collect(),
        financing: Some(crate::proto::Financing {
            amount_cents: r.amount_cents,
            term_years: r.term_years,
        }),
    }
}
