//! Every setting, as a command-line flag with an environment-variable twin.
//! docs/configuration.md lists them; keep the two in step.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use dossier_core::policy::LoadedPolicy;
use dossier_store::Vault;
use dossier_upstream::{Upstream, UpstreamSettings};

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
    pub security: SecurityArgs,

    #[command(flatten)]
    pub upstreams: UpstreamArgs,
}

/// Who may connect and call: mTLS files, the access policy, the plaintext health port.
#[derive(Clone, Args)]
pub struct SecurityArgs {
    /// Server certificate chain (PEM) of the gRPC port. With the key and the client
    /// trust bundle it turns on mutual TLS; the files are re-read when they change.
    #[arg(long, env = "DOSSIER_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,

    /// Private key (PEM) of that certificate.
    #[arg(long, env = "DOSSIER_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,

    /// Trust bundle (PEM) client certificates must chain to (the SPIFFE trust domain's
    /// bundle, or cert-manager's CA).
    #[arg(long, env = "DOSSIER_TLS_CLIENT_CA_FILE")]
    pub tls_client_ca_file: Option<PathBuf>,

    /// How often the TLS files are checked for a rotation.
    #[arg(long, env = "DOSSIER_TLS_RELOAD_INTERVAL", default_value = "10s", value_parser = duration)]
    pub tls_reload_interval: Duration,

    /// Which SPIFFE IDs may call which methods (TOML; docs/security.md). Required with
    /// TLS.
    #[arg(long, env = "DOSSIER_ACCESS_POLICY_FILE")]
    pub access_policy_file: Option<PathBuf>,

    /// Serve plaintext gRPC without client authentication: every caller may call every
    /// method. For a cluster without workload identities only; `serve` refuses to start
    /// without TLS unless this is set, and warns at start when it is.
    #[arg(long, env = "DOSSIER_ALLOW_UNAUTHENTICATED")]
    pub allow_unauthenticated: bool,

    /// Plaintext port serving only grpc.health.v1, for the kubelet's gRPC probes (which
    /// cannot speak TLS) [default with TLS: 0.0.0.0:50052; without TLS: none, health is
    /// on the gRPC port].
    #[arg(long, env = "DOSSIER_HEALTH_ADDR")]
    pub health_addr: Option<SocketAddr>,

    /// The lender's identity provider's signing keys (a JWKS file): underwriters' ID
    /// tokens on ReviewApplication are verified against them. Without it every review
    /// is refused.
    #[arg(long, env = "DOSSIER_REVIEWER_JWKS_FILE")]
    pub reviewer_jwks_file: Option<PathBuf>,

    /// The `iss` reviewers' ID tokens must carry (the identity provider's issuer URL).
    #[arg(long, env = "DOSSIER_REVIEWER_ISSUER")]
    pub reviewer_issuer: Option<String>,

    /// The `aud` reviewers' ID tokens must carry (Dossier's client id at the provider).
    #[arg(long, env = "DOSSIER_REVIEWER_AUDIENCE")]
    pub reviewer_audience: Option<String>,

    /// Serve gRPC server reflection (grpcurl's service listing). With TLS it is a
    /// method like any other: only callers the access policy grants it may use it.
    #[arg(long, env = "DOSSIER_REFLECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub reflection: bool,
}

/// The transport security `serve` runs with, checked at start.
pub struct Security {
    /// The gRPC port's TLS (mutual: client certificates required), or plaintext.
    pub tls: Option<std::sync::Arc<crate::identity::ServerTls>>,
    pub tls_reload_interval: Duration,
    pub access: crate::identity::Access,
    pub health_addr: Option<SocketAddr>,
    pub reflection: bool,
    /// Verifies underwriters' ID tokens; `None`: reviews are refused.
    pub reviewers: Option<std::sync::Arc<crate::identity::ReviewerVerifier>>,
}

impl SecurityArgs {
    fn reviewers(
        &self,
    ) -> anyhow::Result<Option<std::sync::Arc<crate::identity::ReviewerVerifier>>> {
        match (
            &self.reviewer_jwks_file,
            &self.reviewer_issuer,
            &self.reviewer_audience,
        ) {
            (None, None, None) => Ok(None),
            (Some(file), Some(issuer), Some(audience)) => Ok(Some(std::sync::Arc::new(
                crate::identity::ReviewerVerifier::from_file(file, issuer, audience)?,
            ))),
            _ => anyhow::bail!(
                "reviewer authentication needs all three of DOSSIER_REVIEWER_JWKS_FILE, DOSSIER_REVIEWER_ISSUER and DOSSIER_REVIEWER_AUDIENCE; only some are set"
            ),
        }
    }

    fn resolve(&self) -> anyhow::Result<Security> {
        use crate::identity::{Access, AccessPolicy, ServerTls, TlsFiles};
        let reviewers = self.reviewers()?;
        let files = match (
            &self.tls_cert_file,
            &self.tls_key_file,
            &self.tls_client_ca_file,
        ) {
            (None, None, None) => None,
            (Some(cert), Some(key), Some(client_ca)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: client_ca.clone(),
            }),
            _ => anyhow::bail!(
                "mutual TLS needs all three of DOSSIER_TLS_CERT_FILE, DOSSIER_TLS_KEY_FILE and DOSSIER_TLS_CLIENT_CA_FILE; only some are set"
            ),
        };
        let Some(files) = files else {
            anyhow::ensure!(
                self.allow_unauthenticated,
                "no TLS is configured: set DOSSIER_TLS_CERT_FILE, DOSSIER_TLS_KEY_FILE, DOSSIER_TLS_CLIENT_CA_FILE and DOSSIER_ACCESS_POLICY_FILE, or, knowing that every caller may then call every method, DOSSIER_ALLOW_UNAUTHENTICATED=true"
            );
            anyhow::ensure!(
                self.access_policy_file.is_none(),
                "DOSSIER_ACCESS_POLICY_FILE is set but TLS is not: without client certificates no caller has an identity to check"
            );
            return Ok(Security {
                tls: None,
                tls_reload_interval: self.tls_reload_interval,
                access: Access::Open,
                health_addr: self.health_addr,
                reflection: self.reflection,
                reviewers,
            });
        };
        anyhow::ensure!(
            !self.allow_unauthenticated,
            "DOSSIER_ALLOW_UNAUTHENTICATED is set together with TLS files; choose one"
        );
        let path = self.access_policy_file.as_ref().ok_or_else(|| {
            anyhow::anyhow!(
                "TLS is on but DOSSIER_ACCESS_POLICY_FILE is not set: every call would be refused. Write one (docs/security.md)"
            )
        })?;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the access policy {}", path.display()))?;
        let policy = AccessPolicy::parse(&text, crate::api::served_methods())
            .map_err(|e| anyhow::anyhow!("access policy {} is refused: {e}", path.display()))?;
        let tls = ServerTls::load(files).context("the TLS files are refused")?;
        Ok(Security {
            tls: Some(std::sync::Arc::new(tls)),
            tls_reload_interval: self.tls_reload_interval,
            access: Access::Enforced(std::sync::Arc::new(policy)),
            health_addr: Some(
                self.health_addr
                    .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 50052))),
            ),
            reflection: self.reflection,
            reviewers,
        })
    }
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
    pub fn settings(&self) -> anyhow::Result<UpstreamSettings> {
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
            (
                Upstream::Rails,
                &self.rails_url,
                "--rails-url / DOSSIER_RAILS_URL",
            ),
            (
                Upstream::PropertyRecords,
                &self.property_records_url,
                "--property-records-url / DOSSIER_PROPERTY_RECORDS_URL",
            ),
            (
                Upstream::Valuation,
                &self.valuation_url,
                "--valuation-url / DOSSIER_VALUATION_URL",
            ),
            (
                Upstream::Identity,
                &self.identity_url,
                "--identity-url / DOSSIER_IDENTITY_URL",
            ),
            (
                Upstream::Licensing,
                &self.licensing_url,
                "--licensing-url / DOSSIER_LICENSING_URL",
            ),
            (
                Upstream::Registry,
                &self.registry_url,
                "--registry-url / DOSSIER_REGISTRY_URL",
            ),
        ];
        let mut missing = Vec::new();
        let mut credentials = std::collections::BTreeMap::new();
        for (name, url, flag) in flags {
            let policy = policies
                .entry(name)
                .or_insert_with(|| UpstreamPolicy::default_for(name));
            if let Some(url) = url {
                policy.base_url = Some(url.clone());
            }
            if let Some(timeout) = self.upstream_timeout {
                policy.timeout = timeout;
            }
            match &policy.base_url {
                None => missing.push(flag),
                Some(url) => dossier_upstream::settings::check_base_url(url)
                    .map_err(|e| anyhow::anyhow!("upstream `{name}`: {e}"))?,
            }
            if let Some(var) = &policy.credential_env {
                let value = std::env::var(var).map_err(|_| {
                    anyhow::anyhow!(
                        "upstream `{name}` takes its credential from ${var}, which is not set"
                    )
                })?;
                credentials.insert(name, value);
            }
        }
        if let Some(token) = &self.rails_token {
            credentials.insert(Upstream::Rails, token.clone());
        }
        if !missing.is_empty() {
            anyhow::bail!(
                "upstream URLs are not configured: {}. Set them (or base_url in DOSSIER_UPSTREAMS_FILE), or run `dossier dev` to use the built-in simulators",
                missing.join(", ")
            );
        }
        Ok(UpstreamSettings {
            policies,
            credentials,
        })
    }
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
    pub upstreams: UpstreamSettings,
    pub workers: usize,
    pub job_lease: Duration,
    pub shutdown_grace: Duration,
    pub shutdown_delay: Duration,
    pub max_connection_age: Duration,
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
                check_database_tls(url, self.database_allow_plaintext)?;
                Ok(url.to_owned())
            }),
            p,
        );
        let vault = take(vault.map_or_else(|| self.vault(), Ok), p);
        let policy = take(self.policy(), p);
        let upstreams = take(upstreams.map_or_else(|| self.upstreams.settings(), Ok), p);
        let security = take(self.security.resolve(), p);
        if self.job_lease < Duration::from_secs(1) {
            problems.push(format!(
                "--job-lease / DOSSIER_JOB_LEASE is {:?}; it must be at least 1s (leases are renewed every third of it)",
                self.job_lease
            ));
        }
        match (database_url, vault, policy, upstreams, security) {
            (Some(database_url), Some(vault), Some(policy), Some(upstreams), Some(security))
                if problems.is_empty() =>
            {
                Ok(ServeConfig {
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
                    upstreams,
                    workers: self.workers,
                    job_lease: self.job_lease,
                    shutdown_grace: self.shutdown_grace,
                    shutdown_delay: self.shutdown_delay,
                    max_connection_age: self.max_connection_age,
                    security,
                    seed_sanctions: None,
                })
            }
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
            database: DatabaseArgs {
                database_url: Some(database_url.to_owned()),
            },
            grpc_addr: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            admin_addr: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            migrate: false,
            database_allow_plaintext: false,
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

/// Refuses a database URL that could travel in plaintext to another machine: SSNs are
/// sealed, but everything else an application holds is not.
fn check_database_tls(database_url: &str, allow_plaintext: bool) -> anyhow::Result<()> {
    let url = url::Url::parse(database_url).map_err(|_| {
        anyhow::anyhow!(
            "DATABASE_URL is not a URL (postgres://user:password@host:5432/db?sslmode=verify-full)"
        )
    })?;
    let query = |key: &str| {
        url.query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    };
    // A Unix socket (no host, or host=/path) never leaves the machine.
    let socket = url.host_str().is_none_or(str::is_empty)
        || query("host").is_some_and(|h| h.starts_with('/'));
    if socket || dossier_upstream::settings::is_loopback(&url) || allow_plaintext {
        return Ok(());
    }
    let mode = query("sslmode").unwrap_or_else(|| "prefer".into());
    match mode.as_str() {
        "require" | "verify-ca" | "verify-full" => Ok(()),
        _ => anyhow::bail!(
            "DATABASE_URL to {} has sslmode={mode}, which can fall back to plaintext: add sslmode=verify-full&sslrootcert=/path/to/ca.crt (or at least sslmode=require), or set DOSSIER_DATABASE_ALLOW_PLAINTEXT=true for a network you trust",
            url.host_str().unwrap_or("")
        ),
    }
}

/// The PostgreSQL URL, as every command that talks to the database takes it. Its
/// `Debug` shows the URL without its password.
#[derive(Clone, clap::Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL. Global, so it may follow a subcommand (`dossier jobs list
    /// --database-url …`).
    #[arg(
        long = "database-url",
        env = "DATABASE_URL",
        hide_env_values = true,
        global = true
    )]
    pub database_url: Option<String>,
}

impl std::fmt::Debug for DatabaseArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseArgs")
            .field(
                "database_url",
                &self.database_url.as_deref().map(dossier_store::redact_url),
            )
            .finish()
    }
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
    fn a_complete_configuration_takes_the_documented_defaults() {
        let mut a = ServeArgs::loopback("postgres://db.internal/dossier?sslmode=verify-full");
        a.grpc_addr = None;
        a.admin_addr = None;
        for url in [
            &mut a.upstreams.rails_url,
            &mut a.upstreams.property_records_url,
            &mut a.upstreams.valuation_url,
            &mut a.upstreams.identity_url,
            &mut a.upstreams.licensing_url,
            &mut a.upstreams.registry_url,
        ] {
            *url = Some("http://127.0.0.1:1".into());
        }
        let Ok(c) = a.into_config_with(Vault::ephemeral(), None) else {
            panic!("a complete configuration was refused")
        };
        assert_eq!(c.grpc_addr, SocketAddr::from(([0, 0, 0, 0], 50051)));
        assert_eq!(c.admin_addr, SocketAddr::from(([0, 0, 0, 0], 9090)));
        assert_eq!(c.upstreams.policies.len(), Upstream::HTTP.len());
        assert!(
            c.seed_sanctions.is_none(),
            "only developer tools seed a list"
        );
    }

    #[test]
    fn serve_refuses_plaintext_unless_it_is_asked_for() {
        let complete = || {
            let mut a = ServeArgs::loopback("postgres://db.internal/dossier?sslmode=verify-full");
            for url in [
                &mut a.upstreams.rails_url,
                &mut a.upstreams.property_records_url,
                &mut a.upstreams.valuation_url,
                &mut a.upstreams.identity_url,
                &mut a.upstreams.licensing_url,
                &mut a.upstreams.registry_url,
            ] {
                *url = Some("http://127.0.0.1:1".into());
            }
            a.security.allow_unauthenticated = false;
            a
        };
        let refused = |a: ServeArgs| match a.into_config_with(Vault::ephemeral(), None) {
            Ok(_) => panic!("accepted"),
            Err(e) => format!("{e:#}"),
        };
        assert!(refused(complete()).contains("no TLS is configured"));
        let mut some_files = complete();
        some_files.security.tls_cert_file = Some("/run/tls/tls.crt".into());
        assert!(refused(some_files).contains("needs all three"));
        let mut policy_only = complete();
        policy_only.security.allow_unauthenticated = true;
        policy_only.security.access_policy_file = Some("/etc/dossier/access.toml".into());
        assert!(refused(policy_only).contains("TLS is not"));
        let mut no_policy = complete();
        no_policy.security.tls_cert_file = Some("/run/tls/tls.crt".into());
        no_policy.security.tls_key_file = Some("/run/tls/tls.key".into());
        no_policy.security.tls_client_ca_file = Some("/run/tls/ca.crt".into());
        assert!(refused(no_policy).contains("DOSSIER_ACCESS_POLICY_FILE is not set"));
        let mut open = complete();
        open.security.allow_unauthenticated = true;
        let Ok(c) = open.into_config_with(Vault::ephemeral(), None) else {
            panic!("an explicit --allow-unauthenticated was refused")
        };
        assert!(c.security.tls.is_none() && c.security.health_addr.is_none());
    }

    #[test]
    fn a_database_across_the_network_needs_tls() {
        for ok in [
            "postgres://dossier:pw@db.internal/dossier?sslmode=verify-full&sslrootcert=/ca.crt",
            "postgres://dossier:pw@db.internal/dossier?sslmode=require",
            "postgres://dossier:pw@127.0.0.1:5432/dossier",
            "postgres://dossier:pw@localhost/dossier?sslmode=disable",
            "postgres:///dossier?host=/var/run/postgresql",
        ] {
            assert!(check_database_tls(ok, false).is_ok(), "{ok}");
        }
        for bad in [
            "postgres://dossier:hunter2@db.internal/dossier",
            "postgres://dossier:hunter2@db.internal/dossier?sslmode=disable",
            "postgres://dossier:hunter2@10.1.2.3/dossier?sslmode=prefer",
        ] {
            let e = check_database_tls(bad, false).unwrap_err().to_string();
            assert!(e.contains("sslmode=verify-full"), "{e}");
            assert!(!e.contains("hunter2"), "{e}");
            assert!(
                check_database_tls(bad, true).is_ok(),
                "allowed explicitly: {bad}"
            );
        }
    }

    #[test]
    fn database_args_never_print_the_password() {
        let d = DatabaseArgs {
            database_url: Some("postgres://dossier:hunter2@db.internal/dossier".into()),
        };
        let shown = format!("{d:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("db.internal"), "{shown}");
    }
}
