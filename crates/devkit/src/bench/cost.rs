//! The cost scenario: the seeded mix of applications (`dossier seed`'s distribution)
//! evaluated cold by a `parallel` and a `frugal` server, and then, with the primary AVM
//! vendor failing, by a server without and one with a valuation waterfall.

use std::time::{Duration, Instant};

use anyhow::Context;
use tonic::transport::Channel;

use super::{Row, bench_settings, drop_database, fresh_database, start_server_with_policy};
use crate::sim::{Behaviour, Simulators, Upstream};
use dossier_service::proto::{self, Decision};
use dossier_upstream::waterfall::Waterfalls;

/// Applications in the mix: ten of each of the seed's ten positions.
const MIX: usize = 100;
/// Every upstream's latency, so that the tiers' cost in latency shows.
const LATENCY_MS: u64 = 50;

/// What one server made of the mix.
#[derive(Debug, Default)]
struct Outcome {
    decisions: Vec<Decision>,
    spent_cents: i64,
    avoided_cents: i64,
    latencies: Vec<Duration>,
}

impl Outcome {
    fn approved(&self) -> usize {
        self.decisions
            .iter()
            .filter(|d| **d == Decision::Approved)
            .count()
    }

    fn not_referred(&self) -> usize {
        self.decisions
            .iter()
            .filter(|d| **d != Decision::Refer)
            .count()
    }

    fn per_decision(&self) -> f64 {
        self.spent_cents as f64 / self.decisions.len().max(1) as f64
    }

    fn per_approval(&self) -> f64 {
        self.spent_cents as f64 / self.approved().max(1) as f64
    }

    fn percentile(&self, p: usize) -> f64 {
        let mut l = self.latencies.clone();
        l.sort();
        l.get(l.len() * p / 100)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    }
}

/// Evaluates the mix on one server; `tag` makes every application (and so every
/// upstream answer) new.
async fn evaluate_mix(channel: &Channel, tag: &str) -> anyhow::Result<Outcome> {
    let mut client =
        proto::underwriting_service_client::UnderwritingServiceClient::new(channel.clone());
    let mut out = Outcome::default();
    for i in 0..MIX {
        let application = crate::cli::seed::application(i, tag)?;
        let mut r = tonic::Request::new(proto::EvaluateApplicationRequest {
            idempotency_key: format!("bench-cost-{tag}-{i}"),
            source: Some(proto::evaluate_application_request::Source::Application(
                application,
            )),
        });
        r.set_timeout(Duration::from_secs(30));
        let started = Instant::now();
        let report = client
            .evaluate_application(r)
            .await?
            .into_inner()
            .report
            .context("EvaluateApplication answers a report")?;
        out.latencies.push(started.elapsed());
        out.decisions.push(report.decision());
        let cost = report.vendor_cost.context("a decision carries its cost")?;
        out.spent_cents += cost.spent_cents;
        out.avoided_cents += cost.avoided_cents;
    }
    Ok(out)
}

fn set_latency(sims: &Simulators, latency_ms: u64) {
    for u in Upstream::HTTP {
        let mut b = sims.behaviour(u);
        b.latency_ms = latency_ms;
        b.quota_per_second = None;
        sims.set_behaviour(u, b);
    }
}

/// The built-in policy, evaluating frugally, as a file for `--policy-file`.
fn frugal_policy() -> anyhow::Result<tempfile::NamedTempFile> {
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(
        file.path(),
        format!(
            "{}\n[evaluation]\nmode = \"frugal\"\n",
            dossier_core::policy::DEFAULT_POLICY_TOML
        ),
    )?;
    Ok(file)
}

/// Runs `mix` on a server of its own (fresh database, cold caches).
async fn on_server(
    admin_url: &str,
    settings: dossier_upstream::UpstreamSettings,
    policy: Option<std::path::PathBuf>,
    tag: &str,
) -> anyhow::Result<Outcome> {
    let db_url = fresh_database(admin_url).await?;
    let (channel, stop, handle) = start_server_with_policy(&db_url, settings, policy).await?;
    let outcome = evaluate_mix(&channel, tag).await;
    let _ = stop.send(());
    let _ = handle.await;
    if let Err(e) = drop_database(admin_url, &db_url).await {
        tracing::warn!(error = %e, "could not drop the benchmark database");
    }
    outcome
}

pub(super) async fn cost(admin_url: &str, sims: &Simulators) -> anyhow::Result<Vec<Row>> {
    let run = uuid::Uuid::new_v4().simple().to_string();
    set_latency(sims, LATENCY_MS);
    let policy = frugal_policy()?;
    let parallel = on_server(admin_url, bench_settings(sims, None), None, &run).await?;
    let frugal = on_server(
        admin_url,
        bench_settings(sims, None),
        Some(policy.path().to_owned()),
        &run,
    )
    .await?;
    set_latency(sims, 0);

    // The primary AVM vendor answers every request 503.
    let healthy = sims.behaviour(Upstream::Valuation);
    sims.set_behaviour(
        Upstream::Valuation,
        Behaviour {
            error_rate: 1.0,
            ..healthy.clone()
        },
    );
    let alone = on_server(
        admin_url,
        bench_settings(sims, None),
        None,
        &format!("{run}-down"),
    )
    .await?;
    let mut with_fallback = bench_settings(sims, None);
    with_fallback.waterfalls = Waterfalls::parse_file(
        "[waterfalls.valuation]\nvendors = [\"valuation\", \"alt_valuation\"]\n",
    )
    .map_err(anyhow::Error::msg)?;
    with_fallback
        .credentials
        .insert(Upstream::AltValuation, "bench-alt-avm".into());
    let waterfall = on_server(admin_url, with_fallback, None, &format!("{run}-down")).await?;
    sims.set_behaviour(Upstream::Valuation, healthy);

    let same = parallel
        .decisions
        .iter()
        .zip(&frugal.decisions)
        .filter(|(p, f)| p == f)
        .count();
    let saved = 100.0 * (1.0 - frugal.spent_cents as f64 / parallel.spent_cents.max(1) as f64);
    Ok(vec![
        Row {
            scenario: format!("cost: vendor cost of the seeded mix ({MIX} applications, cold)"),
            measured: format!(
                "parallel {:.1} ¢/decision ({:.1} ¢/approval); frugal {:.1} ¢/decision ({:.1} ¢/approval, {} ¢ avoided): {saved:.0} % less; same decision {same}/{MIX}",
                parallel.per_decision(),
                parallel.per_approval(),
                frugal.per_decision(),
                frugal.per_approval(),
                frugal.avoided_cents,
            ),
            target: "frugal spends less, same decisions",
            timed: false,
            holds: frugal.spent_cents < parallel.spent_cents && same == MIX,
        },
        Row {
            scenario: format!(
                "cost: latency of a cold evaluation, every upstream at {LATENCY_MS} ms"
            ),
            measured: format!(
                "parallel p50 {:.0} ms, p90 {:.0} ms; frugal p50 {:.0} ms, p90 {:.0} ms",
                parallel.percentile(50),
                parallel.percentile(90),
                frugal.percentile(50),
                frugal.percentile(90),
            ),
            target: "reported: frugal asks its tiers one after another",
            timed: false,
            holds: true,
        },
        Row {
            scenario: format!("waterfall: primary AVM vendor failing, seeded mix ({MIX})"),
            measured: format!(
                "decided without referral: {}/{MIX} without a waterfall, {}/{MIX} with alt_valuation after valuation",
                alone.not_referred(),
                waterfall.not_referred(),
            ),
            target: "the waterfall decides those the failing vendor referred",
            timed: false,
            holds: waterfall.not_referred() > alone.not_referred()
                && waterfall.not_referred() >= parallel.not_referred(),
        },
    ])
}
