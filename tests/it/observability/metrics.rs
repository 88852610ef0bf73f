//! The metrics of docs/metrics.md, scraped from real servers after real work.
//!
//! Servers started in this test binary share one process-wide recorder, so an in-process
//! server's gauges may be overwritten by another test's server at any moment. The
//! fleet-wide gauges are therefore checked on `dossier serve` processes (the fleet
//! runner), each with its own recorder: two of them on one database, which must report
//! the same fleet values. In-process, only what sharing cannot falsify is asserted:
//! every series' presence with its help and type, counters that grow, bounds.

use std::collections::BTreeMap;
use std::time::Duration;

use dossier_devkit::fleet::{Fleet, FleetSpec};
use dossier_devkit::harness::{TestApp, TestDb, as_reviewer, evaluate_request, eventually};
use dossier_devkit::sim::{Behaviour, SimConfig, Simulators, Upstream};
use dossier_service::metric_catalogue::{Kind, METRICS};
use dossier_service::proto;

use crate::fleet::{BINARY, Logs, bounded, load_sanctions};

const WITHIN: Duration = Duration::from_secs(30);

/// One sample of a scrape: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The samples of a Prometheus text scrape (Dossier's label values hold no `,` or `"`).
fn samples(scrape: &str) -> Vec<Sample> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample line");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let (k, v) = l.split_once('=').expect("label=value");
                    (k.to_owned(), v.trim_matches('"').to_owned())
                })
                .collect();
            Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().expect("a number"),
            }
        })
        .collect()
}

/// The value of the one series of `name` whose labels include `labels`.
fn value(scrape: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<f64> = samples(scrape)
        .into_iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .collect();
    assert!(
        found.len() <= 1,
        "{name} {labels:?} matches {} series",
        found.len()
    );
    found.first().copied()
}

async fn scrape(admin: std::net::SocketAddr) -> String {
    reqwest::get(format!("http://{admin}/metrics"))
        .await
        .expect("the admin port answers")
        .text()
        .await
        .expect("metrics are text")
}

/// After two approvals, a referral, an application fetched from Rails and a review, every
/// metric that work
/// moves is scraped with its `# HELP` and `# TYPE`, and the values are plausible.
#[tokio::test]
async fn the_metrics_of_real_work_are_scraped_with_help_type_and_plausible_values() {
    let app = TestApp::spawn().await;
    let before = app.metrics().await;
    let decided =
        |scrape: &str, d: &str| value(scrape, "dossier_decisions_total", &[("decision", d)]);
    // Counters are the process's: other tests' servers count into them too.
    let refer_before = decided(&before, "refer").unwrap_or(0.0);
    let mut client = app.client().await;
    for (example, key) in [
        ("approve", "obs-1"),
        ("approve", "obs-1b"),
        ("rails", "obs-3"),
    ] {
        client
            .evaluate_application(evaluate_request(example, key))
            .await
            .unwrap();
    }
    let referred = client
        .evaluate_application(evaluate_request("refer", "obs-2"))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    client
        .review_application(as_reviewer(
            proto::ReviewApplicationRequest {
                application_id: referred.application_id,
                outcome: proto::ReviewOutcome::Decline as i32,
                note: "The trust deed names another trustee.".into(),
                ..Default::default()
            },
            "uw.obs@example.com",
        ))
        .await
        .unwrap();
    // Deliveries (and so the Rails batch and try durations) happen in the background.
    let text = eventually(
        "the deliveries and a fleet sample to be counted",
        WITHIN,
        || async {
            let text = app.metrics().await;
            let delivered = value(
                &text,
                "dossier_decisions_delivered_total",
                &[("duplicate", "false")],
            );
            (delivered.is_some() && text.contains("dossier_fleet_sample_timestamp_seconds "))
                .then_some(text)
        },
    )
    .await;

    // Series this work creates, every one of them with its help and type. The rest of
    // the catalogue (TLS, authorisation, shedding, mended connections, rate-limit
    // refusals) needs failures this test does not cause, or work it does not do
    // (funding checks and their reviews, sanctions monitoring alerts, purging rows past
    // their retention: tests/it/retention.rs scrapes that one).
    let not_here = [
        "dossier_funding_checks_total",
        "dossier_funding_reviews_total",
        "dossier_sanctions_alerts_total",
        "dossier_rpc_shed_total",
        "dossier_watch_streams_refused_total",
        "dossier_authz_denied_total",
        "dossier_tls_handshake_failures_total",
        "dossier_tls_reloads_total",
        "dossier_db_connections_mended_total",
        "dossier_retention_purged_rows_total",
    ];
    for m in METRICS.iter().filter(|m| !not_here.contains(&m.name)) {
        assert!(
            text.contains(&format!("# HELP {} {}", m.name, m.help)),
            "no help text for {}",
            m.name
        );
        assert!(
            text.contains(&format!("# TYPE {} {}", m.name, m.kind.as_str())),
            "no type for {}",
            m.name
        );
        let sample = if m.kind == Kind::Histogram {
            format!("{}_count", m.name)
        } else {
            m.name.to_owned()
        };
        assert!(
            samples(&text).iter().any(|s| s.name == sample),
            "no sample of {} after the work",
            m.name
        );
    }

    assert_eq!(
        value(
            &text,
            "dossier_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    assert!(decided(&text, "refer").unwrap() >= refer_before + 1.0);
    assert!(decided(&text, "approved").unwrap() >= 1.0);
    assert!(value(&text, "dossier_reviews_total", &[("outcome", "decline")]).unwrap() >= 1.0);
    for outcome in ["fetched", "l1_hit"] {
        // The second approval asked the first one's questions: answered from memory.
        assert!(
            samples(&text)
                .iter()
                .any(|s| s.name == "dossier_upstream_requests_total"
                    && s.labels.get("outcome").map(String::as_str) == Some(outcome)),
            "no upstream answer counted as {outcome}"
        );
    }
    let max = value(&text, "dossier_db_pool_max_connections", &[]).unwrap();
    let in_use = value(&text, "dossier_db_pool_connections", &[("state", "in_use")]).unwrap();
    let idle = value(&text, "dossier_db_pool_connections", &[("state", "idle")]).unwrap();
    assert!(
        max >= 1.0 && in_use >= 0.0 && idle >= 0.0 && in_use + idle <= max,
        "pool {in_use} + {idle} of {max}"
    );
    // The harness's servers load the sample list when they start: loaded in this century.
    let loaded = value(
        &text,
        "dossier_sanctions_list_loaded_timestamp_seconds",
        &[],
    )
    .unwrap();
    assert!(loaded > 1.7e9, "sanctions list loaded at {loaded}");
}

/// Two `dossier serve` processes on one database, the Rails callback failing: a decision
/// whose one allowed delivery attempt fails is a dead letter, the referral waits for an
/// underwriter, another decision's delivery keeps being retried. Both pods report the
/// same fleet: one dead letter, one referral in the review queue, a delivery lagging.
#[tokio::test]
async fn every_pod_reports_the_fleets_dead_letters_review_queue_and_delivery_lag() {
    bounded("fleet metrics", async {
        let db = TestDb::migrated().await;
        load_sanctions(&db.url).await;
        let sims = Simulators::start(SimConfig::default()).await.unwrap();
        sims.set_behaviour(
            Upstream::Rails,
            Behaviour {
                error_rate: 1.0,
                ..Behaviour::default()
            },
        );
        let pool = dossier_store::connect(&db.url, 2).await.unwrap();
        // The first delivery has one attempt, so its first failure dead-letters it.
        sqlx::raw_sql(
            "CREATE FUNCTION one_attempt() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN NEW.max_attempts := 1; RETURN NEW; END $$;
             CREATE TRIGGER one_attempt BEFORE INSERT ON jobs FOR EACH ROW
                 WHEN (NEW.kind = 'deliver') EXECUTE FUNCTION one_attempt();",
        )
        .execute(&pool)
        .await
        .unwrap();

        let logs = Logs::new("metrics");
        let mut env = FleetSpec::local_env(&db.url, &sims);
        env.push(("DOSSIER_FLEET_METRICS_INTERVAL".into(), "1s".into()));
        let fleet = Fleet::start(FleetSpec {
            binary: BINARY.into(),
            replicas: 2,
            base_port: 0,
            env,
            log_dir: Some(logs.path()),
        })
        .await
        .unwrap_or_else(|e| panic!("the fleet did not start: {e:#}"));
        let endpoint = fleet.replicas()[0].endpoint();
        let mut client =
            proto::underwriting_service_client::UnderwritingServiceClient::connect(endpoint)
                .await
                .unwrap();
        client
            .evaluate_application(evaluate_request("refer", "fleet-obs-1"))
            .await
            .unwrap();
        eventually(
            "the referral's delivery to be dead-lettered",
            WITHIN,
            || async {
                let dead: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM jobs WHERE kind = 'deliver' AND state = 'dead'",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                (dead == 1).then_some(())
            },
        )
        .await;
        sqlx::raw_sql("DROP TRIGGER one_attempt ON jobs")
            .execute(&pool)
            .await
            .unwrap();
        client
            .evaluate_application(evaluate_request("approve", "fleet-obs-2"))
            .await
            .unwrap();

        for replica in fleet.replicas() {
            let text = eventually(
                "this pod to report the fleet's dead letter, referral and lag",
                WITHIN,
                || async {
                    let text = scrape(replica.admin).await;
                    let dead = value(
                        &text,
                        "dossier_queue_jobs",
                        &[("kind", "deliver"), ("state", "dead")],
                    );
                    let lag = value(
                        &text,
                        "dossier_delivery_lag_seconds",
                        &[("kind", "deliver")],
                    );
                    let referred = value(&text, "dossier_review_queue_applications", &[]);
                    (dead == Some(1.0) && referred == Some(1.0) && lag.is_some_and(|l| l > 0.0))
                        .then_some(text)
                },
            )
            .await;
            // No other job is dead, and nothing else waits: the approval's delivery is
            // queued for its retry or being sent.
            assert_eq!(
                value(
                    &text,
                    "dossier_queue_jobs",
                    &[("kind", "evaluate"), ("state", "dead")]
                ),
                Some(0.0)
            );
            assert_eq!(
                value(
                    &text,
                    "dossier_queue_jobs",
                    &[("kind", "deliver_review"), ("state", "dead")]
                ),
                Some(0.0)
            );
            let deliveries: f64 = ["queued", "running"]
                .iter()
                .map(|s| {
                    value(
                        &text,
                        "dossier_queue_jobs",
                        &[("kind", "deliver"), ("state", *s)],
                    )
                    .unwrap()
                })
                .sum();
            assert_eq!(deliveries, 1.0, "the approval's delivery");
            let oldest = value(&text, "dossier_review_queue_oldest_age_seconds", &[]).unwrap();
            assert!(
                (0.0..WITHIN.as_secs_f64() * 4.0).contains(&oldest),
                "oldest referral {oldest} s old"
            );
            assert_eq!(
                value(
                    &text,
                    "dossier_delivery_lag_seconds",
                    &[("kind", "deliver_review")]
                ),
                Some(0.0)
            );
            let loaded = value(
                &text,
                "dossier_sanctions_list_loaded_timestamp_seconds",
                &[],
            )
            .unwrap();
            assert!(loaded > 1.7e9, "sanctions list loaded at {loaded}");
        }
        fleet.shutdown().await;
    })
    .await;
}
