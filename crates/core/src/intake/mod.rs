//! Intake: one validation of an application draft, whichever way it came in (a gRPC
//! request, or an application fetched from Rails). Every bad field is reported, not
//! just the first, as a [`Violation`] with its field path; the API turns violations
//! into `google.rpc.BadRequest` field violations, the Rails conversion keeps them with
//! the error it records. Values are never echoed where they may be personal data.

mod draft;

pub use draft::*;

use chrono::{Datelike, Utc};

use crate::domain::{self, Application, Ssn, is_us_state};
use crate::policy::Program;

const MAX_NAME: usize = 100;
const MAX_APPLICANTS: usize = 4;
const MAX_MEASURES: usize = 20;

/// One invalid field: its path (e.g. `applicants[0].ssn`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    pub description: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

/// Collects every violation of a request.
#[derive(Debug, Default)]
pub struct Violations {
    list: Vec<Violation>,
}

impl Violations {
    pub fn new() -> Self {
        Violations::default()
    }

    pub fn into_result<T>(self, value: T) -> Result<T, Vec<Violation>> {
        if self.list.is_empty() {
            Ok(value)
        } else {
            Err(self.list)
        }
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.list.push(Violation {
            field: field.into(),
            description: description.into(),
        });
    }

    pub fn required_text(&mut self, field: &str, value: &str, max: usize) -> String {
        let v = value.trim();
        if v.is_empty() {
            self.add(field, "is required");
        } else if v.chars().count() > max {
            self.add(field, format!("must be at most {max} characters"));
        } else if v.chars().any(char::is_control) {
            self.add(field, "must not contain control characters");
        }
        v.to_owned()
    }

    /// An optional free-text field: empty is fine, but never unbounded (it may travel
    /// to a vendor beside the SSN) and never with control characters.
    pub fn optional_text(&mut self, field: &str, value: &str, max: usize) -> String {
        let v = value.trim();
        if v.chars().count() > max {
            self.add(field, format!("must be at most {max} characters"));
        } else if v.chars().any(char::is_control) {
            self.add(field, "must not contain control characters");
        }
        v.to_owned()
    }

    pub fn state(&mut self, field: &str, value: &str) -> String {
        let v = value.trim().to_ascii_uppercase();
        if v.is_empty() {
            self.add(field, "is required");
        } else if !is_us_state(&v) {
            self.add(
                field,
                format!(
                    "{} is not a two-letter US state code such as \"CA\"",
                    shown(value)
                ),
            );
        }
        v
    }
}

/// A bad value as a message may show it: at most 8 characters, quoted, control
/// characters replaced, so a caller cannot make Dossier echo megabytes (or forge log
/// lines) through an error. Only for fields that are never personal data.
pub fn shown(value: &str) -> String {
    const MAX: usize = 8;
    let mut out: String = value
        .chars()
        .take(MAX)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect();
    if value.chars().nth(MAX).is_some() {
        out.push('…');
    }
    format!("{out:?}")
}

fn join(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_owned()
    } else {
        format!("{prefix}.{field}")
    }
}

pub fn address(a: Option<&AddressDraft>, prefix: &str, v: &mut Violations) -> domain::Address {
    let Some(a) = a else {
        v.add(prefix, "is required");
        return domain::Address {
            line1: String::new(),
            line2: String::new(),
            city: String::new(),
            state: String::new(),
            postal_code: String::new(),
        };
    };
    let line1 = v.required_text(&join(prefix, "line1"), &a.line1, 200);
    let line2 = v.optional_text(&join(prefix, "line2"), &a.line2, 200);
    let city = v.required_text(&join(prefix, "city"), &a.city, 100);
    let state = v.state(&join(prefix, "state"), &a.state);
    let zip = a.postal_code.trim();
    let zip_ok = match zip.len() {
        5 => zip.bytes().all(|b| b.is_ascii_digit()),
        10 => {
            zip[..5].bytes().all(|b| b.is_ascii_digit())
                && &zip[5..6] == "-"
                && zip[6..].bytes().all(|b| b.is_ascii_digit())
        }
        _ => false,
    };
    if !zip_ok {
        v.add(
            join(prefix, "postal_code"),
            "must be a ZIP code: 12345 or 12345-6789",
        );
    }
    domain::Address {
        line1,
        line2,
        city,
        state,
        postal_code: zip.to_owned(),
    }
}

/// The measures of an application (or a change order), violations under `field`: at
/// least one, at most [`MAX_MEASURES`], each with a kind and a positive cost.
pub fn measures(drafts: &[MeasureDraft], field: &str, vp: &mut Violations) -> Vec<domain::Measure> {
    if drafts.is_empty() {
        vp.add(field, "at least one measure is required");
    } else if drafts.len() > MAX_MEASURES {
        vp.add(field, format!("at most {MAX_MEASURES} measures"));
    }
    let mut measures = Vec::new();
    for (i, m) in drafts.iter().enumerate() {
        let p = format!("{field}[{i}]");
        let kind = m.kind;
        if kind.is_none() {
            vp.add(
                join(&p, "kind"),
                "must be a MeasureKind other than UNSPECIFIED",
            );
        }
        if m.cost_cents <= 0 {
            vp.add(join(&p, "cost_cents"), "must be greater than zero");
        }
        let description = vp.optional_text(&join(&p, "description"), &m.description, 500);
        if let Some(kind) = kind {
            measures.push(domain::Measure {
                kind,
                cost_cents: m.cost_cents,
                description,
            });
        }
    }

    measures
}

/// Financing within the program's amount and term ranges; violations under `field`.
pub fn financing(
    f: &FinancingDraft,
    field: &str,
    program: &Program,
    vp: &mut Violations,
) -> domain::Financing {
    if f.amount_cents <= 0 {
        vp.add(join(field, "amount_cents"), "must be greater than zero");
    } else if f.amount_cents < program.min_amount_cents || f.amount_cents > program.max_amount_cents
    {
        vp.add(
            join(field, "amount_cents"),
            format!(
                "must be between {} and {} cents",
                program.min_amount_cents, program.max_amount_cents
            ),
        );
    }
    if f.term_years < program.min_term_years || f.term_years > program.max_term_years {
        vp.add(
            join(field, "term_years"),
            format!(
                "must be between {} and {} years",
                program.min_term_years, program.max_term_years
            ),
        );
    }
    domain::Financing {
        amount_cents: f.amount_cents,
        term_years: f.term_years,
    }
}

/// The final terms of a funding check (a change order): each part, when given, is
/// validated like an application's; `None` keeps the approved one.
#[allow(clippy::type_complexity)]
pub fn final_terms(
    financing_draft: Option<&FinancingDraft>,
    measure_drafts: &[MeasureDraft],
    program: &Program,
) -> Result<(Option<domain::Financing>, Option<Vec<domain::Measure>>), Vec<Violation>> {
    let mut vp = Violations::new();
    let f = financing_draft.map(|f| financing(f, "final_financing", program, &mut vp));
    let m =
        (!measure_drafts.is_empty()).then(|| measures(measure_drafts, "final_measures", &mut vp));
    vp.into_result((f, m))
}

/// Validates an application draft against the program's limits: every violation is
/// reported, with its field path under `prefix`.
pub fn application(
    a: &ApplicationDraft,
    prefix: &str,
    program: &Program,
) -> Result<Application, Vec<Violation>> {
    let mut vp = Violations::new();
    let today = Utc::now().date_naive();

    if a.applicants.is_empty() {
        vp.add(
            join(prefix, "applicants"),
            "at least one applicant is required",
        );
    } else if a.applicants.len() > MAX_APPLICANTS {
        vp.add(
            join(prefix, "applicants"),
            format!("at most {MAX_APPLICANTS} applicants"),
        );
    }
    let mut applicants = Vec::new();
    for (i, ap) in a.applicants.iter().enumerate() {
        let p = join(prefix, &format!("applicants[{i}]"));
        let first_name = vp.required_text(&join(&p, "first_name"), &ap.first_name, MAX_NAME);
        let last_name = vp.required_text(&join(&p, "last_name"), &ap.last_name, MAX_NAME);
        let ssn = match Ssn::parse(&ap.ssn) {
            Ok(s) => Some(s),
            Err(why) => {
                // Never echo the value: it is an SSN, or close to one.
                vp.add(join(&p, "ssn"), why);
                None
            }
        };
        let dob = match (
            ap.date_of_birth.as_ref(),
            ap.date_of_birth.and_then(DateDraft::to_date),
        ) {
            (None, _) => {
                vp.add(join(&p, "date_of_birth"), "is required");
                None
            }
            (Some(_), None) => {
                vp.add(join(&p, "date_of_birth"), "is not a calendar date");
                None
            }
            (Some(_), Some(d)) => {
                let age = today.years_since(d).unwrap_or(0);
                if d > today || age < 18 || d.year() < today.year() - 120 {
                    vp.add(
                        join(&p, "date_of_birth"),
                        "applicant must be at least 18 and born within the last 120 years",
                    );
                    None
                } else {
                    Some(d)
                }
            }
        };
        let email = ap.email.trim().to_owned();
        if !email.is_empty()
            && (!email.contains('@') || email.len() > 254 || email.chars().any(char::is_control))
        {
            vp.add(join(&p, "email"), "is not an email address");
        }
        if ap.stated_annual_income_cents < 0 {
            vp.add(
                join(&p, "stated_annual_income_cents"),
                "must not be negative",
            );
        }
        let middle_name = vp.optional_text(&join(&p, "middle_name"), &ap.middle_name, MAX_NAME);
        let suffix = vp.optional_text(&join(&p, "suffix"), &ap.suffix, 20);
        if let (Some(ssn), Some(date_of_birth)) = (ssn, dob) {
            applicants.push(domain::Applicant {
                first_name,
                middle_name,
                last_name,
                suffix,
                ssn,
                date_of_birth,
                email,
                stated_annual_income_cents: ap.stated_annual_income_cents,
            });
        }
    }

    let property_field = join(prefix, "property");
    let property = match a.property.as_ref() {
        None => {
            vp.add(&property_field, "is required");
            None
        }
        Some(p) => {
            let address = address(
                p.address.as_ref(),
                &join(&property_field, "address"),
                &mut vp,
            );
            let apn = vp.optional_text(&join(&property_field, "apn"), &p.apn, 64);
            Some(domain::Property { address, apn })
        }
    };

    let contractor_field = join(prefix, "contractor");
    let contractor = match a.contractor.as_ref() {
        None => {
            vp.add(&contractor_field, "is required");
            None
        }
        Some(c) => {
            let business_name = vp.required_text(
                &join(&contractor_field, "business_name"),
                &c.business_name,
                200,
            );
            let license_number = c.license_number.trim().to_owned();
            if license_number.is_empty()
                || license_number.len() > 20
                || !license_number
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
            {
                vp.add(
                    join(&contractor_field, "license_number"),
                    "must be 1 to 20 letters, digits or '-'",
                );
            }
            let license_state =
                vp.state(&join(&contractor_field, "license_state"), &c.license_state);
            Some(domain::Contractor {
                business_name,
                license_number,
                license_state,
            })
        }
    };

    let measures = measures(&a.measures, &join(prefix, "measures"), &mut vp);
    let financing_field = join(prefix, "financing");
    let financing = match a.financing.as_ref() {
        None => {
            vp.add(&financing_field, "is required");
            None
        }
        Some(f) => Some(financing(f, &financing_field, program, &mut vp)),
    };

    match (property, contractor, financing) {
        (Some(property), Some(contractor), Some(financing)) => vp.into_result(Application {
            applicants,
            property,
            contractor,
            measures,
            financing,
        }),
        _ => Err(vp.list),
    }
}
