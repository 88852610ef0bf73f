//! `dossier evaluate --file F`: send an application (or a Rails id) and print the
//! report for a person to read.
//!
//! The file is the proto3 JSON form of `dossier.v1.Application` with the original
//! (snake_case) field names, the same file the Python and Ruby clients read. It is
//! parsed with serde mirrors of the proto messages below: prost has no JSON support,
//! and pbjson would replace the well-known types crate-wide for this one command.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

use crate::proto;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileApplication {
    #[serde(default)]
    rails_application_id: Option<String>,
    #[serde(default)]
    applicants: Vec<FileApplicant>,
    property: Option<FileProperty>,
    contractor: Option<FileContractor>,
    #[serde(default)]
    measures: Vec<FileMeasure>,
    financing: Option<FileFinancing>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileApplicant {
    first_name: String,
    #[serde(default)]
    middle_name: String,
    last_name: String,
    #[serde(default)]
    suffix: String,
    ssn: String,
    date_of_birth: Option<FileDate>,
    #[serde(default)]
    email: String,
    #[serde(default)]
    stated_annual_income_cents: Int64,
}

/// proto3 JSON writes int64 as a string; accept both.
#[derive(Deserialize, Default, Clone, Copy)]
#[serde(try_from = "serde_json::Value")]
struct Int64(i64);

impl TryFrom<serde_json::Value> for Int64 {
    type Error = String;
    fn try_from(v: serde_json::Value) -> Result<Self, String> {
        match &v {
            serde_json::Value::Number(n) => n
                .as_i64()
                .map(Int64)
                .ok_or_else(|| format!("{n} is not an integer")),
            serde_json::Value::String(s) => s
                .parse()
                .map(Int64)
                .map_err(|_| format!("{s:?} is not an integer")),
            _ => Err(format!("{v} is not an integer")),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDate {
    year: i32,
    month: i32,
    day: i32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileProperty {
    address: Option<FileAddress>,
    #[serde(default)]
    apn: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAddress {
    line1: String,
    #[serde(default)]
    line2: String,
    city: String,
    state: String,
    postal_code: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileContractor {
    business_name: String,
    license_number: String,
    license_state: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMeasure {
    kind: String,
    cost_cents: Int64,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFinancing {
    amount_cents: Int64,
    term_years: i32,
}

fn to_proto(f: FileApplication) -> anyhow::Result<proto::evaluate_application_request::Source> {
    if let Some(id) = f.rails_application_id {
        return Ok(proto::evaluate_application_request::Source::RailsApplicationId(id));
    }
    let mut measures = Vec::new();
    for m in f.measures {
        let kind = proto::MeasureKind::from_str_name(&m.kind).with_context(|| {
            format!(
                "measure kind {:?} is not a MeasureKind (e.g. MEASURE_KIND_SOLAR_PV)",
                m.kind
            )
        })?;
        measures.push(proto::Measure {
            kind: kind as i32,
            cost_cents: m.cost_cents.0,
            description: m.description,
        });
    }
    Ok(proto::evaluate_application_request::Source::Application(
        proto::Application {
            applicants: f
                .applicants
                .into_iter()
                .map(|a| proto::Applicant {
                    first_name: a.first_name,
                    middle_name: a.middle_name,
                    last_name: a.last_name,
                    suffix: a.suffix,
                    ssn: a.ssn,
                    date_of_birth: a.date_of_birth.map(|d| proto::Date {
                        year: d.year,
                        month: d.month,
                        day: d.day,
                    }),
                    email: a.email,
                    stated_annual_income_cents: a.stated_annual_income_cents.0,
                })
                .collect(),
            property: f.property.map(|p| proto::Property {
                address: p.address.map(|a| proto::Address {
                    line1: a.line1,
                    line2: a.line2,
                    city: a.city,
                    state: a.state,
                    postal_code: a.postal_code,
                }),
                apn: p.apn,
            }),
            contractor: f.contractor.map(|c| proto::Contractor {
                business_name: c.business_name,
                license_number: c.license_number,
                license_state: c.license_state,
            }),
            measures,
            financing: f.financing.map(|x| proto::Financing {
                amount_cents: x.amount_cents.0,
                term_years: x.term_years,
            }),
        },
    ))
}

/// Reads an application file into the request's source.
pub fn read_file(path: &Path) -> anyhow::Result<proto::evaluate_application_request::Source> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_file(&text).with_context(|| format!("{} is not an application file", path.display()))
}

/// An application file's text (examples/*.json) as the request's source.
pub fn parse_file(text: &str) -> anyhow::Result<proto::evaluate_application_request::Source> {
    let parsed: FileApplication = serde_json::from_str(text)?;
    to_proto(parsed)
}

/// `dossier evaluate`: send an application file to a running Dossier and print the
/// report.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Application JSON (see examples/).
    #[arg(long)]
    pub file: PathBuf,
    /// Dossier's gRPC address.
    #[arg(long, env = "DOSSIER_ADDR", default_value = "http://127.0.0.1:50051")]
    pub addr: String,
    /// Idempotency key; a new application each time when omitted.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Deadline for the whole evaluation.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Print the report as JSON-like debug output instead of a table.
    #[arg(long)]
    pub raw: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let report = evaluate(&args.file, &args.addr, args.idempotency_key, args.timeout).await?;
    if args.raw {
        println!("{report:#?}");
    } else {
        print!("{}", render(&report));
    }
    Ok(())
}

/// Evaluates the application in `file` on the Dossier at `addr`.
pub async fn evaluate(
    file: &Path,
    addr: &str,
    key: Option<String>,
    timeout: Duration,
) -> anyhow::Result<proto::Report> {
    let source = read_file(file)?;
    let mut client = proto::underwriting_service_client::UnderwritingServiceClient::connect(
        addr.to_owned(),
    )
    .await
    .with_context(|| {
        format!("cannot connect to Dossier at {addr}; is `dossier dev` or `dossier serve` running?")
    })?;
    let mut request = tonic::Request::new(proto::EvaluateApplicationRequest {
        idempotency_key: key.unwrap_or_default(),
        source: Some(source),
    });
    request.set_timeout(timeout);
    let response = client
        .evaluate_application(request)
        .await
        .map_err(describe_status)?;
    response
        .into_inner()
        .report
        .context("the server answered without a report")
}

fn describe_status(status: tonic::Status) -> anyhow::Error {
    use tonic_types::StatusExt;
    let mut text = format!("{:?}: {}", status.code(), status.message());
    if let Some(bad) = status.get_details_bad_request() {
        for v in bad.field_violations {
            text.push_str(&format!("\n  {}: {}", v.field, v.description));
        }
    }
    anyhow::anyhow!(text)
}

fn name<E: std::fmt::Debug>(e: Result<E, prost::UnknownEnumValue>) -> String {
    e.map(|v| format!("{v:?}")).unwrap_or_else(|_| "?".into())
}

/// A report as an underwriter reads it.
pub fn render(r: &proto::Report) -> String {
    let mut out = String::new();
    let decision = name(proto::Decision::try_from(r.decision)).to_uppercase();
    out.push_str(&format!("Application {}\n", r.application_id));
    out.push_str(&format!(
        "Decision:   {decision}{}\n",
        if r.reason_codes.is_empty() {
            String::new()
        } else {
            format!("  ({})", r.reason_codes.join(", "))
        }
    ));
    out.push_str(&format!(
        "Status:     {}{}\n",
        name(proto::ApplicationStatus::try_from(r.status)),
        if r.complete {
            ""
        } else {
            "  (incomplete: the deadline cut some checks short)"
        }
    ));
    out.push_str(&format!("Policy:     {}\n\n", r.policy_version));
    for c in &r.checks {
        let outcome = name(proto::CheckOutcome::try_from(c.outcome)).to_uppercase();
        let kind = proto::CheckKind::try_from(c.kind)
            .map(|k| {
                k.as_str_name()
                    .trim_start_matches("CHECK_KIND_")
                    .to_lowercase()
            })
            .unwrap_or_default();
        let codes = if c.reason_codes.is_empty() {
            String::new()
        } else {
            format!(" [{}]", c.reason_codes.join(", "))
        };
        out.push_str(&format!(
            "  {outcome:<12} {kind:<22} {:<12} {}{codes}\n",
            c.subject, c.message
        ));
    }
    out
}
