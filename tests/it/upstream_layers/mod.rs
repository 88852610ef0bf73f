//! The upstream protection stack, layer by layer, against the real simulators and a
//! real PostgreSQL (the L2 cache and the audit trail).

mod breaker;
mod caching;
mod coalescing;
mod fleet_coalescing;
mod hostile;
mod purge;
mod rate_limits;
mod retries;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dossier_devkit::harness::TestDb;
use dossier_devkit::sim::{Behaviour, SimConfig, Simulators, Upstream};
use dossier_store::audit::{AuditSink, AuditWriter};
use dossier_store::{Store, Vault};
use dossier_upstream::property_records::PropertyQuery;
use dossier_upstream::{CallContext, UpstreamPolicy, UpstreamSettings, Upstreams};

struct Rig {
    _db: TestDb,
    store: Store,
    sims: Simulators,
    upstreams: Upstreams,
    audit: Option<AuditWriter>,
}

fn settings(sims: &Simulators, tweak: impl Fn(Upstream, &mut UpstreamPolicy)) -> UpstreamSettings {
    let mut policies = BTreeMap::new();
    for upstream in Upstream::HTTP {
        let mut p = UpstreamPolicy::default_for(upstream);
        p.base_url = Some(sims.base_url(upstream));
        tweak(upstream, &mut p);
        policies.insert(upstream, p);
    }
    UpstreamSettings {
        policies,
        credentials: BTreeMap::from([(Upstream::Rails, sims.rails_token().to_owned())]),
        waterfalls: Default::default(),
    }
}

impl Rig {
    async fn new(tweak: impl Fn(Upstream, &mut UpstreamPolicy)) -> Rig {
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
    fn pod_with(&self, tweak: impl Fn(Upstream, &mut UpstreamPolicy)) -> Upstreams {
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
