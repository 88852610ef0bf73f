//! Simulators of every upstream: real HTTP servers (axum) on loopback, serving the wire
//! types of `dossier_upstream`, with deterministic data, scenario triggers, and faults,
//! latency and quotas that can be changed at runtime.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use dossier_devkit::sim::{Behaviour, Fault, SimConfig, Simulators, Upstream};
//! let sims = Simulators::start(SimConfig::default()).await?;
//! let base = sims.base_url(Upstream::Valuation); // "http://127.0.0.1:41234"
//! sims.set_behaviour(Upstream::Valuation, Behaviour::with_fault(Fault::StalledBody));
//! assert_eq!(sims.stats(Upstream::Valuation).total(), 0);
//! sims.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Each upstream's data is a pure function (`property_records::record_for`,
//! `valuation::estimate_for`, `alt_valuation::estimate_for`, …) that the HTTP handler
//! calls, so tests can learn what a simulator will answer without HTTP. See `docs/simulators.md` for the triggers.

pub mod alt_identity;
pub mod alt_valuation;
pub mod faults;
pub mod identity;
pub mod licensing;
pub mod property_records;
pub mod rails;
pub mod registry;
pub mod stats;
pub mod valuation;

mod conn;
pub(crate) mod seed;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use faults::{Behaviour, Fault};
pub use stats::Stats;

use conn::{ConnHandle, SimListener};

/// The bearer token the Rails simulator expects unless configured otherwise.
pub const DEFAULT_RAILS_TOKEN: &str = "dev-rails-token";

/// How long [`Simulators::shutdown`] waits for a server to drain before aborting it.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// Which simulator: the upstreams Dossier calls over HTTP (`Upstream::HTTP`). The SDN
/// list is screened in-process and has none.
pub use dossier_core::domain::Upstream;

const NO_SANCTIONS_SIMULATOR: &str = "the sanctions list is screened in-process and has no simulator: only Upstream::HTTP are simulated";

/// Position of an upstream's simulator in [`Upstream::HTTP`] order.
fn index(upstream: Upstream) -> usize {
    Upstream::HTTP
        .iter()
        .position(|u| *u == upstream)
        .expect(NO_SANCTIONS_SIMULATOR)
}

/// Settings of one simulator.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimulatorSettings {
    /// Fixed port; `None` lets the OS choose a free one.
    pub port: Option<u16>,
    /// Latency, faults and quota at start (changeable at runtime).
    pub behaviour: Behaviour,
}

/// Settings of all simulators. `Default`: loopback, OS-chosen ports, no latency, no faults,
/// no quota, Rails token [`DEFAULT_RAILS_TOKEN`].
///
/// Deserialises from (and [`SimConfig::from_toml_file`] reads) a document with an optional
/// top-level `bind` address and one optional table per upstream, named as
/// [`Upstream::as_str`], holding `port`, the [`Behaviour`] fields, and for `[rails]` also
/// `token`. See `docs/simulators.md`.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Address every simulator binds; default 127.0.0.1.
    pub bind: IpAddr,
    /// The bearer token the Rails simulator requires.
    pub rails_token: String,
    pub rails: SimulatorSettings,
    pub property_records: SimulatorSettings,
    pub valuation: SimulatorSettings,
    pub identity: SimulatorSettings,
    pub licensing: SimulatorSettings,
    pub registry: SimulatorSettings,
    pub alt_valuation: SimulatorSettings,
    pub alt_identity: SimulatorSettings,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            rails_token: DEFAULT_RAILS_TOKEN.to_string(),
            rails: SimulatorSettings::default(),
            property_records: SimulatorSettings::default(),
            valuation: SimulatorSettings::default(),
            identity: SimulatorSettings::default(),
            licensing: SimulatorSettings::default(),
            registry: SimulatorSettings::default(),
            alt_valuation: SimulatorSettings::default(),
            alt_identity: SimulatorSettings::default(),
        }
    }
}

impl SimConfig {
    /// Read the TOML file given to `dossier simulate --config FILE`.
    pub fn from_toml_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading simulator config {}", path.display()))?;
        Self::from_toml_str(&text)
            .with_context(|| format!("parsing simulator config {}", path.display()))
    }

    pub fn from_toml_str(text: &str) -> anyhow::Result<Self> {
        let config: SimConfig = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    pub fn settings(&self, upstream: Upstream) -> &SimulatorSettings {
        match upstream {
            Upstream::Rails => &self.rails,
            Upstream::PropertyRecords => &self.property_records,
            Upstream::Valuation => &self.valuation,
            Upstream::Identity => &self.identity,
            Upstream::Licensing => &self.licensing,
            Upstream::Registry => &self.registry,
            Upstream::AltValuation => &self.alt_valuation,
            Upstream::AltIdentity => &self.alt_identity,
            Upstream::Sanctions => panic!("{}", NO_SANCTIONS_SIMULATOR),
        }
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        for upstream in Upstream::HTTP {
            self.settings(upstream)
                .behaviour
                .validate()
                .map_err(|e| anyhow::anyhow!("[{upstream}] {e}"))?;
        }
        Ok(())
    }
}

/// The file format: explicit fields so that a misspelt setting is an error.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct RawConfig {
    bind: Option<IpAddr>,
    rails: RawUpstream,
    property_records: RawUpstream,
    valuation: RawUpstream,
    identity: RawUpstream,
    licensing: RawUpstream,
    registry: RawUpstream,
    alt_valuation: RawUpstream,
    alt_identity: RawUpstream,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct RawUpstream {
    port: Option<u16>,
    token: Option<String>,
    latency_ms: Option<u64>,
    error_rate: Option<f64>,
    quota_per_second: Option<f64>,
    fault: Option<Fault>,
    fault_rate: Option<f64>,
}

impl RawUpstream {
    fn into_settings(self) -> SimulatorSettings {
        let default = Behaviour::default();
        SimulatorSettings {
            port: self.port,
            behaviour: Behaviour {
                latency_ms: self.latency_ms.unwrap_or(default.latency_ms),
                error_rate: self.error_rate.unwrap_or(default.error_rate),
                quota_per_second: self.quota_per_second,
                fault: self.fault.unwrap_or(default.fault),
                fault_rate: self.fault_rate.unwrap_or(default.fault_rate),
            },
        }
    }
}

impl<'de> Deserialize<'de> for SimConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawConfig::deserialize(deserializer)?;
        for (name, table) in [
            ("property_records", &raw.property_records),
            ("valuation", &raw.valuation),
            ("identity", &raw.identity),
            ("licensing", &raw.licensing),
            ("registry", &raw.registry),
            ("alt_valuation", &raw.alt_valuation),
            ("alt_identity", &raw.alt_identity),
        ] {
            if table.token.is_some() {
                return Err(serde::de::Error::custom(format!(
                    "`token` is only meaningful in [rails], not in [{name}]"
                )));
            }
        }
        let default = SimConfig::default();
        let rails_token = raw.rails.token.clone().unwrap_or(default.rails_token);
        Ok(SimConfig {
            bind: raw.bind.unwrap_or(default.bind),
            rails_token,
            rails: raw.rails.into_settings(),
            property_records: raw.property_records.into_settings(),
            valuation: raw.valuation.into_settings(),
            identity: raw.identity.into_settings(),
            licensing: raw.licensing.into_settings(),
            registry: raw.registry.into_settings(),
            alt_valuation: raw.alt_valuation.into_settings(),
            alt_identity: raw.alt_identity.into_settings(),
        })
    }
}

/// The state one simulator's handlers and middleware share.
pub(crate) struct SimState {
    pub(crate) upstream: Upstream,
    pub(crate) controls: faults::Controls,
    pub(crate) stats: stats::Recorder,
    /// Becomes `true` (or its sender is dropped) when the simulators shut down.
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) rails_token: String,
    /// Decisions delivered to the Rails simulator (empty for the others).
    pub(crate) deliveries: rails::Ledger,
    /// Changes recorded against properties (the property records simulator only).
    pub(crate) property_events: property_records::PropertyEvents,
}

impl SimState {
    /// What `POST /_sim/stats/reset` and [`Simulators::reset_stats`] both do.
    fn reset_stats(&self) {
        self.stats.reset();
        self.deliveries.reset();
    }
}

struct Server {
    addr: SocketAddr,
    state: Arc<SimState>,
    task: JoinHandle<()>,
}

/// The running simulators, one HTTP server per [`Upstream`].
///
/// Dropping it without [`Simulators::shutdown`] also stops the servers, in the background.
pub struct Simulators {
    /// Indexed by `Upstream::index`, in `Upstream::HTTP` order.
    servers: Vec<Server>,
    shutdown: watch::Sender<bool>,
}

impl Simulators {
    /// Binds every simulator on the configured address (127.0.0.1 by default), on an
    /// OS-chosen free port (port 0) unless the config fixes ports, and starts serving.
    pub async fn start(config: SimConfig) -> anyhow::Result<Simulators> {
        config.validate()?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut servers = Vec::with_capacity(Upstream::HTTP.len());
        for upstream in Upstream::HTTP {
            let settings = config.settings(upstream);
            let addr = SocketAddr::new(config.bind, settings.port.unwrap_or(0));
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the {upstream} simulator on {addr}"))?;
            let addr = listener.local_addr()?;
            let state = Arc::new(SimState {
                upstream,
                controls: faults::Controls::new(settings.behaviour.clone()),
                stats: stats::Recorder::default(),
                shutdown: shutdown_rx.clone(),
                rails_token: config.rails_token.clone(),
                deliveries: rails::Ledger::default(),
                property_events: Default::default(),
            });
            let app = router(state.clone());
            let mut stop = shutdown_rx.clone();
            let task = tokio::spawn(async move {
                let served = axum::serve(
                    SimListener::new(listener),
                    app.into_make_service_with_connect_info::<ConnHandle>(),
                )
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|stopping| *stopping).await;
                })
                .await;
                if let Err(error) = served {
                    tracing::error!(upstream = upstream.as_str(), %error, "simulator failed");
                }
            });
            tracing::info!(upstream = upstream.as_str(), %addr, "simulator listening");
            servers.push(Server { addr, state, task });
        }
        Ok(Simulators { servers, shutdown })
    }

    fn server(&self, upstream: Upstream) -> &Server {
        &self.servers[index(upstream)]
    }

    /// The address a simulator listens on.
    pub fn addr(&self, upstream: Upstream) -> SocketAddr {
        self.server(upstream).addr
    }

    /// e.g. "http://127.0.0.1:41234" (loopback when bound to an unspecified address).
    pub fn base_url(&self, upstream: Upstream) -> String {
        let addr = self.addr(upstream);
        let ip = match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, addr.port()))
    }

    /// Every upstream with its base URL, in [`Upstream::HTTP`] order.
    pub fn base_urls(&self) -> Vec<(Upstream, String)> {
        Upstream::HTTP
            .into_iter()
            .map(|u| (u, self.base_url(u)))
            .collect()
    }

    /// The bearer token the Rails simulator requires.
    pub fn rails_token(&self) -> &str {
        &self.server(Upstream::Rails).state.rails_token
    }

    /// Requests counted so far by one simulator, and how many of them it refused (429).
    pub fn stats(&self, upstream: Upstream) -> Stats {
        self.server(upstream).state.stats.snapshot()
    }

    /// The trace ids of the `traceparent` headers this simulator received, oldest first
    /// (the last 10,000).
    pub fn trace_ids(&self, upstream: Upstream) -> Vec<String> {
        self.server(upstream).state.stats.trace_ids()
    }

    /// Decisions the Rails simulator has received, one entry per idempotency key.
    pub fn deliveries(&self) -> rails::Deliveries {
        self.server(Upstream::Rails).state.deliveries.snapshot()
    }

    /// Records a change to a property's county records (a lien, a sale, delinquent
    /// taxes, a late mortgage): every later answer for that address shows it, as
    /// `POST /_sim/property_records/events` does over HTTP.
    pub fn record_property_event(
        &self,
        property: &dossier_upstream::property_records::PropertyQuery,
        event: property_records::PropertyEvent,
    ) {
        self.server(Upstream::PropertyRecords)
            .state
            .property_events
            .record(property, event);
    }

    /// Zero one simulator's request counts and refusals and empty its delivery ledger,
    /// as `POST /_sim/stats/reset` does over HTTP.
    pub fn reset_stats(&self, upstream: Upstream) {
        self.server(upstream).state.reset_stats();
    }

    /// The current behaviour of one simulator.
    pub fn behaviour(&self, upstream: Upstream) -> Behaviour {
        self.server(upstream).state.controls.behaviour()
    }

    /// Change one simulator's behaviour from now on (its quota starts with a full bucket).
    ///
    /// # Panics
    /// If the behaviour is invalid (a rate outside 0.0–1.0, a quota that is not positive).
    pub fn set_behaviour(&self, upstream: Upstream, behaviour: Behaviour) {
        if let Err(e) = behaviour.validate() {
            panic!("invalid behaviour for the {upstream} simulator: {e}");
        }
        self.server(upstream).state.controls.set(behaviour);
    }

    /// Stop accepting connections, let in-flight requests finish (latency is cut short and
    /// stalled bodies are aborted), and wait for every server to stop.
    pub async fn shutdown(self) {
        self.shutdown.send_replace(true);
        for (upstream, mut server) in Upstream::HTTP.into_iter().zip(self.servers) {
            if tokio::time::timeout(DRAIN_DEADLINE, &mut server.task)
                .await
                .is_err()
            {
                tracing::warn!(
                    upstream = upstream.as_str(),
                    "simulator did not drain in time"
                );
                server.task.abort();
            }
        }
    }
}

/// One simulator's whole router: its upstream's routes, the `/_sim` control routes, and the
/// stats (outermost) and fault middleware.
fn router(state: Arc<SimState>) -> Router {
    let routes = match state.upstream {
        Upstream::Rails => rails::routes(),
        Upstream::PropertyRecords => property_records::routes(),
        Upstream::Valuation => valuation::routes(),
        Upstream::Identity => identity::routes(),
        Upstream::Licensing => licensing::routes(),
        Upstream::Registry => registry::routes(),
        Upstream::AltValuation => alt_valuation::routes(),
        Upstream::AltIdentity => alt_identity::routes(),
        Upstream::Sanctions => unreachable!("{}", NO_SANCTIONS_SIMULATOR),
    };
    routes
        .route("/_sim/config", get(get_config).put(put_config))
        .route("/_sim/stats", get(get_stats))
        .route("/_sim/stats/reset", post(reset_stats))
        .route("/_sim/deliveries", get(get_deliveries))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            faults::middleware,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            stats::middleware,
        ))
        .with_state(state)
}

/// Control routes are neither counted nor subject to faults.
pub(crate) fn is_control_path(path: &str) -> bool {
    path == "/_sim" || path.starts_with("/_sim/")
}

async fn get_config(State(state): State<Arc<SimState>>) -> Json<Behaviour> {
    Json(state.controls.behaviour())
}

async fn put_config(
    State(state): State<Arc<SimState>>,
    body: Result<Json<Behaviour>, JsonRejection>,
) -> Response {
    let behaviour = match body {
        Ok(Json(behaviour)) => behaviour,
        Err(rejection) => return bad_request(rejection.body_text()),
    };
    if let Err(e) = behaviour.validate() {
        return bad_request(e);
    }
    tracing::info!(
        upstream = state.upstream.as_str(),
        ?behaviour,
        "simulator behaviour changed"
    );
    state.controls.set(behaviour.clone());
    Json(behaviour).into_response()
}

async fn get_stats(State(state): State<Arc<SimState>>) -> Json<Stats> {
    Json(state.stats.snapshot())
}

async fn get_deliveries(State(state): State<Arc<SimState>>) -> Json<rails::Deliveries> {
    Json(state.deliveries.snapshot())
}

async fn reset_stats(State(state): State<Arc<SimState>>) -> StatusCode {
    state.reset_stats();
    StatusCode::NO_CONTENT
}

/// `{"error": code}` with the given status.
pub(crate) fn json_error(status: StatusCode, code: &str) -> Response {
    (status, Json(serde_json::json!({ "error": code }))).into_response()
}

/// `400 {"error":"bad_request","message":…}`.
pub(crate) fn bad_request(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "error": "bad_request", "message": message.into() })),
    )
        .into_response()
}
