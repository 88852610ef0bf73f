//! An application of the Rails simulator as the API's request message, for the tools
//! that submit simulated applications inline (`dossier seed`, the bench).

use dossier_service::proto;
use dossier_upstream::rails::RailsApplication;

/// Rails' JSON application as the API's message (not validated).
pub fn to_proto(r: &RailsApplication) -> proto::Application {
    proto::Application {
        applicants: r
            .applicants
            .iter()
            .map(|a| proto::Applicant {
                first_name: a.first_name.clone(),
                middle_name: a.middle_name.clone(),
                last_name: a.last_name.clone(),
                suffix: a.suffix.clone(),
                ssn: a.ssn.clone(),
                date_of_birth: Some(proto::Date {
                    year: chrono::Datelike::year(&a.date_of_birth),
                    month: chrono::Datelike::month(&a.date_of_birth) as i32,
                    day: chrono::Datelike::day(&a.date_of_birth) as i32,
                }),
                email: a.email.clone(),
                stated_annual_income_cents: a.stated_annual_income_cents,
            })
            .collect(),
        property: Some(proto::Property {
            address: Some(proto::Address {
                line1: r.property.line1.clone(),
                line2: r.property.line2.clone(),
                city: r.property.city.clone(),
                state: r.property.state.clone(),
                postal_code: r.property.postal_code.clone(),
            }),
            apn: r.property.apn.clone(),
        }),
        contractor: Some(proto::Contractor {
            business_name: r.contractor.business_name.clone(),
            license_number: r.contractor.license_number.clone(),
            license_state: r.contractor.license_state.clone(),
        }),
        measures: r
            .measures
            .iter()
            .map(|m| proto::Measure {
                kind: dossier_core::domain::MeasureKind::parse(&m.kind)
                    .map(|k| dossier_service::api::convert::measure_kind_to_proto(k) as i32)
                    .unwrap_or(0),
                cost_cents: m.cost_cents,
                description: m.description.clone(),
            })
            .collect(),
        financing: Some(proto::Financing {
            amount_cents: r.amount_cents,
            term_years: r.term_years,
        }),
    }
}
