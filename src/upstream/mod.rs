//! Clients for every upstream Dossier protects: the vendors and the Rails backend.
//!
//! Each upstream lives in its own file with its wire types (the JSON it speaks) and its
//! client. The simulators in `sim/` serve the same wire types. Every client asks through
//! its [`layered::Layered`] stack: caches, coalescing, rate limit, breaker, retries.

pub mod breaker;
pub mod coalesce;
pub mod error;
pub mod http;
pub mod identity;
pub mod layered;
pub mod licensing;
pub mod limit;
pub mod property_records;
pub mod rails;
pub mod registry;
pub mod retry;
pub mod sanctions;
pub mod settings;
pub mod valuation;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use error::UpstreamError;
pub use http::{CallContext, Fetched, HttpUpstream, UpstreamConfig};
pub use settings::UpstreamPolicy;

use crate::store::Store;
use crate::store::audit::AuditSink;
use crate::store::notify::Notifications;

/// The policy of every HTTP upstream, base URLs and credentials resolved.
#[derive(Clone)]
pub struct UpstreamSettings {
    pub policies: BTreeMap<String, UpstreamPolicy>,
    /// Bearer credentials by upstream name.
    pub credentials: BTreeMap<String, String>,
}

impl std::fmt::Debug for UpstreamSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamSettings")
            .field("policies", &self.policies)
            .field("credentials", &self.credentials.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl UpstreamSettings {
    pub fn policy(&self, name: &str) -> UpstreamPolicy {
        self.policies
            .get(name)
            .cloned()
            .unwrap_or_else(|| UpstreamPolicy::default_for(name))
    }
}

/// One client per upstream, shared by every handler and worker of a process.
#[derive(Debug, Clone)]
pub struct Upstreams {
    pub rails: rails::RailsClient,
    pub property_records: property_records::PropertyRecordsClient,
    pub valuation: valuation::ValuationClient,
    pub identity: identity::IdentityClient,
    pub licensing: licensing::LicensingClient,
    pub registry: registry::RegistryClient,
    /// The protection stacks by upstream name (breaker state, tests).
    pub stacks: BTreeMap<&'static str, Arc<layered::Layered>>,
}

impl Upstreams {
    /// `fills`: this process's notifications, for fleet-wide coalescing (None: each pod
    /// fetches on its own after a shared-cache miss).
    pub fn new(
        s: &UpstreamSettings,
        audit: AuditSink,
        store: Store,
        fills: Option<Notifications>,
    ) -> Upstreams {
        let mut stacks = BTreeMap::new();
        let mut stack = |name: &'static str| {
            let policy = s.policy(name);
            let http = HttpUpstream::new(
                UpstreamConfig {
                    name,
                    base_url: policy.base_url.clone().unwrap_or_default(),
                    credential: s.credentials.get(name).cloned(),
                    timeout: policy.timeout,
                    cost_cents: policy.cost_cents,
                },
                audit.clone(),
            );
            let l = layered::Layered::new(http, policy, store.clone(), fills.clone());
            stacks.insert(name, l.clone());
            l
        };
        Upstreams {
            rails: rails::RailsClient::new(stack("rails")),
            property_records: property_records::PropertyRecordsClient::new(stack(
                "property_records",
            )),
            valuation: valuation::ValuationClient::new(stack("valuation")),
            identity: identity::IdentityClient::new(stack("identity")),
            licensing: licensing::LicensingClient::new(stack("licensing")),
            registry: registry::RegistryClient::new(stack("registry")),
            stacks,
        }
    }
}
