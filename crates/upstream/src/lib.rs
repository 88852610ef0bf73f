//! Clients for every upstream Dossier protects: the vendors and the Rails backend.
//!
//! Each upstream lives in its own file with its wire types (the JSON it speaks), its
//! client, and the conversion of its answers into Dossier's evidence
//! (`dossier_core::evidence`): vendor JSON stops at this crate. The simulators
//! (`dossier-devkit`) serve the same wire types. Every client asks through its
//! [`layered::Layered`] stack: caches, coalescing, rate limit, breaker, retries. What the
//! stack needs from the fleet's shared state (PostgreSQL) is named by the traits in
//! [`shared`], which the store implements.

mod breaker;
mod coalesce;
mod error;
mod http;
pub mod identity;
mod latency;
mod layered;
pub mod licensing;
mod limit;
pub mod property_records;
pub mod rails;
pub mod registry;
mod retry;
pub mod sanctions;
pub mod settings;
pub mod shared;
pub mod trace_context;
pub mod valuation;
pub mod waterfall;

mod fleet_fetch;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use breaker::{Breaker, BreakerState};
pub use coalesce::Coalescer;
pub use dossier_core::domain::Upstream;
pub use error::UpstreamError;
pub use fleet_fetch::FETCH_LEASE;
pub use http::{CallContext, Fetched, HttpUpstream, UpstreamConfig, decode_answer};
pub use layered::Layered;
pub use settings::UpstreamPolicy;

pub use shared::SharedState;

/// The policy of every HTTP upstream, base URLs and credentials resolved.
#[derive(Clone)]
pub struct UpstreamSettings {
    pub policies: BTreeMap<Upstream, UpstreamPolicy>,
    /// Bearer credentials by upstream.
    pub credentials: BTreeMap<Upstream, String>,
    /// The vendors asked for each kind of data, in order.
    pub waterfalls: waterfall::Waterfalls,
}

impl std::fmt::Debug for UpstreamSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamSettings")
            .field("policies", &self.policies)
            .field("credentials", &self.credentials.keys().collect::<Vec<_>>())
            .field("waterfalls", &self.waterfalls)
            .finish()
    }
}

impl UpstreamSettings {
    pub fn policy(&self, upstream: Upstream) -> UpstreamPolicy {
        self.policies
            .get(&upstream)
            .cloned()
            .unwrap_or_else(|| UpstreamPolicy::default_for(upstream))
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
    /// The second AVM vendor (same wire format, its own stack).
    pub alt_valuation: valuation::ValuationClient,
    /// The second identity vendor (same wire format, its own stack).
    pub alt_identity: identity::IdentityClient,
    /// The protection stacks by upstream (breaker state, tests).
    pub stacks: BTreeMap<Upstream, Arc<layered::Layered>>,
    pub waterfalls: waterfall::Waterfalls,
}

impl Upstreams {
    pub fn new(s: &UpstreamSettings, shared: &SharedState) -> Upstreams {
        let mut stacks = BTreeMap::new();
        let mut stack = |name: Upstream| {
            let policy = s.policy(name);
            let http = HttpUpstream::new(
                UpstreamConfig {
                    name,
                    base_url: policy.base_url.clone().unwrap_or_default(),
                    credential: s.credentials.get(&name).cloned(),
                    timeout: policy.timeout,
                    cost_cents: policy.cost_cents,
                },
                shared.audit.clone(),
            );
            let l = layered::Layered::new(http, policy, shared);
            stacks.insert(name, l.clone());
            l
        };
        Upstreams {
            rails: rails::RailsClient::new(stack(Upstream::Rails)),
            property_records: property_records::PropertyRecordsClient::new(stack(
                Upstream::PropertyRecords,
            )),
            valuation: valuation::ValuationClient::new(stack(Upstream::Valuation)),
            identity: identity::IdentityClient::new(stack(Upstream::Identity)),
            licensing: licensing::LicensingClient::new(stack(Upstream::Licensing)),
            registry: registry::RegistryClient::new(stack(Upstream::Registry)),
            alt_valuation: valuation::ValuationClient::new(stack(Upstream::AltValuation)),
            alt_identity: identity::IdentityClient::new(stack(Upstream::AltIdentity)),
            stacks,
            waterfalls: s.waterfalls.clone(),
        }
    }

    /// The client of an AVM vendor.
    pub fn valuation_vendor(&self, vendor: Upstream) -> &valuation::ValuationClient {
        match vendor {
            Upstream::AltValuation => &self.alt_valuation,
            _ => &self.valuation,
        }
    }

    /// The client of an identity vendor.
    pub fn identity_vendor(&self, vendor: Upstream) -> &identity::IdentityClient {
        match vendor {
            Upstream::AltIdentity => &self.alt_identity,
            _ => &self.identity,
        }
    }

    /// What one request to `vendor` costs, in cents (0 for the local sanctions screen).
    pub fn cost_cents(&self, vendor: Upstream) -> i64 {
        self.stacks
            .get(&vendor)
            .map_or(0, |s| i64::from(s.policy.cost_cents))
    }
}

/// An upstream's answer as an evaluation uses it and replay stores it: found, not
/// found, or failed with the error's reason code (never its personal data: error
/// messages carry none).
pub fn answer_of<T>(
    r: Result<Option<Fetched<T>>, UpstreamError>,
) -> dossier_core::judge::Answer<T> {
    use dossier_core::judge::Answer;
    match r {
        Ok(Some(f)) => Answer::Found {
            value: f.value,
            source: f.source,
        },
        Ok(None) => Answer::NotFound,
        Err(e) => Answer::Failed {
            reason_code: e.reason_code().as_str().to_owned(),
            message: e.to_string(),
            upstream: e.upstream().as_str().to_owned(),
            kind: e.kind().to_owned(),
        },
    }
}
