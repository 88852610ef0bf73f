//! The upstream protection stack, layer by layer, against the real simulators and a
//! real PostgreSQL (the L2 cache and the audit trail).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dossier_core::domain::CacheOutcome;
use dossier_devkit::harness::TestDb;
use dossier_devkit::sim::{Behaviour, Fault, SimConfig, Simulators, Upstream};
use dossier_store::audit::{AuditSink, AuditWriter};
use dossier_store::{Store, Vault};
use dossier_upstream::breaker::BreakerState;
use dossier_upstream::property_records::PropertyQuery;
use dossier_upstream::settings::HTTP_UPSTREAMS;
use dossier_upstream::{CallContext, UpstreamError, UpstreamPolicy, UpstreamSettings, Upstreams};
use futures::future::join_all;

struct Rig {
    _db: TestDb,
    store: Store,
    sims: Simulators,
    upstreams: Upstreams,
    audit: Option<AuditWriter>,
}

fn settings(sims: &Simulators, tweak: impl Fn(&str, &mut UpstreamPolicy)) -> UpstreamSettings {
    let mut policies = BTreeMap::new();
    for name in HTTP_UPSTREAMS {
        let mut p = UpstreamPolicy::default_for(name);
        let upstream: Upstream = name.parse().unwrap();
        p.base_url = Some(sims.base_url(upstream));
        tweak(name, &mut p);
        policies.insert(name.to_owned(), p);
    }
    UpstreamSettings {
        policies,
        credentials: BTreeMap::from([("rails".to_owned(), sims.rails_token().to_owned())]),
    }
}

impl Rig {
    async fn new(tweak: impl Fn(&str, &mut UpstreamPolicy)) -> Rig {
        let db = TestDb::migrated().await;
        let pool = dossier_store::connect(&db.url, 10).await.unwrap();
        let store = Store::new(pool.clone(), Vault::ephemeral());
        let sims = Simulators::start(SimConfig::default()).await.unwrap();
        let (sink, writer) = AuditSink::start(pool);
        let upstreams = Upstreams::new(&settings(&sims, tweak), &store.shared_state(sink, None));
        Rig {
            _db: db,
            store,
            sims,
            upstreams,
            audit: Some(writer),
        }
    }

    /// Another pod with its own settings: its own memory and limiters, the same
    /// PostgreSQL.
    fn pod_with(&self, tweak: impl Fn(&str, &mut UpstreamPolicy)) -> Upstreams {
        let (sink, _writer) = AuditSink::start(self.store.pool.clone());
        Upstreams::new(
            &settings(&self.sims, tweak),
            &self.store.shared_state(sink, None),
        )
    }

    /// A pod as the server builds one: its own memory, limiters and LISTEN connection
    /// (fleet-wide coalescing), the same PostgreSQL.
    fn fleet_pod(&self) -> Upstreams {
        let (sink, _writer) = AuditSink::start(self.store.pool.clone());
        let fills = dossier_store::notify::Notifications::start(self.store.pool.clone());
        Upstreams::new(
            &settings(&self.sims, |_, _| {}),
            &self.store.shared_state(sink, Some(fills)),
        )
    }

    /// Another pod: its own memory, the same PostgreSQL.
    fn second_pod(&self) -> Upstreams {
        let (sink, _writer) = AuditSink::start(self.store.pool.clone());
        Upstreams::new(
            &settings(&self.sims, |_, _| {}),
            &self.store.shared_state(sink, None),
        )
    }

    fn count(&self, u: Upstream) -> u64 {
        self.sims.stats(u).total()
    }

    fn behave(&self, u: Upstream, f: impl FnOnce(&mut Behaviour)) {
        let mut b = self.sims.behaviour(u);
        f(&mut b);
        self.sims.set_behaviour(u, b);
    }

    /// Waits until every audit row is written.
    async fn flush_audit(&mut self) {
        // Drop every sink of the first writer (the replacement has its own writer).
        let replacement = self.second_pod();
        drop(std::mem::replace(&mut self.upstreams, replacement));
        if let Some(w) = self.audit.take() {
            tokio::time::timeout(Duration::from_secs(10), w.flush())
                .await
                .expect("audit flush");
        }
    }
}

fn address(n: u32) -> PropertyQuery {
    PropertyQuery {
        line1: format!("{n} Orchard Ln"),
        city: "Sacramento".into(),
        state: "CA".into(),
        postal_code: "95814".into(),
        apn: String::new(),
    }
}

fn ctx() -> CallContext {
    CallContext {
        deadline: Some(Instant::now() + Duration::from_secs(10)),
        ..Default::default()
    }
}

/// A thousand-caller burst asks the upstream each distinct question once.
#[tokio::test]
async fn concurrent_identical_questions_share_one_request() {
    let rig = Rig::new(|_, _| {}).await;
    rig.behave(Upstream::PropertyRecords, |b| b.latency_ms = 100);
    let calls = (0..200).map(|i| {
        let up = rig.upstreams.property_records.clone();
        async move { up.lookup(&address(i % 5), &ctx()).await }
    });
    let answers = join_all(calls).await;
    assert!(answers.iter().all(|a| matches!(a, Ok(Some(_)))));
    assert_eq!(
        rig.count(Upstream::PropertyRecords),
        5,
        "one request per distinct address"
    );
    let outcomes: Vec<CacheOutcome> = answers
        .iter()
        .map(|a| a.as_ref().unwrap().as_ref().unwrap().source.cache)
        .collect();
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == CacheOutcome::Fetched)
            .count(),
        5
    );
    assert!(outcomes.iter().all(|o| matches!(
        o,
        CacheOutcome::Fetched | CacheOutcome::Coalesced | CacheOutcome::L1Hit
    )));
}

/// Answers are reused from memory, and other pods reuse them from PostgreSQL.
#[tokio::test]
async fn answers_come_from_l1_then_from_l2_on_another_pod() {
    let rig = Rig::new(|_, _| {}).await;
    let first = rig
        .upstreams
        .property_records
        .lookup(&address(1), &ctx())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.source.cache, CacheOutcome::Fetched);
    let again = rig
        .upstreams
        .property_records
        .lookup(&address(1), &ctx())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.source.cache, CacheOutcome::L1Hit);
    assert!(again.source.cached);
    let other_pod = rig.second_pod();
    let shared = other_pod
        .property_records
        .lookup(&address(1), &ctx())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(shared.source.cache, CacheOutcome::L2Hit);
    assert_eq!(shared.value, first.value);
    assert_eq!(
        shared.source.fetched_at.timestamp_micros(),
        first.source.fetched_at.timestamp_micros()
    );
    assert_eq!(rig.count(Upstream::PropertyRecords), 1);
    // Case and spacing do not make a new question.
    let mut shouted = address(1);
    shouted.line1 = "1  ORCHARD LN".into();
    rig.upstreams
        .property_records
        .lookup(&shouted, &ctx())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rig.count(Upstream::PropertyRecords), 1);
}

/// An expired answer is fetched again; force_refresh skips fresh caches.
#[tokio::test]
async fn expiry_and_force_refresh_refetch() {
    let rig = Rig::new(|name, p| {
        if name == "valuation" {
            p.ttl = BTreeMap::from([("default".into(), Duration::ZERO)]);
        }
    })
    .await;
    rig.upstreams
        .valuation
        .estimate(&address(2), &ctx())
        .await
        .unwrap();
    rig.upstreams
        .valuation
        .estimate(&address(2), &ctx())
        .await
        .unwrap();
    assert_eq!(
        rig.count(Upstream::Valuation),
        2,
        "a zero TTL means every call refetches"
    );

    rig.upstreams
        .property_records
        .lookup(&address(2), &ctx())
        .await
        .unwrap();
    let forced = CallContext {
        force_refresh: true,
        ..ctx()
    };
    let fresh = rig
        .upstreams
        .property_records
        .lookup(&address(2), &forced)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fresh.source.cache, CacheOutcome::Fetched);
    assert_eq!(rig.count(Upstream::PropertyRecords), 2);
}

/// When the upstream fails, an expired answer within its grace is served, marked stale.
#[tokio::test]
async fn stale_if_error_serves_and_marks_stale() {
    let rig = Rig::new(|name, p| {
        if name == "property_records" {
            p.ttl = BTreeMap::from([("default".into(), Duration::ZERO)]);
            p.retry.max_attempts = 1;
        }
    })
    .await;
    let good = rig
        .upstreams
        .property_records
        .lookup(&address(3), &ctx())
        .await
        .unwrap()
        .unwrap();
    rig.behave(Upstream::PropertyRecords, |b| b.fault = Fault::HtmlError);
    let stale = rig
        .upstreams
        .property_records
        .lookup(&address(3), &ctx())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stale.source.cache, CacheOutcome::Stale);
    assert!(stale.source.stale);
    assert_eq!(stale.value, good.value);
    assert_eq!(
        stale.source.fetched_at, good.source.fetched_at,
        "the report shows when the data was really fetched"
    );
    // Without anything cached, the failure is the answer.
    let err = rig
        .upstreams
        .property_records
        .lookup(&address(4), &ctx())
        .await
        .unwrap_err();
    assert_eq!(err.reason_code(), "UPSTREAM_ERROR", "{err}");
}

/// A failed answer is never cached as a success.
#[tokio::test]
async fn failures_are_not_cached() {
    let rig = Rig::new(|_, p| p.retry.max_attempts = 1).await;
    for (round, fault) in [
        Fault::MalformedJson,
        Fault::ErrorIn200,
        Fault::TruncatedBody,
        Fault::HtmlError,
        Fault::ConnectionReset,
    ]
    .into_iter()
    .enumerate()
    {
        // A new licence number each round: nothing from an earlier round can answer.
        let number = format!("12345{round}");
        rig.behave(Upstream::Licensing, |b| b.fault = fault);
        let before = rig.count(Upstream::Licensing);
        let err = rig
            .upstreams
            .licensing
            .license("CA", &number, &ctx())
            .await
            .unwrap_err();
        assert_eq!(err.upstream(), "licensing", "{fault:?}: {err}");
        rig.behave(Upstream::Licensing, |b| b.fault = Fault::None);
        let ok = rig
            .upstreams
            .licensing
            .license("CA", &number, &ctx())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            ok.source.cache,
            CacheOutcome::Fetched,
            "{fault:?}: the failure was not cached"
        );
        assert_eq!(rig.count(Upstream::Licensing), before + 2);
    }
}

/// The breaker opens on consecutive failures, refuses without calling, and closes
/// after a successful probe.
#[tokio::test]
async fn breaker_opens_and_recovers() {
    let rig = Rig::new(|name, p| {
        if name == "registry" {
            p.retry.max_attempts = 1;
            p.breaker.consecutive_failures = 3;
            p.breaker.open_for = Duration::from_secs(3600);
        }
        if name == "valuation" {
            p.retry.max_attempts = 1;
            p.breaker.consecutive_failures = 2;
            p.breaker.open_for = Duration::ZERO; // probe at once
        }
    })
    .await;
    rig.behave(Upstream::Registry, |b| b.error_rate = 1.0);
    for i in 0..3 {
        let e = rig
            .upstreams
            .registry
            .business(&format!("Biz {i}"), "CA", &ctx())
            .await
            .unwrap_err();
        assert!(
            matches!(e, UpstreamError::Status { status: 503, .. }),
            "{e}"
        );
    }
    assert_eq!(
        rig.upstreams.stacks["registry"].breaker().state(),
        BreakerState::Open
    );
    let refused = rig
        .upstreams
        .registry
        .business("Biz 9", "CA", &ctx())
        .await
        .unwrap_err();
    assert!(
        matches!(refused, UpstreamError::CircuitOpen { .. }),
        "{refused}"
    );
    assert_eq!(
        rig.count(Upstream::Registry),
        3,
        "an open breaker does not call"
    );

    rig.behave(Upstream::Valuation, |b| b.error_rate = 1.0);
    for i in 0..2 {
        rig.upstreams
            .valuation
            .estimate(&address(10 + i), &ctx())
            .await
            .unwrap_err();
    }
    assert_eq!(
        rig.upstreams.stacks["valuation"].breaker().state(),
        BreakerState::Open
    );
    rig.behave(Upstream::Valuation, |b| b.error_rate = 0.0);
    rig.upstreams
        .valuation
        .estimate(&address(20), &ctx())
        .await
        .unwrap();
    assert_eq!(
        rig.upstreams.stacks["valuation"].breaker().state(),
        BreakerState::Closed
    );
}

/// A 429 is retried after its Retry-After, and the caller gets the answer.
#[tokio::test]
async fn a_429_is_retried_after_retry_after() {
    let mut rig = Rig::new(|name, p| {
        if name == "licensing" {
            p.retry.max_attempts = 3;
        }
    })
    .await;
    rig.behave(Upstream::Licensing, |b| b.quota_per_second = Some(1.0));
    rig.upstreams
        .licensing
        .license("CA", "111111", &ctx())
        .await
        .unwrap();
    let second = rig
        .upstreams
        .licensing
        .license("CA", "222222", &ctx())
        .await
        .unwrap();
    assert!(second.is_some());
    assert_eq!(rig.count(Upstream::Licensing), 3, "first, refused, retried");
    rig.flush_audit().await;
    let statuses: Vec<Option<i32>> = sqlx::query_scalar(
        "SELECT http_status FROM upstream_calls WHERE upstream = 'licensing' ORDER BY id",
    )
    .fetch_all(&rig.store.pool)
    .await
    .unwrap();
    assert_eq!(statuses, vec![Some(200), Some(429), Some(200)]);
}

/// Retries stop at the caller's deadline.
#[tokio::test]
async fn the_deadline_stops_retries() {
    let rig = Rig::new(|name, p| {
        if name == "identity" {
            p.retry.max_attempts = 50;
            p.retry.base_backoff = Duration::from_millis(50);
            p.retry.max_backoff = Duration::from_millis(100);
            p.breaker.consecutive_failures = 1000;
        }
    })
    .await;
    rig.behave(Upstream::Identity, |b| b.error_rate = 1.0);
    let query = dossier_upstream::identity::PersonQuery {
        first_name: "Ana".into(),
        middle_name: String::new(),
        last_name: "Lopez".into(),
        ssn: "123456789".into(),
        date_of_birth: chrono::NaiveDate::from_ymd_opt(1980, 1, 1).unwrap(),
        line1: "1 Main St".into(),
        city: "Fresno".into(),
        state: "CA".into(),
        postal_code: "93701".into(),
    };
    let short = CallContext {
        deadline: Some(Instant::now() + Duration::from_millis(400)),
        ..Default::default()
    };
    let err = rig
        .upstreams
        .identity
        .verify(&query, &short)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            UpstreamError::Status { status: 503, .. } | UpstreamError::DeadlineExceeded { .. }
        ),
        "{err}"
    );
    assert!(
        rig.count(Upstream::Identity) < 50,
        "retries stopped before max_attempts"
    );
}

/// Past the quota, callers wait for a permit within their deadline or are refused with
/// a retry delay; the upstream never sees the excess.
#[tokio::test]
async fn the_rate_limit_refuses_what_cannot_wait() {
    let rig = Rig::new(|name, p| {
        if name == "registry" {
            p.rate_per_second = 0.5;
            p.burst = 1;
        }
    })
    .await;
    rig.upstreams
        .registry
        .business("First Co", "CA", &ctx())
        .await
        .unwrap();
    let hurried = CallContext {
        deadline: Some(Instant::now() + Duration::from_millis(200)),
        ..Default::default()
    };
    let err = rig
        .upstreams
        .registry
        .business("Second Co", "CA", &hurried)
        .await
        .unwrap_err();
    match err {
        UpstreamError::RateLimited {
            retry_after: Some(d),
            ..
        } => assert!(d > Duration::ZERO),
        other => panic!("expected RateLimited, got {other}"),
    }
    assert_eq!(rig.count(Upstream::Registry), 1);
}

/// Concurrent look-ups of different Rails applications become one batch request.
#[tokio::test]
async fn rails_lookups_are_batched() {
    let rig = Rig::new(|_, _| {}).await;
    let calls = (0..20).map(|i| {
        let rails = rig.upstreams.rails.clone();
        async move { rails.application(&format!("app-{i}"), &ctx()).await }
    });
    let answers = join_all(calls).await;
    assert!(
        answers.iter().all(|a| matches!(a, Ok(Some(_)))),
        "{answers:?}"
    );
    let stats = rig.sims.stats(Upstream::Rails);
    assert_eq!(stats.count("GET /api/v1/pace_applications/{id}"), 0);
    let batches = stats.count("GET /api/v1/pace_applications");
    assert!(
        (1..20).contains(&batches),
        "20 look-ups in {batches} batch requests"
    );
    let missing = rig
        .upstreams
        .rails
        .application("missing-1", &ctx())
        .await
        .unwrap();
    assert!(missing.is_none());
}

/// With `fleet_limit`, the quota holds for all pods together: two pods, each whose own
/// limiter would allow a burst of 2, together get 2 permits (the rate is so low that no
/// permit refills during the test).
#[tokio::test]
async fn the_fleet_shares_one_quota() {
    let fleet = |name: &str, p: &mut UpstreamPolicy| {
        if name == "registry" {
            p.rate_per_second = 0.01;
            p.burst = 2;
            p.fleet_limit = true;
            p.retry.max_attempts = 1;
        }
    };
    let rig = Rig::new(fleet).await;
    let other = rig.pod_with(fleet);
    let hurried = || CallContext {
        deadline: Some(Instant::now() + Duration::from_millis(300)),
        ..Default::default()
    };
    let mut granted = 0;
    let mut refused = 0;
    for i in 0..3 {
        for pod in [&rig.upstreams, &other] {
            match pod
                .registry
                .business(
                    &format!("Fleet Co {i} {}", granted + refused),
                    "CA",
                    &hurried(),
                )
                .await
            {
                Ok(_) => granted += 1,
                Err(UpstreamError::RateLimited {
                    retry_after: Some(wait),
                    ..
                }) => {
                    assert!(wait > Duration::from_secs(1), "{wait:?}");
                    refused += 1;
                }
                Err(e) => panic!("unexpected {e}"),
            }
        }
    }
    assert_eq!((granted, refused), (2, 4));
    assert_eq!(
        rig.count(Upstream::Registry),
        2,
        "the vendor saw the fleet's quota, not twice it"
    );
}

/// Three pods miss the shared cache for the same addresses at the same time: one pod
/// fetches each, the others wait for its fill. The vendor sees each question once
/// (without the fetch lease it would see each question once per pod).
#[tokio::test]
async fn pods_that_miss_together_ask_the_vendor_once() {
    let rig = Rig::new(|_, _| {}).await;
    let pods = [rig.fleet_pod(), rig.fleet_pod(), rig.fleet_pod()];
    // Slow enough that every pod asks while the first fetch is in flight.
    rig.behave(Upstream::PropertyRecords, |b| b.latency_ms = 300);
    let calls = (0..60).map(|i| {
        let up = pods[i % 3].property_records.clone();
        async move { up.lookup(&address(i as u32 % 4), &ctx()).await }
    });
    let answers = join_all(calls).await;
    let mut fetched = 0;
    for a in &answers {
        let a = a.as_ref().unwrap().as_ref().unwrap();
        match a.source.cache {
            CacheOutcome::Fetched => fetched += 1,
            CacheOutcome::Coalesced | CacheOutcome::L2Hit => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        rig.count(Upstream::PropertyRecords),
        4,
        "one request per distinct address for the whole fleet"
    );
    assert_eq!(fetched, 4);
    // Every lease was released with its fill.
    let leases: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM upstream_fetch_leases WHERE until > now() OR fresh_until IS NULL",
    )
    .fetch_one(&rig.store.pool)
    .await
    .unwrap();
    assert_eq!(leases, 0);
}

/// A pod that died holding a fetch lease does not block the question: the next pod
/// waits for the lease to lapse, then fetches itself.
#[tokio::test]
async fn a_lease_left_by_a_dead_pod_lapses_and_another_pod_fetches() {
    let rig = Rig::new(|_, _| {}).await;
    let pod = rig.fleet_pod();
    // What the dead pod left: a lease on address 7 that lapses in a second.
    let key_hash = rig.store.vault.lookup_hash(
        "cache:property_records:property",
        serde_json::to_string(&dossier_upstream::property_records::normalised(&address(7)))
            .unwrap()
            .as_bytes(),
    );
    sqlx::query(
        "INSERT INTO upstream_fetch_leases (upstream, kind, key, holder, until)
         VALUES ('property_records', 'property', $1, 'dead-pod', clock_timestamp() + interval '1 second')",
    )
    .bind(&key_hash)
    .execute(&rig.store.pool)
    .await
    .unwrap();
    let answer = pod
        .property_records
        .lookup(&address(7), &ctx())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer.source.cache, CacheOutcome::Fetched);
    assert_eq!(rig.count(Upstream::PropertyRecords), 1);
    let holder: Option<String> = sqlx::query_scalar(
        "SELECT holder FROM upstream_fetch_leases WHERE until > now() OR fresh_until IS NULL",
    )
    .fetch_optional(&rig.store.pool)
    .await
    .unwrap();
    assert_eq!(
        holder, None,
        "the lease was taken over and released with the fill"
    );
}

/// The periodic purge removes answers past their stale grace and lease rows that guard
/// nothing, and keeps what is still of use: a fresh answer, a held lease, a lease row
/// guarding a fresh answer.
#[tokio::test]
async fn the_purge_keeps_what_is_fresh_and_held() {
    let rig = Rig::new(|_, _| {}).await;
    let pool = &rig.store.pool;
    for (key, stale_until) in [
        ("old", "now() - interval '1 minute'"),
        ("new", "now() + interval '1 hour'"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO upstream_cache (upstream, kind, key, body, fetched_at, expires_at, stale_until)
             VALUES ('valuation', 'avm', '{key}'::bytea, '{{}}', now(), {stale_until}, {stale_until})"
        )))
        .execute(pool)
        .await
        .unwrap();
    }
    for (key, until, fresh_until) in [
        (
            "spent",
            "now() - interval '1 second'",
            "now() - interval '1 second'",
        ),
        ("held", "now() + interval '1 minute'", "NULL"),
        (
            "guarding",
            "now() - interval '1 second'",
            "now() + interval '1 hour'",
        ),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO upstream_fetch_leases (upstream, kind, key, holder, until, fresh_until)
             VALUES ('valuation', 'avm', '{key}'::bytea, 'pod', {until}, {fresh_until})"
        )))
        .execute(pool)
        .await
        .unwrap();
    }
    assert_eq!(rig.store.cache_purge().await.unwrap(), 2);
    let left: Vec<String> = sqlx::query_scalar(
        "SELECT convert_from(key, 'UTF8') FROM upstream_cache
         UNION ALL SELECT convert_from(key, 'UTF8') FROM upstream_fetch_leases ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(left, ["guarding", "held", "new"]);
}
