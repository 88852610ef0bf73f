//! A throw-away SPIFFE trust domain for tests and the bench: a CA, X509-SVIDs for the
//! server and for callers, written as the PEM files SPIRE's spiffe-helper or
//! cert-manager's csi-driver-spiffe would leave in a pod.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// The server's SPIFFE ID in a test trust domain.
pub const SERVER_ID: &str = "spiffe://dossier.test/ns/dossier/sa/dossier";

/// A certificate and its key, PEM.
#[derive(Clone)]
pub struct Svid {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A certificate authority of one trust domain.
pub struct TrustDomain {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate (the trust bundle), PEM.
    pub bundle_pem: String,
}

impl TrustDomain {
    pub fn new(name: &str) -> TrustDomain {
        let key = KeyPair::generate().expect("generate a CA key");
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("self-sign the CA");
        TrustDomain {
            bundle_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// An X509-SVID for `spiffe_id` (and, for servers, DNS names clients verify).
    pub fn issue(&self, spiffe_id: &str, dns_names: &[&str]) -> Svid {
        let key = KeyPair::generate().expect("generate a key");
        let mut params = CertificateParams::default();
        params.subject_alt_names = dns_names
            .iter()
            .map(|name| SanType::DnsName((*name).try_into().expect("a DNS name")))
            .collect();
        params
            .subject_alt_names
            .push(SanType::URI(spiffe_id.try_into().expect("an IA5 URI")));
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign a certificate");
        Svid {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// The server's files in `dir` (`tls.crt`, `tls.key`, `ca.crt`, the names the
    /// chart mounts), for `DOSSIER_TLS_*`.
    pub fn write_server_files(&self, dir: &Path) -> ServerFiles {
        let files = ServerFiles {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
            client_ca: dir.join("ca.crt"),
        };
        self.rotate_server_files(&files);
        std::fs::write(&files.client_ca, &self.bundle_pem).expect("write ca.crt");
        files
    }

    /// A fresh server certificate and key over the old files, each replaced atomically
    /// (written beside, then renamed), as a rotating agent does. Returns the new
    /// certificate.
    pub fn rotate_server_files(&self, files: &ServerFiles) -> Svid {
        let svid = self.issue(SERVER_ID, &["localhost"]);
        replace(&files.cert, &svid.cert_pem);
        replace(&files.key, &svid.key_pem);
        svid
    }
}

fn replace(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).expect("write a TLS file");
    std::fs::rename(&tmp, path).expect("rename a TLS file into place");
}

/// Where a server's TLS files are.
#[derive(Debug, Clone)]
pub struct ServerFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
}
