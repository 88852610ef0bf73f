//! Every setting, as a command-line flag with an environment-variable twin.
//! docs/configuration.md lists them; keep the two in step.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use dossier_core::policy::LoadedPolicy;
use dossier_store::Vault;

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e}; write durations like 500ms, 25s or 2m"))
}

/// Settings of `dossier serve` (and `dossier dev`, which fills in what it starts itself).
/// No `Debug`: it holds the database URL, keys and tokens.
#[derive(Clone, Args)]
pub struct ServeArgs {
    /// PostgreSQL URL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

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

    /// Maximum PostgreSQL connections of this process.
    #[arg(long, env = "DOSSIER_DB_MAX_CONNECTIONS", default_value_t = 20)]
    pub db_max_connections: u32,

    /// Field-encryption keys for SSNs and dates of birth: `id:base64-32-bytes[,id:…]`.
    /// The first is used for new writes unless --encryption-active-key says otherwise;
    /// keep retired keys listed until their rows are re-encrypted.
    #[arg(long, env = "DOSSIER_ENCRYPTION_KEYS", hide_env_values = true)]
    pub encryption_keys: Option<String>,

    /// Id of the key new values are sealed with.
    #[arg(long, env = "DOSSIER_ENCRYPTION_ACTIVE_KEY")]
    pub encryption_active_key: Option<String>,

    /// Key of the keyed hash used to look up SSNs (base64 of 32 bytes). Changing it
    /// makes existing look-up hashes unmatchable.
    #[arg(long, env = "DOSSIER_LOOKUP_KEY", hide_env_values = true)]
    pub lookup_key: Option<String>,

    /// Underwriting policy file (TOML); the built-in policy when unset.
    #[arg(long, env = "DOSSIER_POLICY_FILE")]
    pub policy_file: Option<PathBuf>,

    /// Background workers (concurrent evaluations) in this process.
    #[arg(long, env = "DOSSIER_WORKERS", default_value_t = 4)]
    pub workers: usize,

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

    #[command(flatten)]
    pub upstreams: UpstreamArgs,
}

/// No `Debug`: it holds the Rails token.
#[derive(Clone, Args)]
pub struct UpstreamArgs {
    /// Base URL of the Rails backend.
    #[arg(long, env = "DOSSIER_RAILS_URL")]
    pub rails_url: Option<String>,
    /// Bearer token Dossier presents to the Rails backend.
    #[arg(long, env = "DOSSIER_RAILS_TOKEN", hide_env_values = true)]
    pub rails_token: Option<String>,
    /// Base URL of the property records vendor.
    #[arg(long, env = "DOSSIER_PROPERTY_RECORDS_URL")]
    pub property_records_url: Option<String>,
    /// Base URL of the AVM vendor.
    #[arg(long, env = "DOSSIER_VALUATION_URL")]
    pub valuation_url: Option<String>,
    /// Base URL of the identity vendor.
    #[arg(long, env = "DOSSIER_IDENTITY_URL")]
    pub identity_url: Option<String>,
    /// Base URL of the contractor licence board.
    #[arg(long, env = "DOSSIER_LICENSING_URL")]
    pub licensing_url: Option<String>,
    /// Base URL of the business registry.
    #[arg(long, env = "DOSSIER_REGISTRY_URL")]
    pub registry_url: Option<String>,
    /// Per-upstream settings file (TOML): rates, timeouts, TTLs, retries, breaker.
    /// See docs/configuration.md; URLs given by flags override the file's.
    #[arg(long, env = "DOSSIER_UPSTREAMS_FILE")]
    pub upstreams_file: Option<PathBuf>,
    /// Longest a single upstream request may take, for every upstream (overrides the
    /// file).
    #[arg(long, env = "DOSSIER_UPSTREAM_TIMEOUT", value_parser = duration)]
    pub upstream_timeout: Option<Duration>,
}

impl UpstreamArgs {
    /// The upstream settings: defaults, then the file, then flags; an error names every
    /// upstream left without a URL.
    pub fn settings(&self) -> anyhow::Result<dossier_upstream::UpstreamSettings> {
        use dossier_upstream::settings::{UpstreamPolicy, parse_file};
        let mut policies = match &self.upstreams_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    anyhow::anyhow!("cannot read upstreams file {}: {e}", path.display())
                })?;
                parse_file(&text).map_err(|e| {
                    anyhow::anyhow!("upstreams file {} is refused: {e}", path.display())
                })?
            }
            None => Default::default(),
        };
        let flags = [
            ("rails", &self.rails_url, "--rails-url / DOSSIER_RAILS_URL"),
            (
                "property_records",
                &self.property_records_url,
                "--property-records-url / DOSSIER_PROPERTY_RECORDS_URL",
            ),
            (
                "valuation",
                &self.valuation_url,
                "--valuation-url / DOSSIER_VALUATION_URL",
            ),
            (
                "identity",
                &self.identity_url,
                "--identity-url / DOSSIER_IDENTITY_URL",
            ),
            (
                "licensing",
                &self.licensing_url,
                "--licensing-url / DOSSIER_LICENSING_URL",
            ),
            (
                "registry",
                &self.registry_url,
                "--registry-url / DOSSIER_REGISTRY_URL",
            ),
        ];
        let mut missing = Vec::new();
        let mut credentials = std::collections::BTreeMap::new();
        for (name, url, flag) in flags {
            let policy = policies
                .entry(name.to_owned())
                .or_insert_with(|| UpstreamPolicy::default_for(name));
            if let Some(url) = url {
                policy.base_url = Some(url.clone());
            }
            if let Some(timeout) = self.upstream_timeout {
                policy.timeout = timeout;
            }
            if policy.base_url.is_none() {
                missing.push(flag);
            }
            if let Some(var) = &policy.credential_env {
                let value = std::env::var(var).map_err(|_| {
                    anyhow::anyhow!(
                        "upstream `{name}` takes its credential from ${var}, which is not set"
                    )
                })?;
                credentials.insert(name.to_owned(), value);
            }
        }
        if let Some(token) = &self.rails_token {
            credentials.insert("rails".to_owned(), token.clone());
        }
        if !missing.is_empty() {
            anyhow::bail!(
                "upstream URLs are not configured: {}. Set them (or base_url in DOSSIER_UPSTREAMS_FILE), or run `dossier dev` to use the built-in simulators",
                missing.join(", ")
            );
        }
        Ok(dossier_upstream::UpstreamSettings {
            policies,
            credentials,
        })
    }
}

impl ServeArgs {
    /// Checks the settings that no single flag's parser can: everything `serve` refuses
    /// to start with is named here, before anything connects.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.job_lease < Duration::from_secs(1) {
            anyhow::bail!(
                "--job-lease / DOSSIER_JOB_LEASE is {:?}; it must be at least 1s (leases are renewed every third of it)",
                self.job_lease
            );
        }
        Ok(())
    }

    /// The underwriting policy: the file's, or the built-in one.
    pub fn policy(&self) -> anyhow::Result<LoadedPolicy> {
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
    pub fn vault(&self) -> anyhow::Result<Vault> {
        let keys = self.encryption_keys.as_deref().ok_or_else(|| {
            anyhow::anyhow!(
                "DOSSIER_ENCRYPTION_KEYS is not set; generate a key with `echo k1:$(openssl rand -base64 32)` and keep it in your secret store"
            )
        })?;
        let lookup = self.lookup_key.as_deref().ok_or_else(|| {
            anyhow::anyhow!(
                "DOSSIER_LOOKUP_KEY is not set; generate one with `openssl rand -base64 32`"
            )
        })?;
        Ok(Vault::from_config(
            keys,
            self.encryption_active_key.as_deref(),
            lookup,
        )?)
    }

    /// Settings of an in-process server on loopback, as the tests, `bench`, `seed` and
    /// `policy check` start one: free ports, no keys (the caller passes a vault), no
    /// upstream URLs yet (the caller points them at its simulators).
    pub fn loopback(database_url: &str) -> ServeArgs {
        ServeArgs {
            database_url: Some(database_url.to_owned()),
            grpc_addr: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            admin_addr: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            migrate: false,
            db_max_connections: 10,
            encryption_keys: None,
            encryption_active_key: None,
            lookup_key: None,
            policy_file: None,
            workers: 2,
            job_lease: crate::jobs::DEFAULT_LEASE,
            shutdown_grace: Duration::from_secs(10),
            shutdown_delay: Duration::ZERO,
            max_connection_age: Duration::from_secs(300),
            upstreams: UpstreamArgs {
                rails_url: None,
                rails_token: None,
                property_records_url: None,
                valuation_url: None,
                identity_url: None,
                licensing_url: None,
                registry_url: None,
                upstreams_file: None,
                upstream_timeout: None,
            },
        }
    }
}

/// The PostgreSQL URL of the commands that talk to the database without serving.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL.
    #[arg(long = "database-url", env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

impl DatabaseArgs {
    /// The URL, or an error naming the command that needs it.
    pub fn url(&self, command: &str) -> anyhow::Result<&str> {
        self.database_url.as_deref().ok_or_else(|| {
            anyhow::anyhow!(
                "DATABASE_URL is not set; `dossier {command}` needs the service's PostgreSQL URL (--database-url or DATABASE_URL)"
            )
        })
    }
}
