//! `dossier seed --count N`: fill a database with N simulated applications, underwritten
//! end to end (simulators, an in-process server on loopback, EvaluateApplication over
//! gRPC), so that every reporting view has something to show. Like `dossier bench` it
//! starts its own simulators and server; unlike it, it needs DATABASE_URL, since a
//! private throw-away PostgreSQL would be deleted, seed data and all, when it exits.
//!
//! The mix, by `i % 10`: 0–5 ordinary applications (approved), 6 a property with
//! delinquent taxes, 7 a deceased SSN, an expired contractor licence or an open
//! bankruptcy (declined), 8 a property held in trust, 9 a low-confidence valuation
//! (referred). The triggers are the simulators' (docs/simulators.md).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;

use crate::sim::{SimConfig, Simulators};
use dossier_service::config::DatabaseArgs;
use dossier_service::proto;
use dossier_upstream::rails::RailsApplication;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// How many applications to submit.
    #[arg(long, default_value_t = 100)]
    pub count: usize,
    /// EvaluateApplication calls in flight at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    // The database to fill (migrated first if needed). Required: seeding a private
    // throw-away database would be pointless.
    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// What the seeded applications were meant to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Clean,
    DelinquentTaxes,
    DeceasedSsn,
    ExpiredLicence,
    OpenBankruptcy,
    Trust,
    LowConfidenceValuation,
}

/// The scenario of the `i`-th seeded application.
pub fn scenario(i: usize) -> Scenario {
    match i % 10 {
        6 => Scenario::DelinquentTaxes,
        7 => match (i / 10) % 3 {
            0 => Scenario::DeceasedSsn,
            1 => Scenario::ExpiredLicence,
            _ => Scenario::OpenBankruptcy,
        },
        8 => Scenario::Trust,
        9 => Scenario::LowConfidenceValuation,
        _ => Scenario::Clean,
    }
}

/// The `i`-th seeded application: a Rails simulator application (owners of record as
/// applicants, a valid licence, ...) with the scenario's trigger applied. `tag` makes
/// every seed run's applications (and so their upstream answers) new.
pub fn application(i: usize, tag: &str) -> anyhow::Result<proto::Application> {
    let s = scenario(i);
    let id = match s {
        // The Rails simulator puts `decline-` ids on "Delinquent Way", owners and all.
        Scenario::DelinquentTaxes => format!("decline-seed-{i}-{tag}"),
        _ => format!("seed-{i}-{tag}"),
    };
    let mut app = crate::sim::rails::application_for(&id)
        .context("the Rails simulator builds an application for every ordinary id")?;
    let with_last_four = |ssn: &str, four: &str| format!("{}{four}", &ssn[..ssn.len() - 4]);
    match s {
        Scenario::Clean | Scenario::DelinquentTaxes => {}
        Scenario::DeceasedSsn => {
            app.applicants[0].ssn = with_last_four(&app.applicants[0].ssn, "5555");
        }
        Scenario::OpenBankruptcy => {
            app.applicants[0].ssn = with_last_four(&app.applicants[0].ssn, "4444");
        }
        Scenario::ExpiredLicence => {
            let n = &app.contractor.license_number;
            app.contractor.license_number = format!("{}99", &n[..n.len() - 2]);
        }
        Scenario::Trust => move_to(&mut app, format!("{} Trust Ave", 100 + i))?,
        Scenario::LowConfidenceValuation => move_to(&mut app, format!("{} Lowconf Ct", 100 + i))?,
    }
    Ok(crate::rails_request::to_proto(&app))
}

/// Moves the application to `line1` (same city) and makes the applicants the new
/// owners of record, so that only the address's trigger changes the outcome. An
/// entity owner (a trust) keeps the applicants as they are.
fn move_to(app: &mut RailsApplication, line1: String) -> anyhow::Result<()> {
    use crate::sim::property_records::{record_for, split_owner};
    let record = record_for(&dossier_upstream::property_records::PropertyQuery {
        line1: line1.clone(),
        city: app.property.city.clone(),
        state: app.property.state.clone(),
        postal_code: app.property.postal_code.clone(),
        apn: String::new(),
    })
    .context("the property records simulator knows every ordinary address")?;
    app.property.line1 = line1;
    app.property.apn = record.apn.clone();
    let owners: Vec<_> = record
        .owners
        .iter()
        .filter_map(|o| split_owner(o))
        .collect();
    if owners.is_empty() {
        return Ok(());
    }
    let template = app.applicants[0].clone();
    let title = |s: &str| {
        let lower = s.to_lowercase();
        let mut c = lower.chars();
        c.next()
            .map(|f| f.to_uppercase().chain(c).collect())
            .unwrap_or_default()
    };
    app.applicants = owners
        .into_iter()
        .enumerate()
        .map(|(i, (first, middle, last))| {
            let mut a = app.applicants.get(i).cloned().unwrap_or_else(|| {
                // A second owner: the first applicant's SSN with another group number.
                let mut a = template.clone();
                let group = if &a.ssn[3..5] == "01" { "02" } else { "01" };
                a.ssn = format!("{}{group}{}", &a.ssn[..3], &a.ssn[5..]);
                a
            });
            a.first_name = title(&first);
            a.middle_name = middle;
            a.last_name = title(&last);
            a.email = format!(
                "{}.{}@example.com",
                first.to_lowercase(),
                last.to_lowercase()
            );
            a
        })
        .collect();
    Ok(())
}

/// One seeded application: its index, Dossier's id, its decision and reason codes.
type Seeded = (usize, String, proto::Decision, Vec<String>);

pub async fn run(args: Args) -> anyhow::Result<()> {
    let Some(database_url) = args.database.database_url.clone() else {
        anyhow::bail!(
            "DATABASE_URL is not set. `dossier seed` fills an existing database (for example the one \
             you point `dossier dev` and `dossier report` at); a private throw-away PostgreSQL would be \
             deleted, seed data and all, as soon as seed exits. Set DATABASE_URL or pass --database-url."
        );
    };
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    let started = Instant::now();
    let sims = Simulators::start(SimConfig::default()).await?;
    // Generous limits (a seed run is a burst; per-pod default rates would refuse most of
    // it) and the default prices, so upstream costs in the reports look like production's.
    let (channel, stop, handle) =
        crate::bench::start_server(&database_url, crate::bench::bench_settings(&sims, None))
            .await?;
    let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let client = proto::underwriting_service_client::UnderwritingServiceClient::new(channel);
    let outcomes: Vec<anyhow::Result<Seeded>> = futures::stream::iter(0..args.count)
        .map(|i| {
            let mut client = client.clone();
            let tag = tag.clone();
            async move {
                let mut r = tonic::Request::new(proto::EvaluateApplicationRequest {
                    idempotency_key: format!("seed-{tag}-{i}"),
                    source: Some(proto::evaluate_application_request::Source::Application(
                        application(i, &tag)?,
                    )),
                });
                r.set_timeout(Duration::from_secs(30));
                let report = client
                    .evaluate_application(r)
                    .await
                    .with_context(|| format!("application {i}"))?
                    .into_inner()
                    .report
                    .context("EvaluateApplication answered without a report")?;
                let decision = report.decision();
                Ok((i, report.application_id, decision, report.reason_codes))
            }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    let funding = funding_checks(&client, &sims, &tag, &outcomes).await;
    let _ = stop.send(());
    let served = handle.await;
    sims.shutdown().await;
    served.context("the seed server task")??;
    let funding = funding?;

    let mut decisions: BTreeMap<&str, usize> = BTreeMap::new();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for o in outcomes {
        match o {
            Ok((_, _, decision, codes)) => {
                let name = match decision {
                    proto::Decision::Approved => "approved",
                    proto::Decision::Declined => "declined",
                    proto::Decision::Refer => "refer",
                    proto::Decision::Unspecified => "undecided",
                };
                *decisions.entry(name).or_default() += 1;
                for c in codes {
                    *reasons.entry(c).or_default() += 1;
                }
            }
            Err(e) => failures.push(e),
        }
    }
    println!(
        "Seeded {} applications into {} in {:.1} s.\n",
        args.count - failures.len(),
        dossier_store::redact_url(&database_url),
        started.elapsed().as_secs_f64()
    );
    println!("{}", summary(&decisions, &reasons));
    if !funding.is_empty() {
        println!("Funding checks:");
        for (verdict, n) in &funding {
            println!("  {verdict:<10} {n:>6}");
        }
    }
    if let Some(first) = failures.first() {
        anyhow::bail!(
            "{} of {} evaluations failed; the first: {first:#}",
            failures.len(),
            args.count
        );
    }
    Ok(())
}

/// A funding check on the first two applications of every ten when approved: the
/// first after a mechanics lien was recorded on its property (a HOLD), the second
/// unchanged (CLEAR), so the funding reports have rows. Counts by verdict.
async fn funding_checks(
    client: &proto::underwriting_service_client::UnderwritingServiceClient<
        tonic::transport::Channel,
    >,
    sims: &Simulators,
    tag: &str,
    outcomes: &[anyhow::Result<Seeded>],
) -> anyhow::Result<BTreeMap<&'static str, usize>> {
    let mut verdicts = BTreeMap::new();
    for (i, id, _, _) in outcomes
        .iter()
        .flatten()
        .filter(|(i, _, d, _)| i % 10 < 2 && *d == proto::Decision::Approved)
    {
        if i % 10 == 0 {
            let address = application(*i, tag)?
                .property
                .and_then(|p| p.address)
                .context("a seeded application has an address")?;
            sims.record_property_event(
                &dossier_upstream::property_records::PropertyQuery {
                    line1: address.line1,
                    city: address.city,
                    state: address.state,
                    postal_code: address.postal_code,
                    apn: String::new(),
                },
                crate::sim::property_records::PropertyEvent::LienRecorded {
                    lien_kind: "MECHANICS_LIEN".into(),
                    amount_cents: 420_000,
                    recorded_on: chrono::Utc::now().date_naive(),
                },
            );
        }
        let mut r = tonic::Request::new(proto::PrepareFundingRequest {
            application_id: id.clone(),
            ..Default::default()
        });
        r.set_timeout(Duration::from_secs(30));
        let check = client
            .clone()
            .prepare_funding(r)
            .await
            .with_context(|| format!("the funding check of application {i}"))?
            .into_inner()
            .funding_check
            .context("PrepareFunding answered without a funding check")?;
        let name = match check.verdict() {
            proto::FundingVerdict::Clear => "clear",
            proto::FundingVerdict::Hold => "hold",
            proto::FundingVerdict::Unspecified => "unspecified",
        };
        *verdicts.entry(name).or_default() += 1;
    }
    Ok(verdicts)
}

/// The printed summary: decisions by kind, then reason codes by frequency.
pub fn summary(decisions: &BTreeMap<&str, usize>, reasons: &BTreeMap<String, usize>) -> String {
    let mut out = String::from("Decisions:\n");
    for kind in ["approved", "declined", "refer", "undecided"] {
        if let Some(n) = decisions.get(kind) {
            out.push_str(&format!("  {kind:<10} {n:>6}\n"));
        }
    }
    if !reasons.is_empty() {
        out.push_str("Reason codes:\n");
        let mut by_count: Vec<_> = reasons.iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (code, n) in by_count {
            out.push_str(&format!("  {code:<32} {n:>6}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_applications_cover_every_outcome() {
        let kinds: Vec<Scenario> = (0..10).map(scenario).collect();
        assert!(kinds.contains(&Scenario::Clean));
        assert!(kinds.contains(&Scenario::DelinquentTaxes));
        assert!(kinds.contains(&Scenario::Trust));
        assert!(kinds.contains(&Scenario::LowConfidenceValuation));
        assert_eq!(scenario(17), Scenario::ExpiredLicence);
        assert_eq!(scenario(27), Scenario::OpenBankruptcy);
    }

    #[test]
    fn applications_carry_their_triggers() {
        let a = |i| application(i, "t").unwrap();
        let addr = |app: &proto::Application| {
            app.property
                .as_ref()
                .unwrap()
                .address
                .as_ref()
                .unwrap()
                .line1
                .clone()
        };
        assert!(addr(&a(6)).contains("Delinquent Way"));
        assert!(a(7).applicants[0].ssn.ends_with("5555"));
        assert!(
            a(17)
                .contractor
                .as_ref()
                .unwrap()
                .license_number
                .ends_with("99")
        );
        assert!(a(27).applicants[0].ssn.ends_with("4444"));
        assert!(addr(&a(8)).contains("Trust Ave"));
        let low = a(9);
        assert!(addr(&low).contains("Lowconf"));
        // The applicants are the new address's owners of record.
        let q = dossier_upstream::property_records::PropertyQuery {
            line1: addr(&low),
            city: low
                .property
                .as_ref()
                .unwrap()
                .address
                .as_ref()
                .unwrap()
                .city
                .clone(),
            state: "CA".into(),
            postal_code: low
                .property
                .as_ref()
                .unwrap()
                .address
                .as_ref()
                .unwrap()
                .postal_code
                .clone(),
            apn: String::new(),
        };
        let record = crate::sim::property_records::record_for(&q).unwrap();
        assert_eq!(record.owners.len(), low.applicants.len());
        for (owner, applicant) in record.owners.iter().zip(&low.applicants) {
            assert!(
                owner.starts_with(&applicant.last_name.to_uppercase()),
                "{owner} vs {}",
                applicant.last_name
            );
        }
    }

    #[test]
    fn summary_lists_decisions_then_reasons_by_count() {
        let decisions = BTreeMap::from([("approved", 6), ("declined", 2), ("refer", 2)]);
        let reasons = BTreeMap::from([
            ("OWNER_IS_ENTITY".to_owned(), 1),
            ("PROPERTY_TAX_DELINQUENT".to_owned(), 1),
            ("VALUATION_LOW_CONFIDENCE".to_owned(), 2),
        ]);
        let s = summary(&decisions, &reasons);
        assert!(s.starts_with(
            "Decisions:\n  approved        6\n  declined        2\n  refer           2\n"
        ));
        let low = s.find("VALUATION_LOW_CONFIDENCE").unwrap();
        assert!(low < s.find("OWNER_IS_ENTITY").unwrap());
    }
}
