//! Cost-aware evaluation and vendor waterfalls, against the simulators: a frugal
//! policy reaches the decisions a parallel one does on the same data for less, skips
//! the paid tiers once declined (and says so), and a second AVM vendor values what the
//! first cannot.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use dossier_core::domain::Upstream;
use dossier_devkit::harness::{TestApp, assert_every_decision_replays, eventually};
use dossier_devkit::sim::Behaviour;
use dossier_service::proto::underwriting_service_client::UnderwritingServiceClient;
use dossier_service::proto::{self, CheckOutcome, Decision};
use dossier_store::Vault;
use dossier_upstream::waterfall::Waterfalls;

type Client = UnderwritingServiceClient<tonic::transport::Channel>;

/// The built-in policy, evaluating frugally.
fn frugal_policy() -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    let text = format!(
        "{}\n[evaluation]\nmode = \"frugal\"\n",
        dossier_core::policy::DEFAULT_POLICY_TOML
    );
    std::fs::write(file.path(), text).unwrap();
    file
}

async fn spawn_frugal(policy: &tempfile::NamedTempFile) -> TestApp {
    let path = policy.path().to_owned();
    TestApp::spawn_with(move |a| a.policy_file = Some(path)).await
}

async fn evaluate(client: &mut Client, key: &str, a: proto::Application) -> proto::Report {
    let mut request = tonic::Request::new(proto::EvaluateApplicationRequest {
        idempotency_key: key.into(),
        source: Some(proto::evaluate_application_request::Source::Application(a)),
    });
    request.set_timeout(Duration::from_secs(30));
    client
        .evaluate_application(request)
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap()
}

fn not_run(r: &proto::Report) -> Vec<&proto::CheckResult> {
    r.checks
        .iter()
        .filter(|c| c.outcome() == CheckOutcome::NotRun)
        .collect()
}

fn cost(r: &proto::Report) -> proto::VendorCost {
    r.vendor_cost.clone().expect("a decision carries its cost")
}

/// Generated applications (the seeded mix of scenarios, at random amounts and terms),
/// each evaluated by a parallel and a frugal server with the same simulators' data:
/// the decisions agree, a frugal decline gives only reasons the parallel one gives,
/// every skipped check is NOT_RUN, and frugal spends less in all.
#[tokio::test]
async fn frugal_reaches_the_decisions_parallel_does_for_less() {
    let policy = frugal_policy();
    let (parallel, frugal) = tokio::join!(TestApp::spawn(), spawn_frugal(&policy));
    let (mut p_client, mut f_client) = (parallel.client().await, frugal.client().await);
    let seed: u64 = rand::random();
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut p_spent, mut f_spent, mut skipped_declines) = (0, 0, 0);
    for case in 0..40 {
        let i = rng.gen_range(0..1000);
        // A tag per case: every application (and every upstream answer) is new to both
        // servers' caches.
        let mut a =
            dossier_devkit::cli::seed::application(i, &format!("cost{seed}-{case}")).unwrap();
        let financing = a.financing.as_mut().unwrap();
        financing.amount_cents = rng.gen_range(500_000..=30_000_000);
        financing.term_years = *[10, 15, 20, 25, 30].get(rng.gen_range(0..5)).unwrap();
        let key = format!("cost-{seed}-{case}");
        let (p, f) = tokio::join!(
            evaluate(&mut p_client, &key, a.clone()),
            evaluate(&mut f_client, &key, a)
        );
        let context = format!("case {case} (seed {seed}, application {i})");
        assert_eq!(p.decision(), f.decision(), "{context}: {p:#?}\n{f:#?}");
        assert!(
            f.reason_codes.iter().all(|c| p.reason_codes.contains(c)),
            "{context}: frugal {:?}, parallel {:?}",
            f.reason_codes,
            p.reason_codes
        );
        assert!(not_run(&p).is_empty(), "{context}: parallel skipped checks");
        if not_run(&f).is_empty() {
            // Nothing skipped: the same figures, the amount that would pass included.
            assert_eq!(
                f.amount_that_would_pass_cents, p.amount_that_would_pass_cents,
                "{context}"
            );
        }
        assert_eq!(p.checks.len(), f.checks.len(), "{context}");
        let (pc, fc) = (cost(&p), cost(&f));
        assert_eq!((pc.mode.as_str(), fc.mode.as_str()), ("parallel", "frugal"));
        if f.decision() != Decision::Declined {
            assert!(
                not_run(&f).is_empty(),
                "{context}: skipped without a decline"
            );
            assert_eq!(fc.spent_cents, pc.spent_cents, "{context}");
        }
        if !not_run(&f).is_empty() {
            skipped_declines += 1;
            assert!(
                fc.avoided_cents > 0 && fc.spent_cents < pc.spent_cents,
                "{context}"
            );
            for c in not_run(&f) {
                assert!(c.message.contains("already declined"), "{c:?}");
                assert!(c.upstream.is_empty(), "{c:?}");
            }
        }
        p_spent += pc.spent_cents;
        f_spent += fc.spent_cents;
    }
    eprintln!(
        "40 applications: parallel spent {p_spent} cents, frugal {f_spent}; {skipped_declines} declines skipped paid tiers"
    );
    assert!(
        skipped_declines > 0,
        "seed {seed}: no decline skipped anything"
    );
    assert!(f_spent < p_spent, "seed {seed}: {f_spent} >= {p_spent}");
    assert_every_decision_replays(&frugal).await;
}

/// A licence the board says expired declines in the second tier: the property, the
/// valuation and the applicants' identity are never asked (the simulators saw no
/// request), their checks are NOT_RUN naming the decline, and the spending and what
/// was avoided reach the report, the reporting view and Rails.
#[tokio::test]
async fn a_frugal_decline_asks_no_paid_vendor_after_it() {
    let policy = frugal_policy();
    let app = spawn_frugal(&policy).await;
    let mut client = app.client().await;
    // The seeded mix's expired licence (i % 10 = 7, (i / 10) % 3 = 1).
    let a = dossier_devkit::cli::seed::application(17, "frugal-decline").unwrap();
    let applicants = a.applicants.len() as i64;
    let report = evaluate(&mut client, "frugal-decline", a).await;
    assert_eq!(report.decision(), Decision::Declined, "{report:#?}");
    for upstream in [
        Upstream::PropertyRecords,
        Upstream::Valuation,
        Upstream::Identity,
    ] {
        assert_eq!(app.sims.stats(upstream).total(), 0, "{upstream} was asked");
    }
    let skipped = not_run(&report);
    let kinds: Vec<_> = skipped.iter().map(|c| c.kind()).collect();
    for kind in [
        proto::CheckKind::PropertyOwnership,
        proto::CheckKind::Valuation,
        proto::CheckKind::Identity,
        proto::CheckKind::AbilityToPay,
        proto::CheckKind::Bankruptcy,
    ] {
        assert!(kinds.contains(&kind), "{kind:?} not skipped: {kinds:?}");
    }
    for c in &skipped {
        assert!(c.message.contains("LICENSE_NOT_ACTIVE"), "{c:?}");
    }
    // The sanctions screen is never skipped.
    for c in report.checks.iter().filter(|c| {
        matches!(
            c.kind(),
            proto::CheckKind::PersonSanctions | proto::CheckKind::CompanySanctions
        )
    }) {
        assert_ne!(c.outcome(), CheckOutcome::NotRun, "{c:?}");
    }
    // Licensing and registry, 5 cents each; records 35, valuation 50, identity and
    // income 75 each per applicant, bankruptcy 75 per applicant avoided.
    let c = cost(&report);
    assert_eq!(
        (c.spent_cents, c.avoided_cents),
        (10, 35 + 50 + 225 * applicants)
    );
    let id: uuid::Uuid = report.application_id.parse().unwrap();
    let delivered = eventually(
        "the decision to reach Rails",
        Duration::from_secs(30),
        || {
            let sims = &app.sims;
            async move {
                sims.deliveries()
                    .for_application(id)
                    .first()
                    .map(|d| d.decision.clone())
            }
        },
    )
    .await;
    let carried = delivered.vendor_cost.expect("Rails is told the cost");
    assert_eq!(
        (carried.spent_cents, carried.avoided_cents),
        (c.spent_cents, c.avoided_cents)
    );
    let (mode, decisions, spent, avoided): (String, i64, i64, i64) = sqlx::query_as(
        "SELECT mode, decisions, spent_cents, avoided_cents FROM reporting.vendor_cost",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (mode.as_str(), decisions, spent, avoided),
        ("frugal", 1, c.spent_cents, c.avoided_cents)
    );
    assert_every_decision_replays(&app).await;
}

/// With the second AVM vendor in the valuation waterfall: the primary failing, or
/// answering with too little confidence, the secondary values the property, the
/// application is decided without referral, and the report names who answered and
/// why the primary's answer was not used.
#[tokio::test]
async fn the_second_avm_vendor_values_what_the_first_cannot() {
    let app = TestApp::spawn_configured(
        Vault::ephemeral(),
        |_| {},
        |config, _| {
            config.upstreams.waterfalls = Waterfalls::parse_file(
                "[waterfalls.valuation]\nvendors = [\"valuation\", \"alt_valuation\"]\n",
            )
            .unwrap();
            config
                .upstreams
                .credentials
                .insert(Upstream::AltValuation, "alt-avm-token".into());
        },
    )
    .await;
    let mut client = app.client().await;
    let valuation = |r: &proto::Report| {
        r.checks
            .iter()
            .find(|c| c.kind() == proto::CheckKind::Valuation)
            .cloned()
            .unwrap()
    };

    // A low-confidence estimate from the primary: referred without the waterfall
    // (the seeded mix's i % 10 = 9), approved with it.
    let low = dossier_devkit::cli::seed::application(9, "waterfall").unwrap();
    let report = evaluate(&mut client, "waterfall-lowconf", low).await;
    let v = valuation(&report);
    assert_eq!(v.upstream, "alt_valuation", "{v:#?}");
    assert_eq!(
        v.passed_over
            .iter()
            .map(|p| (p.upstream.as_str(), p.reason.as_str()))
            .collect::<Vec<_>>(),
        [("valuation", "low_confidence")]
    );
    assert_eq!(report.decision(), Decision::Approved, "{report:#?}");
    // Both estimates were fetched and paid for.
    assert_eq!(app.sims.stats(Upstream::Valuation).total(), 1);
    assert_eq!(app.sims.stats(Upstream::AltValuation).total(), 1);

    // The primary down: every request fails, the secondary answers.
    app.sims.set_behaviour(
        Upstream::Valuation,
        Behaviour {
            error_rate: 1.0,
            ..Behaviour::default()
        },
    );
    let a = dossier_devkit::cli::seed::application(0, "waterfall").unwrap();
    let report = evaluate(&mut client, "waterfall-down", a).await;
    let v = valuation(&report);
    assert_eq!(v.upstream, "alt_valuation", "{v:#?}");
    assert_eq!(v.passed_over.len(), 1, "{v:#?}");
    assert_eq!(v.passed_over[0].upstream, "valuation");
    assert_ne!(v.passed_over[0].reason, "low_confidence");
    assert_eq!(report.decision(), Decision::Approved, "{report:#?}");
    // Replay uses the answer that was used.
    assert_every_decision_replays(&app).await;
}
