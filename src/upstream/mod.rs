//! Clients for every upstream Dossier protects: the vendors and the Rails backend.
//!
//! Each upstream lives in its own file with its wire types (the JSON it speaks) and its
//! client. The simulators in `sim/` serve the same wire types.

pub mod error;
pub mod http;
pub mod identity;
pub mod licensing;
pub mod property_records;
pub mod rails;
pub mod registry;
pub mod valuation;

use std::time::Duration;

pub use error::UpstreamError;
pub use http::{CallContext, Fetched, HttpUpstream, UpstreamConfig};

use crate::store::audit::AuditSink;

/// Where each upstream lives and how to call it.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    pub rails_url: String,
    pub rails_token: Option<String>,
    pub property_records_url: String,
    pub valuation_url: String,
    pub identity_url: String,
    pub licensing_url: String,
    pub registry_url: String,
    pub timeout: Duration,
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
}

impl Upstreams {
    pub fn new(s: &UpstreamSettings, audit: AuditSink) -> Upstreams {
        let http = |name: &'static str, url: &str, credential: Option<String>, cost_cents: i32| {
            HttpUpstream::new(
                UpstreamConfig {
                    name,
                    base_url: url.to_owned(),
                    credential,
                    timeout: s.timeout,
                    cost_cents,
                },
                audit.clone(),
            )
        };
        Upstreams {
            rails: rails::RailsClient::new(http("rails", &s.rails_url, s.rails_token.clone(), 0)),
            property_records: property_records::PropertyRecordsClient::new(http(
                "property_records",
                &s.property_records_url,
                None,
                35,
            )),
            valuation: valuation::ValuationClient::new(http(
                "valuation",
                &s.valuation_url,
                None,
                50,
            )),
            identity: identity::IdentityClient::new(http("identity", &s.identity_url, None, 75)),
            licensing: licensing::LicensingClient::new(http(
                "licensing",
                &s.licensing_url,
                None,
                5,
            )),
            registry: registry::RegistryClient::new(http("registry", &s.registry_url, None, 5)),
        }
    }
}
