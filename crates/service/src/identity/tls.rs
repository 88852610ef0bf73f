//! The gRPC port's TLS configuration, from PEM files that SPIRE (spiffe-helper, the
//! SPIFFE CSI driver) or cert-manager rotate in place. The files are re-read when they
//! change; each handshake uses the configuration current when it starts, so a rotation
//! reaches new connections without a restart and established ones keep theirs.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use rustls::RootCertStore;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest as _, Sha256};
use tokio_util::sync::CancellationToken;

/// Where the server's certificate chain, its key and the client trust bundle are.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
}

/// The current TLS configuration and what it was built from.
pub struct ServerTls {
    files: TlsFiles,
    current: RwLock<Loaded>,
}

struct Loaded {
    config: Arc<ServerConfig>,
    /// SHA-256 of the three files' bytes: a rotation is a change of content, whatever
    /// the mtime or symlink games of the volume that holds them.
    fingerprint: [u8; 32],
}

impl ServerTls {
    /// Loads the files; an unusable set is refused at start, naming the file.
    pub fn load(files: TlsFiles) -> anyhow::Result<ServerTls> {
        let (config, fingerprint) = build(&files)?;
        Ok(ServerTls {
            files,
            current: RwLock::new(Loaded {
                config,
                fingerprint,
            }),
        })
    }

    /// The configuration for a handshake starting now.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .expect("TLS configuration lock poisoned")
            .config
            .clone()
    }

    /// Re-reads the files; true when they changed and the new set is in use. A set that
    /// cannot be used (a rotation caught half-written, a key that does not match its
    /// certificate) keeps the previous configuration and is an error to log.
    pub fn reload(&self) -> anyhow::Result<bool> {
        let bytes = read_all(&self.files)?;
        let fingerprint = fingerprint(&bytes);
        if fingerprint == self.current.read().expect("lock").fingerprint {
            return Ok(false);
        }
        let config = config_from(&self.files, &bytes)?;
        *self
            .current
            .write()
            .expect("TLS configuration lock poisoned") = Loaded {
            config,
            fingerprint,
        };
        Ok(true)
    }

    /// Re-reads the files every `interval` until `stop`.
    pub async fn watch(self: Arc<Self>, interval: Duration, stop: CancellationToken) {
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.cancelled() => return,
            }
            match self.reload() {
                Ok(true) => {
                    failing = false;
                    metrics::counter!("dossier_tls_reloads_total", "result" => "loaded")
                        .increment(1);
                    tracing::info!(cert = %self.files.cert.display(), "TLS certificate, key or trust bundle changed on disk: new handshakes use them");
                }
                Ok(false) => failing = false,
                Err(e) => {
                    metrics::counter!("dossier_tls_reloads_total", "result" => "refused")
                        .increment(1);
                    // Once per failing spell: a rotation caught between two files heals
                    // at the next look, a broken one would otherwise log every interval.
                    if !failing {
                        tracing::warn!(error = %format!("{e:#}"), "TLS files changed but cannot be used; the previous certificate stays in use");
                    }
                    failing = true;
                }
            }
        }
    }
}

struct Bytes {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Vec<u8>,
}

fn read_all(files: &TlsFiles) -> anyhow::Result<Bytes> {
    let read = |path: &PathBuf, what: &str| {
        std::fs::read(path).with_context(|| format!("cannot read the {what} {}", path.display()))
    };
    Ok(Bytes {
        cert: read(&files.cert, "TLS certificate (DOSSIER_TLS_CERT_FILE)")?,
        key: read(&files.key, "TLS key (DOSSIER_TLS_KEY_FILE)")?,
        client_ca: read(
            &files.client_ca,
            "client trust bundle (DOSSIER_TLS_CLIENT_CA_FILE)",
        )?,
    })
}

fn fingerprint(bytes: &Bytes) -> [u8; 32] {
    let mut hash = Sha256::new();
    for part in [&bytes.cert, &bytes.key, &bytes.client_ca] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().into()
}

fn build(files: &TlsFiles) -> anyhow::Result<(Arc<ServerConfig>, [u8; 32])> {
    let bytes = read_all(files)?;
    Ok((config_from(files, &bytes)?, fingerprint(&bytes)))
}

fn config_from(files: &TlsFiles, bytes: &Bytes) -> anyhow::Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes.cert)
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is not a PEM certificate chain", files.cert.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "{} holds no certificate",
        files.cert.display()
    );
    let key = PrivateKeyDer::from_pem_slice(&bytes.key)
        .with_context(|| format!("{} is not a PEM private key", files.key.display()))?;
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(&bytes.client_ca) {
        let ca = ca.with_context(|| {
            format!(
                "{} is not a PEM certificate bundle",
                files.client_ca.display()
            )
        })?;
        roots.add(ca).with_context(|| {
            format!(
                "{} holds a certificate that is not a usable CA",
                files.client_ca.display()
            )
        })?;
    }
    anyhow::ensure!(
        !roots.is_empty(),
        "{} holds no certificate: no client could be verified",
        files.client_ca.display()
    );
    // Every client presents a certificate chained to the bundle; a connection without
    // one fails the handshake and never reaches a handler.
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .context("cannot build the client certificate verifier")?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("the TLS provider supports no safe protocol version")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .with_context(|| {
            format!(
                "the key {} does not fit the certificate {}",
                files.key.display(),
                files.cert.display()
            )
        })?;
    // gRPC is HTTP/2 only.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}
