//! A throw-away identity provider for the developer tools: an ES256 key whose JWKS
//! `dossier dev`, the tests and the bench trust for reviewers' ID tokens, so the review
//! flow runs end to end without the lender's real provider. `dossier dev-token` mints
//! a token with the same key. Never trusted by `serve`: only these tools configure it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use dossier_service::identity::ReviewerVerifier;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

/// The `iss` of the developer tools' tokens (an `.invalid` name: nothing real has it).
pub const ISSUER: &str = "https://idp.dossier-dev.invalid";
/// Their `aud`.
pub const AUDIENCE: &str = "dossier-dev";
const KID: &str = "dossier-dev-1";

pub struct DevIdentityProvider {
    key: EncodingKey,
    jwks: String,
}

impl DevIdentityProvider {
    fn from_key(pair: &rcgen::KeyPair) -> DevIdentityProvider {
        let raw = pair.public_key_raw(); // 0x04 ‖ x ‖ y (P-256)
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let jwks = serde_json::json!({ "keys": [{
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": KID,
            "x": b64(&raw[1..33]), "y": b64(&raw[33..65]),
        }]});
        DevIdentityProvider {
            key: EncodingKey::from_ec_der(&pair.serialize_der()),
            jwks: jwks.to_string(),
        }
    }

    /// The key in `path`, created (mode 0600) when missing, so `dossier dev` and
    /// `dossier dev-token` agree across processes.
    pub fn load_or_create(path: &Path) -> anyhow::Result<DevIdentityProvider> {
        if let Ok(pem) = std::fs::read_to_string(path) {
            let pair = rcgen::KeyPair::from_pem(&pem).map_err(|e| {
                anyhow::anyhow!(
                    "{} is not a PEM key ({e}); delete it to make a new one",
                    path.display()
                )
            })?;
            return Ok(DevIdentityProvider::from_key(&pair));
        }
        let pair = rcgen::KeyPair::generate()?;
        // Written beside and renamed: another process never reads half a key.
        let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
        {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(pair.serialize_pem().as_bytes())?;
        }
        std::fs::rename(&tmp, path)?;
        Ok(DevIdentityProvider::from_key(&pair))
    }

    /// Where the developer tools keep the key unless told otherwise.
    pub fn default_path() -> PathBuf {
        std::env::temp_dir().join("dossier-dev-reviewer-key.pem")
    }

    /// The provider of this process's tests and bench: a key of its own, in memory.
    pub fn for_tests() -> &'static DevIdentityProvider {
        static PROVIDER: OnceLock<DevIdentityProvider> = OnceLock::new();
        PROVIDER.get_or_init(|| {
            DevIdentityProvider::from_key(&rcgen::KeyPair::generate().expect("generate a key"))
        })
    }

    pub fn verifier(&self) -> ReviewerVerifier {
        ReviewerVerifier::from_jwks(&self.jwks, ISSUER, AUDIENCE)
            .expect("the developer provider's JWKS is valid")
    }

    /// An ID token for `subject`, valid for `ttl`.
    pub fn token(&self, subject: &str, ttl: Duration) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = serde_json::json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": subject,
            "iat": now, "exp": now + ttl.as_secs() as i64,
        });
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(KID.into());
        jsonwebtoken::encode(&header, &claims, &self.key).expect("sign a token")
    }
}
