//! Zero trust on the gRPC port: mutual TLS with SPIFFE identities, the access policy,
//! certificate rotation, and the plaintext health port for the kubelet.

mod callers;
mod mtls;
pub(crate) mod service_role;

use std::sync::Arc;

use dossier_devkit::harness::TestApp;
use dossier_devkit::pki::{ServerFiles, Svid, TrustDomain};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

pub const ORIGINATION: &str = "spiffe://dossier.test/ns/origination/sa/api";
pub const MARKETING: &str = "spiffe://dossier.test/ns/marketing/sa/web";
pub const RAILS_SYNC: &str = "spiffe://dossier.test/ns/rails/sa/sync";

/// Origination may submit and read, Rails' sync job may also submit by Rails id;
/// nobody else is in the policy.
const POLICY: &str = r#"
[[caller]]
name = "origination"
ids = ["spiffe://dossier.test/ns/origination/sa/api"]
methods = [
  "dossier.v1.UnderwritingService/SubmitApplication",
  "dossier.v1.UnderwritingService/GetReport",
  "dossier.v1.UnderwritingService/WatchReport",
  "dossier.v1.UnderwritingService/ListReports",
]

[[caller]]
name = "rails-sync"
ids = ["spiffe://dossier.test/ns/rails/sa/sync"]
methods = ["dossier.v1.UnderwritingService/SubmitApplication"]
rails_application_ids = true
"#;

/// A server with mutual TLS on, in its own trust domain.
pub struct MtlsApp {
    pub app: TestApp,
    pub domain: TrustDomain,
    pub files: ServerFiles,
    _dir: tempfile::TempDir,
}

impl MtlsApp {
    pub async fn spawn() -> MtlsApp {
        MtlsApp::spawn_with_policy(POLICY).await
    }

    /// The same, with another access policy.
    pub async fn spawn_with_policy(policy_text: &str) -> MtlsApp {
        let dir = tempfile::tempdir().unwrap();
        let domain = TrustDomain::new("dossier.test");
        let files = domain.write_server_files(dir.path());
        let policy = dir.path().join("access.toml");
        std::fs::write(&policy, policy_text).unwrap();
        let app = TestApp::spawn_with(|a| {
            a.workers = 0;
            let s = &mut a.security;
            s.allow_unauthenticated = false;
            s.tls_cert_file = Some(files.cert.clone());
            s.tls_key_file = Some(files.key.clone());
            s.tls_client_ca_file = Some(files.client_ca.clone());
            s.access_policy_file = Some(policy);
            s.health_addr = Some("127.0.0.1:0".parse().unwrap());
            // Rotation tests wait for the next look at the files.
            s.tls_reload_interval = std::time::Duration::from_millis(50);
        })
        .await;
        MtlsApp {
            app,
            domain,
            files,
            _dir: dir,
        }
    }

    /// A channel presenting `svid` (or no certificate), trusting the server's CA.
    pub async fn channel(&self, svid: Option<&Svid>) -> Result<Channel, tonic::transport::Error> {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.domain.bundle_pem))
            .domain_name("localhost");
        if let Some(svid) = svid {
            tls = tls.identity(Identity::from_pem(&svid.cert_pem, &svid.key_pem));
        }
        Channel::from_shared(format!("https://{}", self.app.addr))
            .unwrap()
            .tls_config(tls)?
            .connect()
            .await
    }
}

/// A raw TLS connection presenting `svid`; returns the certificate the server showed.
pub async fn server_certificate(
    addr: std::net::SocketAddr,
    bundle_pem: &str,
    svid: &Svid,
) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(bundle_pem.as_bytes()) {
        roots.add(ca.unwrap()).unwrap();
    }
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(svid.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_slice(svid.key_pem.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("a TLS handshake with a valid client certificate");
    let (_, session) = tls.get_ref();
    session.peer_certificates().unwrap()[0].to_vec()
}

/// DER of the first certificate of a PEM file.
pub fn der_of(pem: &str) -> Vec<u8> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}
