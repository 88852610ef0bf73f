//! Who may connect and call: mutual TLS files, the access policy, the plaintext health
//! port, reflection and the reviewers' identity provider.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use super::duration;

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

    pub(super) fn resolve(&self) -> anyhow::Result<Security> {
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

#[cfg(test)]
mod tests {
    use crate::config::ServeArgs;
    use dossier_store::Vault;

    #[test]
    fn serve_refuses_plaintext_unless_it_is_asked_for() {
        let complete = || {
            let mut a = ServeArgs::loopback("postgres://db.internal/dossier?sslmode=verify-full");
            a.upstreams
                .point_every_required_url_at("http://127.0.0.1:1");
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
}
