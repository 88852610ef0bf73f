//! A replica cut off from one upstream (the property records vendor) while it and
//! PostgreSQL stay reachable.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dossier_devkit::harness::{TestDb, eventually};
use dossier_devkit::netns::proxy::Mode;
use dossier_devkit::sim::{SimConfig, Simulators, Upstream};
use dossier_service::proto;
use dossier_service::proto::CacheOutcome;
use dossier_service::proto::data_service_client::DataServiceClient;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;

use super::{Host, namespaces_or_skip, replica_log, start_placed};
use crate::fleet::clients::{Replicas, health, with_deadline};
use crate::fleet::{Logs, bounded, load_sanctions};

/// Property records answers expire after a second (so that an expired one is there to
/// serve stale), a try gives up after 500 ms and is not retried, and two outage
/// failures in a row open the breaker, which then stays open for the whole test.
const UPSTREAMS: &str = r#"
[property_records]
timeout = "500ms"
stale_grace = "1h"
[property_records.ttl]
default = "1s"
not_found = "1s"
[property_records.retry]
max_attempts = 1
[property_records.breaker]
consecutive_failures = 2
open_for = "10m"
"#;

/// The replica (in a namespace of its own) can no longer reach the property records
/// vendor: its connections there are held, never answered, never reset. That breaker
/// opens (`dossier_upstream_breaker_state` 2, "circuit breaker opened" logged); a
/// property it had looked up before is served from the cache, marked STALE, since the
/// policy's stale grace allows it; a property it never looked up, and a forced refresh
/// (which never falls back to the cache), fail with UNAVAILABLE; the other upstreams'
/// breakers stay closed and answer, and the replica stays SERVING.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_cut_off_from_one_upstream_opens_its_breaker_and_serves_stale() {
    const NAME: &str = "replica_cut_off_from_one_upstream_opens_its_breaker_and_serves_stale";
    if namespaces_or_skip(NAME) {
        bounded(NAME, upstream_cut()).await;
    }
}

async fn upstream_cut() {
    let logs = Logs::new("upstreamcut");
    let upstreams_file = logs.path().join("upstreams.toml");
    std::fs::write(&upstreams_file, UPSTREAMS).unwrap();
    let db = TestDb::migrated().await;
    load_sanctions(&db.url).await;
    let sims = Simulators::start(SimConfig::default()).await.unwrap();
    let host = Host::new(&db.url, &sims).await;
    let fleet = start_placed(
        &db.url,
        &sims,
        &logs,
        vec![host.placement(&db.url)],
        &[("DOSSIER_UPSTREAMS_FILE", upstreams_file.to_str().unwrap())],
    )
    .await;
    let replica = &fleet.replicas()[0];
    let (name, admin) = (replica.name.clone(), replica.admin);
    let channel = Replicas::new(&fleet.endpoints()).channel(0);
    let mut data = DataServiceClient::new(channel.clone());
    let pool = dossier_store::connect(&db.url, 2).await.unwrap();

    // Looked up once while the vendor answers, then left to expire.
    let first = property(&mut data, "1200 Harbor Blvd", false)
        .await
        .expect("the property records vendor answers before the cut");
    assert_eq!(source(&first, "property_records"), CacheOutcome::Fetched);
    eventually(
        "the cached property answer to expire",
        Duration::from_secs(30),
        || async {
            let expired: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM upstream_cache
                 WHERE upstream = 'property_records' AND expires_at < now()",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            (expired > 0).then_some(())
        },
    )
    .await;

    let vendor = host.upstream(Upstream::PropertyRecords);
    vendor.set(Mode::Cut);
    let cut_at = Instant::now();
    // Every look-up of the known property is answered, stale, while the failures that
    // open the breaker accumulate.
    let stale_answers = AtomicUsize::new(0);
    let cached = &first.profile;
    eventually(
        "the property records breaker to open",
        Duration::from_secs(60),
        || {
            let (mut data, stale) = (data.clone(), &stale_answers);
            async move {
                let answer = property(&mut data, "1200 Harbor Blvd", false)
                    .await
                    .expect("a cached property is served while its vendor is cut off");
                assert_eq!(
                    source(&answer, "property_records"),
                    CacheOutcome::Stale,
                    "{answer:?}"
                );
                assert_eq!(
                    &answer.profile, cached,
                    "the stale answer is the cached one"
                );
                stale.fetch_add(1, Ordering::Relaxed);
                (breaker_state(admin, "property_records").await == Some(2)).then_some(())
            }
        },
    )
    .await;
    eprintln!(
        "the property records breaker opened {:?} after the cut, after {} stale answers",
        cut_at.elapsed(),
        stale_answers.load(Ordering::Relaxed)
    );
    assert!(
        replica_log(&logs, &name).contains("circuit breaker opened"),
        "the replica logs the breaker opening"
    );

    // With the breaker open the vendor is not even tried: the stale answer comes at
    // once (the figure is printed, not judged).
    let started = Instant::now();
    let answer = property(&mut data, "1200 Harbor Blvd", false)
        .await
        .unwrap();
    assert_eq!(source(&answer, "property_records"), CacheOutcome::Stale);
    eprintln!(
        "stale answer with the breaker open in {:?}",
        started.elapsed()
    );

    // Where there is nothing cached to fall back on, or the caller refuses the cache,
    // the look-up fails with UNAVAILABLE (the breaker is open), within its deadline.
    for (line1, force_refresh) in [("1300 Harbor Blvd", false), ("1200 Harbor Blvd", true)] {
        let status = property(&mut data, line1, force_refresh)
            .await
            .expect_err("no answer without a cached one to serve");
        assert_eq!(
            status.code(),
            Code::Unavailable,
            "{line1}, force_refresh {force_refresh}: {}",
            status.message()
        );
    }

    // The other upstreams are not affected: a person look-up asks the identity vendor
    // and answers, and their breakers stay closed.
    let person = data
        .get_person_profile(with_deadline(proto::GetPersonProfileRequest {
            first_name: "Maria".into(),
            last_name: "Lopez".into(),
            ssn: "123-45-2222".into(),
            date_of_birth: Some(proto::Date {
                year: 1980,
                month: 6,
                day: 1,
            }),
            address: Some(address("1200 Harbor Blvd")),
            purpose: proto::LookupPurpose::Underwriting as i32,
            ..Default::default()
        }))
        .await
        .expect("the identity vendor still answers")
        .into_inner();
    assert!(
        person
            .sources
            .iter()
            .any(|s| s.upstream == "identity" && s.cache() == CacheOutcome::Fetched),
        "{:?}",
        person.sources
    );
    for other in ["identity", "valuation"] {
        assert_eq!(
            breaker_state(admin, other).await.unwrap_or(0),
            0,
            "the {other} breaker stays closed"
        );
    }
    assert_eq!(breaker_state(admin, "property_records").await, Some(2));
    assert_eq!(
        health(channel).await,
        Some(ServingStatus::Serving),
        "an upstream's outage does not make the replica unready"
    );
    eprintln!(
        "{} connections were held by the cut-off vendor's forwarder",
        vendor.connections()
    );

    vendor.set(Mode::Forward);
    pool.close().await;
    fleet.shutdown().await;
    sims.shutdown().await;
    drop(host);
}

fn address(line1: &str) -> proto::Address {
    proto::Address {
        line1: line1.into(),
        line2: String::new(),
        city: "Costa Mesa".into(),
        state: "CA".into(),
        postal_code: "92626".into(),
    }
}

async fn property(
    data: &mut DataServiceClient<Channel>,
    line1: &str,
    force_refresh: bool,
) -> Result<proto::GetPropertyProfileResponse, tonic::Status> {
    data.get_property_profile(with_deadline(proto::GetPropertyProfileRequest {
        address: Some(address(line1)),
        apn: String::new(),
        force_refresh,
    }))
    .await
    .map(tonic::Response::into_inner)
}

fn source(response: &proto::GetPropertyProfileResponse, upstream: &str) -> CacheOutcome {
    response
        .sources
        .iter()
        .find(|s| s.upstream == upstream)
        .unwrap_or_else(|| panic!("no {upstream} source in {:?}", response.sources))
        .cache()
}

/// `dossier_upstream_breaker_state{upstream="…"}` on the replica's admin port (None
/// before the breaker was ever set).
async fn breaker_state(admin: std::net::SocketAddr, upstream: &str) -> Option<i64> {
    // No proxy from the environment: the admin port is on the test's own link.
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let text = client
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .expect("the admin port answers")
        .text()
        .await
        .unwrap();
    let series = format!("dossier_upstream_breaker_state{{upstream=\"{upstream}\"}}");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as i64)
}
