//! Every setting, as a command-line flag with an environment-variable twin.
//! docs/configuration.md lists them; keep the two in step.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use dossier_core::adverse_action::NoticeSettings;
use dossier_core::policy::LoadedPolicy;
use dossier_store::Vault;
use dossier_upstream::UpstreamSettings;

mod database;
mod keys;
mod retention;
mod secret;
mod security;
mod upstreams;

pub use database::DatabaseArgs;
use database::check_database_tls;
pub use keys::KeyArgs;
pub use retention::{Retention, RetentionSettings};
pub use secret::Secret;
pub use security::{Security, SecurityArgs};
pub use upstreams::UpstreamArgs;

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e}; write durations like 500ms, 25s or 2m"))
}

/// Settings of `dossier serve` (and `dossier dev`, which fills in what it starts itself).
/// No `Debug`: it holds the database URL, keys and tokens.
#[derive(Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Address the gRPC server listens on [default: 0.0.0.0:50051 for `serve`,
    /// 127.0.0.1:50051 for `dev`].
    #[arg(long, env = "DOSSIER_GRPC_ADDR")]
    pub grpc_addr: Option<SocketAddr>,

    /// Address of the admin HTTP server (`GET /metrics`) [default: 0.0.0.0:9090 for
    /// `serve`, a free loopback port for `dev`].
    #[arg(long, env = "DOSSIER_ADMIN_ADDR")]
    pub admin_addr: Option<SocketAddr>,

    /// Apply pending migrations at start instead of refusing to start.
    #[arg(long, env = "DOSSIER_MIGRATE")]
    pub migrate: bool,

    /// Allow a DATABASE_URL to a host that is not loopback without TLS (no sslmode, or
    /// sslmode=disable, allow or prefer, which fall back to plaintext).
    #[arg(long, env = "DOSSIER_DATABASE_ALLOW_PLAINTEXT")]
    pub database_allow_plaintext: bool,

    /// Maximum PostgreSQL connections of this process.
    #[arg(long, env = "DOSSIER_DB_MAX_CONNECTIONS", default_value_t = 20)]
    pub db_max_connections: u32,

    /// Field-encryption and lookup keys (environment only).
    #[command(flatten)]
    pub keys: KeyArgs,

    /// Underwriting policy file (TOML); the built-in policy when unset.
    #[arg(long, env = "DOSSIER_POLICY_FILE")]
    pub policy_file: Option<PathBuf>,

    /// When a new sanctions list is loaded, also screen the applications cleared for
    /// funding up to this many days ago (0: only approved applications not cleared yet).
    #[arg(
        long,
        env = "DOSSIER_SANCTIONS_MONITOR_FUNDED_DAYS",
        default_value_t = 0
    )]
    pub sanctions_monitor_funded_days: u32,

    /// Adverse-action notices file (TOML): the lender and the consumer reporting
    /// agencies named on notices of declines. See docs/configuration.md.
    #[arg(long, env = "DOSSIER_NOTICES_FILE")]
    pub notices_file: Option<PathBuf>,

    /// WatchReport streams this process keeps open at once; past it new ones are
    /// refused (RESOURCE_EXHAUSTED, with RetryInfo).
    #[arg(long, env = "DOSSIER_WATCH_STREAMS_MAX", default_value_t = 2000)]
    pub watch_streams_max: usize,

    /// WatchReport streams one caller (SPIFFE ID; all of them when unauthenticated)
    /// may keep open at once in this process.
    #[arg(long, env = "DOSSIER_WATCH_STREAMS_PER_CALLER", default_value_t = 500)]
    pub watch_streams_per_caller: usize,

    /// Unary calls this process serves at once; past it a call is answered at once with
    /// UNAVAILABLE and a RetryInfo (load shedding). Health and WatchReport are exempt.
    #[arg(long, env = "DOSSIER_MAX_CALLS_IN_FLIGHT", default_value_t = 1024)]
    pub max_calls_in_flight: usize,

    /// Background workers (concurrent evaluations) in this process.
    #[arg(long, env = "DOSSIER_WORKERS", default_value_t = 4)]
    pub workers: usize,

    /// Background workers that deliver to Rails only, on top of `--workers`: a decision
    /// reaches Rails while every other worker is busy with an evaluation backlog.
    /// (Every worker takes a ready delivery before other work.)
    #[arg(long, env = "DOSSIER_DELIVERY_WORKERS", default_value_t = 1)]
    pub delivery_workers: usize,

    /// How long a claimed job stays this pod's without renewal (renewed every third of
    /// it). After a pod dies, its jobs are taken over once their lease lapses.
    #[arg(long, env = "DOSSIER_JOB_LEASE", default_value = "30s", value_parser = duration)]
    pub job_lease: Duration,

    /// After SIGTERM, how long in-flight RPCs and jobs may take before the process exits.
    /// Keep it below the pod's terminationGracePeriodSeconds.
    #[arg(long, env = "DOSSIER_SHUTDOWN_GRACE", default_value = "20s", value_parser = duration)]
    pub shutdown_grace: Duration,

    /// After SIGTERM, how long to keep serving while reporting NOT_SERVING, so load
    /// balancers stop sending new calls before the listener closes.
    #[arg(long, env = "DOSSIER_SHUTDOWN_DELAY", default_value = "0s", value_parser = duration)]
    pub shutdown_delay: Duration,

    /// Send GOAWAY to a client connection after this age, so long-lived HTTP/2
    /// connections spread over new pods after a scale-up or deploy. Calls in flight on
    /// it finish; the client reconnects for new ones.
    #[arg(long, env = "DOSSIER_MAX_CONNECTION_AGE", default_value = "5m", value_parser = duration)]
    pub max_connection_age: Duration,

    /// How often this pod reads the fleet-wide metrics (job queue, deliveries, review
    /// queue) from PostgreSQL. Every pod reports the same values (docs/metrics.md).
    #[arg(long, env = "DOSSIER_FLEET_METRICS_INTERVAL", default_value = "15s", value_parser = duration)]
    pub fleet_metrics_interval: Duration,

    /// How long the audit trail of upstream requests (`upstream_calls`) is kept: whole
    /// UTC days before today, at least 90d, or `forever`. Older days are purged, so
    /// `reporting.upstream_usage` covers this window.
    #[arg(long, env = "DOSSIER_RETAIN_UPSTREAM_CALLS", default_value = "400d", value_parser = retention::parse)]
    pub retain_upstream_calls: Retention,

    /// How long finished (`done`) jobs are kept after they finished: at least 1h, or
    /// `forever`. Dead, queued and running jobs are never purged.
    #[arg(long, env = "DOSSIER_RETAIN_FINISHED_JOBS", default_value = "7d", value_parser = retention::parse)]
    pub retain_finished_jobs: Retention,

    /// How often this pod purges the rows past their retention (the first time at a
    /// random point of the interval, so a fleet spreads the work).
    #[arg(long, env = "DOSSIER_RETENTION_INTERVAL", default_value = "10m", value_parser = duration)]
    pub retention_interval: Duration,

    #[command(flatten)]
    pub security: SecurityArgs,

    #[command(flatten)]
    pub upstreams: UpstreamArgs,
}

/// `dossier serve`'s settings, parsed and checked once: addresses with their defaults,
/// the keys as a vault, the policy and the upstreams loaded. [`crate::server::Server`]
/// takes only this, so nothing past start-up can find a setting unusable.
/// No `Debug`: it holds the database URL, keys and tokens.
pub struct ServeConfig {
    pub database_url: String,
    pub grpc_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub migrate: bool,
    pub db_max_connections: u32,
    pub vault: Vault,
    pub policy: LoadedPolicy,
    /// Who the adverse-action notices name (empty settings without a notices file).
    pub notices: NoticeSettings,
    pub sanctions_monitor_funded_days: u32,
    pub upstreams: UpstreamSettings,
    pub watch_streams_max: usize,
    pub watch_streams_per_caller: usize,
    pub max_calls_in_flight: usize,
    pub workers: usize,
    pub delivery_workers: usize,
    pub job_lease: Duration,
    pub shutdown_grace: Duration,
    pub shutdown_delay: Duration,
    pub max_connection_age: Duration,
    pub fleet_metrics_interval: Duration,
    pub retention: RetentionSettings,
    pub security: Security,
    /// A sanctions list to load when none is active: the developer tools' sample list
    /// (`dev`, tests, bench); `serve` never has one (production loads the real list
    /// with `dossier sanctions load DIR`).
    pub seed_sanctions: Option<SanctionsSeed>,
}

/// A sanctions list to start with, and where it came from (for the list's history).
pub struct SanctionsSeed {
    pub list: dossier_sanctions::SdnList,
    pub source: String,
}

impl ServeArgs {
    /// The validated configuration of `serve`: the keys must be set. Every problem is
    /// named at once, so an operator fixes a deployment in one round.
    pub fn into_config(self) -> anyhow::Result<ServeConfig> {
        self.resolve(None, None)
    }

    /// The same, with a vault the caller made (the developer tools' throw-away keys)
    /// and, when given, upstream settings it made instead of the flags' (the bench's).
    pub fn into_config_with(
        self,
        vault: Vault,
        upstreams: Option<UpstreamSettings>,
    ) -> anyhow::Result<ServeConfig> {
        self.resolve(Some(vault), upstreams)
    }

    fn resolve(
        self,
        vault: Option<Vault>,
        upstreams: Option<UpstreamSettings>,
    ) -> anyhow::Result<ServeConfig> {
        let mut problems: Vec<String> = Vec::new();
        // Each step's value, or its problem noted and None: every problem is named at once.
        fn take<T>(r: anyhow::Result<T>, problems: &mut Vec<String>) -> Option<T> {
            r.map_err(|e| problems.push(format!("{e:#}"))).ok()
        }
        let p = &mut problems;
        let database_url = take(
            self.database.url("serve").and_then(|url| {
                check_database_tls(&url, self.database_allow_plaintext)?;
                Ok(url)
            }),
            p,
        );
        let vault = take(vault.map_or_else(|| self.vault(), Ok), p);
        let policy = take(self.policy(), p);
        let notices = take(read_notices(self.notices_file.as_deref()), p);
        let upstreams = take(upstreams.map_or_else(|| self.upstreams.settings(), Ok), p);
        let security = take(self.security.resolve(), p);
        if self.job_lease < Duration::from_secs(1) {
            problems.push(format!(
                "--job-lease / DOSSIER_JOB_LEASE is {:?}; it must be at least 1s (leases are renewed every third of it)",
                self.job_lease
            ));
        }
        if self.fleet_metrics_interval < Duration::from_secs(1) {
            problems.push(format!(
                "--fleet-metrics-interval / DOSSIER_FLEET_METRICS_INTERVAL is {:?}; it must be at least 1s (every pod queries PostgreSQL at this rate)",
                self.fleet_metrics_interval
            ));
        }
        let retention = RetentionSettings::resolve(
            self.retain_upstream_calls,
            self.retain_finished_jobs,
            self.retention_interval,
        )
        .map_err(|mut found| problems.append(&mut found))
        .ok();
        if self.max_calls_in_flight == 0 {
            problems.push(
                "--max-calls-in-flight / DOSSIER_MAX_CALLS_IN_FLIGHT is 0; every call would be refused".into(),
            );
        }
        match (
            database_url,
            vault,
            policy,
            notices,
            upstreams,
            security,
            retention,
        ) {
            (
                Some(database_url),
                Some(vault),
                Some(policy),
                Some(notices),
                Some(upstreams),
                Some(security),
                Some(retention),
            ) if problems.is_empty() => Ok(ServeConfig {
                database_url,
                grpc_addr: self
                    .grpc_addr
                    .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 50051))),
                admin_addr: self
                    .admin_addr
                    .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 9090))),
                migrate: self.migrate,
                db_max_connections: self.db_max_connections,
                vault,
                policy,
                notices,
                sanctions_monitor_funded_days: self.sanctions_monitor_funded_days,
                upstreams,
                watch_streams_max: self.watch_streams_max,
                watch_streams_per_caller: self.watch_streams_per_caller,
                max_calls_in_flight: self.max_calls_in_flight,
                workers: self.workers,
                delivery_workers: self.delivery_workers,
                job_lease: self.job_lease,
                shutdown_grace: self.shutdown_grace,
                shutdown_delay: self.shutdown_delay,
                max_connection_age: self.max_connection_age,
                fleet_metrics_interval: self.fleet_metrics_interval,
                retention,
                security,
                seed_sanctions: None,
            }),
            _ => anyhow::bail!("the settings are refused:\n  - {}", problems.join("\n  - ")),
        }
    }

    /// The underwriting policy: the file's, or the built-in one.
    fn policy(&self) -> anyhow::Result<LoadedPolicy> {
        match &self.policy_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read policy file {}", path.display()))?;
                LoadedPolicy::parse(&text)
                    .with_context(|| format!("policy file {} is refused", path.display()))
            }
            None => Ok(LoadedPolicy::default_policy()),
        }
    }

    /// The vault from configured keys; `serve` requires them.
    fn vault(&self) -> anyhow::Result<Vault> {
        self.keys.vault()
    }

    /// Settings of an in-process server on loopback, as the tests, `bench`, `seed` and
    /// `policy check` start one: free ports, no keys (the caller passes a vault), no
    /// upstream URLs yet (the caller points them at its simulators).
    pub fn loopback(database_url: &str) -> ServeArgs {
        ServeArgs {
            database: DatabaseArgs::of(database_url),
            grpc_addr: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            admin_addr: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            migrate: false,
            database_allow_plaintext: false,
            db_max_connections: 10,
            keys: KeyArgs::unset(),
            policy_file: None,
            notices_file: None,
            sanctions_monitor_funded_days: 0,
            watch_streams_max: 2000,
            watch_streams_per_caller: 500,
            max_calls_in_flight: 1024,
            workers: 2,
            delivery_workers: 1,
            job_lease: crate::jobs::DEFAULT_LEASE,
            shutdown_grace: Duration::from_secs(10),
            shutdown_delay: Duration::ZERO,
            max_connection_age: Duration::from_secs(300),
            fleet_metrics_interval: crate::fleet_metrics::DEFAULT_INTERVAL,
            retain_upstream_calls: Retention::For(Duration::from_secs(400 * 24 * 60 * 60)),
            retain_finished_jobs: Retention::For(Duration::from_secs(7 * 24 * 60 * 60)),
            retention_interval: Duration::from_secs(600),
            security: SecurityArgs {
                tls_cert_file: None,
                tls_key_file: None,
                tls_client_ca_file: None,
                tls_reload_interval: Duration::from_secs(10),
                access_policy_file: None,
                allow_unauthenticated: true,
                health_addr: None,
                reflection: true,
                reviewer_jwks_file: None,
                reviewer_issuer: None,
                reviewer_audience: None,
            },
            upstreams: UpstreamArgs {
                rails_url: None,
                rails_token: Secret::unset("DOSSIER_RAILS_TOKEN"),
                property_records_url: None,
                valuation_url: None,
                identity_url: None,
                licensing_url: None,
                registry_url: None,
                alt_valuation_url: None,
                alt_identity_url: None,
                upstreams_file: None,
                upstream_timeout: None,
            },
        }
    }
}

/// The adverse-action notice settings: the file's, or none (every notice then names
/// what it lacks, and `serve` warns at start).
pub fn read_notices(path: Option<&std::path::Path>) -> anyhow::Result<NoticeSettings> {
    let Some(path) = path else {
        return Ok(NoticeSettings::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read notices file {}", path.display()))?;
    NoticeSettings::parse(&text)
        .map_err(|e| anyhow::anyhow!("notices file {} is refused: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ServeArgs {
        let mut a = ServeArgs::loopback("postgres://dossier:hunter2@db.internal/dossier");
        a.database.database_url = None;
        a
    }

    #[test]
    fn every_problem_of_the_settings_is_named_at_once() {
        let mut a = args();
        a.job_lease = Duration::from_millis(10);
        let Err(e) = a.into_config() else {
            panic!("settings without a database, keys or upstream URLs were accepted")
        };
        let e = format!("{e:#}");
        for expected in [
            "DATABASE_URL is not set",
            "DOSSIER_ENCRYPTION_KEYS is not set",
            "upstream URLs are not configured",
            "--job-lease",
        ] {
            assert!(e.contains(expected), "missing {expected:?} in: {e}");
        }
    }

    #[test]
    fn a_waterfall_to_a_vendor_without_url_or_credentials_is_refused_naming_the_key() {
        let refused = |file: &str, alt_url: Option<&str>| {
            let path = std::env::temp_dir()
                .join(format!("dossier-upstreams-{}.toml", uuid::Uuid::new_v4()));
            std::fs::write(&path, file).unwrap();
            let mut a = ServeArgs::loopback("postgres://db.internal/dossier?sslmode=verify-full");
            a.upstreams
                .point_every_required_url_at("http://127.0.0.1:1");
            a.upstreams.alt_valuation_url = alt_url.map(str::to_owned);
            a.upstreams.upstreams_file = Some(path.clone());
            let e = match a.into_config_with(Vault::ephemeral(), None) {
                Ok(_) => panic!("accepted: {file}"),
                Err(e) => format!("{e:#}"),
            };
            std::fs::remove_file(path).unwrap();
            e
        };
        let waterfall = "[waterfalls.valuation]\nvendors = [\"valuation\", \"alt_valuation\"]\n";
        let e = refused(waterfall, None);
        assert!(
            e.contains("waterfalls.valuation.vendors names `alt_valuation`, which has no URL"),
            "{e}"
        );
        let e = refused(waterfall, Some("http://127.0.0.1:2"));
        assert!(
            e.contains("`alt_valuation`, which has no credentials"),
            "{e}"
        );
        let e = refused(
            "[waterfalls.valuation]\nvendors = [\"valuation\", \"avm_co\"]\n",
            None,
        );
        assert!(e.contains("unknown vendor `avm_co`"), "{e}");
        let e = refused(
            "[waterfalls.identity]\nvendors = [\"identity\", \"alt_identity\", \"identity\"]\n",
            None,
        );
        assert!(e.contains("a cycle"), "{e}");
    }

    #[test]
    fn the_retention_flags_default_to_what_the_loopback_settings_use() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let parsed = <Cli as clap::Parser>::try_parse_from(["dossier"])
            .expect("the flags parse with their defaults")
            .serve;
        let loopback = args();
        assert_eq!(parsed.retain_upstream_calls, loopback.retain_upstream_calls);
        assert_eq!(parsed.retain_finished_jobs, loopback.retain_finished_jobs);
        assert_eq!(parsed.retention_interval, loopback.retention_interval);
        assert_eq!(
            parsed.retain_upstream_calls,
            Retention::For(Duration::from_secs(400 * 86400))
        );
    }

    #[test]
    fn a_complete_configuration_takes_the_documented_defaults() {
        let mut a = ServeArgs::loopback("postgres://db.internal/dossier?sslmode=verify-full");
        a.grpc_addr = None;
        a.admin_addr = None;
        a.upstreams
            .point_every_required_url_at("http://127.0.0.1:1");
        let Ok(c) = a.into_config_with(Vault::ephemeral(), None) else {
            panic!("a complete configuration was refused")
        };
        assert_eq!(c.grpc_addr, SocketAddr::from(([0, 0, 0, 0], 50051)));
        assert_eq!(c.admin_addr, SocketAddr::from(([0, 0, 0, 0], 9090)));
        assert_eq!(
            c.upstreams.policies.len(),
            dossier_upstream::Upstream::HTTP.len()
        );
        assert!(
            c.seed_sanctions.is_none(),
            "only developer tools seed a list"
        );
    }
}
