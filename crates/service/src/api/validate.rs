//! Request validation: every bad field is reported, not just the first, each as a
//! google.rpc.BadRequest field violation with the proto field path. Applications are
//! validated by `dossier_core::intake` (the same validation the Rails conversion uses):
//! this file converts the request message into a draft and the violations into field
//! violations, and checks what only requests have (idempotency keys, ids).

use chrono::NaiveDate;
use dossier_core::domain::{self, Application};
use dossier_core::intake::{self, Violation};
use dossier_core::policy::Program;
use tonic_types::FieldViolation;

use crate::proto;

pub use dossier_core::intake::Violations;

/// Intake's violations as google.rpc.BadRequest field violations.
pub fn field_violations(violations: Vec<Violation>) -> Vec<FieldViolation> {
    violations
        .into_iter()
        .map(|v| FieldViolation::new(v.field, v.description))
        .collect()
}

/// Validates an inline application against the program's limits.
pub fn application(
    a: &proto::Application,
    prefix: &str,
    program: &Program,
) -> Result<Application, Vec<FieldViolation>> {
    intake::application(&draft(a), prefix, program).map_err(field_violations)
}

/// A request address, validated (violations under `prefix`).
pub fn address(a: Option<&proto::Address>, prefix: &str, v: &mut Violations) -> domain::Address {
    intake::address(a.map(address_draft).as_ref(), prefix, v)
}

pub fn idempotency_key(key: &str, field: &str, required: bool) -> Result<(), Vec<FieldViolation>> {
    let ok_char = |c: char| c.is_ascii_graphic();
    if key.is_empty() && !required {
        return Ok(());
    }
    if key.is_empty() || key.len() > 128 || !key.chars().all(ok_char) {
        return Err(vec![FieldViolation::new(
            field,
            "must be 1 to 128 printable ASCII characters without spaces",
        )]);
    }
    Ok(())
}

pub fn rails_application_id(id: &str, field: &str) -> Result<(), Vec<FieldViolation>> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(vec![FieldViolation::new(
            field,
            "must be 1 to 64 letters, digits, '-' or '_'",
        )]);
    }
    Ok(())
}

pub fn date(d: Option<&proto::Date>) -> Option<NaiveDate> {
    d.map(date_draft).and_then(intake::DateDraft::to_date)
}

fn date_draft(d: &proto::Date) -> intake::DateDraft {
    intake::DateDraft {
        year: d.year,
        month: d.month,
        day: d.day,
    }
}

fn address_draft(a: &proto::Address) -> intake::AddressDraft {
    intake::AddressDraft {
        line1: a.line1.clone(),
        line2: a.line2.clone(),
        city: a.city.clone(),
        state: a.state.clone(),
        postal_code: a.postal_code.clone(),
    }
}

/// A request's measure as an intake draft (nothing checked yet).
pub fn measure_draft(m: &proto::Measure) -> intake::MeasureDraft {
    intake::MeasureDraft {
        kind: proto::MeasureKind::try_from(m.kind)
            .ok()
            .and_then(crate::api::convert::measure_kind_from_proto),
        cost_cents: m.cost_cents,
        description: m.description.clone(),
    }
}

/// The request message as an intake draft (nothing checked yet).
pub fn draft(a: &proto::Application) -> intake::ApplicationDraft {
    intake::ApplicationDraft {
        applicants: a
            .applicants
            .iter()
            .map(|ap| intake::ApplicantDraft {
                first_name: ap.first_name.clone(),
                middle_name: ap.middle_name.clone(),
                last_name: ap.last_name.clone(),
                suffix: ap.suffix.clone(),
                ssn: ap.ssn.clone(),
                date_of_birth: ap.date_of_birth.as_ref().map(date_draft),
                email: ap.email.clone(),
                stated_annual_income_cents: ap.stated_annual_income_cents,
            })
            .collect(),
        property: a.property.as_ref().map(|p| intake::PropertyDraft {
            address: p.address.as_ref().map(address_draft),
            apn: p.apn.clone(),
        }),
        contractor: a.contractor.as_ref().map(|c| intake::ContractorDraft {
            business_name: c.business_name.clone(),
            license_number: c.license_number.clone(),
            license_state: c.license_state.clone(),
        }),
        measures: a.measures.iter().map(measure_draft).collect(),
        financing: a.financing.as_ref().map(|f| intake::FinancingDraft {
            amount_cents: f.amount_cents,
            term_years: f.term_years,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dossier_core::policy::LoadedPolicy;

    fn good() -> proto::Application {
        proto::Application {
            applicants: vec![proto::Applicant {
                first_name: "Ana".into(),
                last_name: "Lopez".into(),
                ssn: "123-45-6789".into(),
                date_of_birth: Some(proto::Date {
                    year: 1980,
                    month: 2,
                    day: 29,
                }),
                ..Default::default()
            }],
            property: Some(proto::Property {
                address: Some(proto::Address {
                    line1: "1 Main St".into(),
                    city: "Fresno".into(),
                    state: "ca".into(),
                    postal_code: "93701".into(),
                    ..Default::default()
                }),
                apn: String::new(),
            }),
            contractor: Some(proto::Contractor {
                business_name: "Sunny Solar".into(),
                license_number: "123456".into(),
                license_state: "CA".into(),
            }),
            measures: vec![proto::Measure {
                kind: proto::MeasureKind::SolarPv as i32,
                cost_cents: 2_000_000,
                description: String::new(),
            }],
            financing: Some(proto::Financing {
                amount_cents: 2_000_000,
                term_years: 20,
            }),
        }
    }

    fn fields(a: &proto::Application) -> Vec<String> {
        let program = LoadedPolicy::default_policy().policy.program;
        match application(a, "application", &program) {
            Ok(_) => vec![],
            Err(v) => v.into_iter().map(|f| f.field).collect(),
        }
    }

    #[test]
    fn a_good_application_validates_and_normalises() {
        let program = LoadedPolicy::default_policy().policy.program;
        let app = application(&good(), "application", &program).unwrap();
        assert_eq!(app.property.address.state, "CA");
    }

    #[test]
    fn every_bad_field_is_reported() {
        let mut a = good();
        a.applicants[0].ssn = "123-45-678".into();
        a.applicants[0].first_name = " ".into();
        a.applicants[0].date_of_birth = Some(proto::Date {
            year: 1981,
            month: 2,
            day: 29,
        });
        a.property.as_mut().unwrap().address.as_mut().unwrap().state = "XX".into();
        a.property.as_mut().unwrap().address.as_mut().unwrap().line1 = String::new();
        a.measures[0].cost_cents = 0;
        a.financing = Some(proto::Financing {
            amount_cents: -5,
            term_years: 31,
        });
        assert_eq!(
            fields(&a),
            vec![
                "application.applicants[0].first_name",
                "application.applicants[0].ssn",
                "application.applicants[0].date_of_birth",
                "application.property.address.line1",
                "application.property.address.state",
                "application.measures[0].cost_cents",
                "application.financing.amount_cents",
                "application.financing.term_years",
            ]
        );
    }

    #[test]
    fn missing_parts_are_reported() {
        let a = proto::Application::default();
        assert_eq!(
            fields(&a),
            vec![
                "application.applicants",
                "application.property",
                "application.contractor",
                "application.measures",
                "application.financing"
            ]
        );
    }

    #[test]
    fn ssn_is_never_echoed() {
        let mut a = good();
        a.applicants[0].ssn = "123-45-678".into();
        let program = LoadedPolicy::default_policy().policy.program;
        let err = application(&a, "", &program).unwrap_err();
        assert!(err.iter().all(|v| !v.description.contains("678")));
    }

    #[test]
    fn free_text_is_bounded_and_bad_values_are_not_echoed() {
        let mut a = good();
        // A 3.9 MB middle name once went to the identity vendor beside the SSN.
        a.applicants[0].middle_name = "M".repeat(3_900_000);
        a.applicants[0].suffix = "J".repeat(21);
        a.applicants[0].email = "a@b.example\r\nX-Injected: 1".into();
        let address = a.property.as_mut().unwrap().address.as_mut().unwrap();
        address.line2 = "\u{7}bell".into();
        address.state = "Z".repeat(1_000_000);
        a.property.as_mut().unwrap().apn = "9".repeat(65);
        a.measures[0].description = "d".repeat(501);
        assert_eq!(
            fields(&a),
            vec![
                "application.applicants[0].email",
                "application.applicants[0].middle_name",
                "application.applicants[0].suffix",
                "application.property.address.line2",
                "application.property.address.state",
                "application.property.apn",
                "application.measures[0].description",
            ]
        );
        let program = LoadedPolicy::default_policy().policy.program;
        let err = application(&a, "", &program).unwrap_err();
        for v in &err {
            assert!(
                v.description.len() < 80,
                "{}: {} bytes",
                v.field,
                v.description.len()
            );
        }
        let state = err.iter().find(|v| v.field.ends_with("state")).unwrap();
        assert!(
            state.description.starts_with("\"ZZZZZZZZ…\""),
            "{}",
            state.description
        );
    }
}
