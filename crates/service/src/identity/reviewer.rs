//! Underwriters are authenticated, not asserted: a review carries the underwriter's
//! OIDC ID token from the lender's identity provider (`authorization: Bearer <JWT>`),
//! verified offline against the provider's published keys (a JWKS file), with its
//! issuer, audience and expiry checked. The reviewer recorded is the token's subject.
//!
//! The workload that carries the token (the underwriting console) must itself be
//! granted ReviewApplication by the access policy: both the person and the system are
//! named.

use std::path::Path;

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// Clock skew allowed between the identity provider and Dossier on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 60;
/// Longest token accepted: ID tokens are a few KB.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Verifies reviewers' ID tokens.
pub struct ReviewerVerifier {
    issuer: String,
    audience: String,
    keys: Vec<(Option<String>, Algorithm, DecodingKey)>,
}

/// The underwriter a verified token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reviewer {
    /// `sub`: the provider's stable id of the person.
    pub subject: String,
}

/// Why a review's token is refused. The text is for the caller and the log; it never
/// repeats the token or its claims.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no reviewer token: send the underwriter's ID token as `authorization: Bearer <JWT>`")]
    Missing,
    #[error("the reviewer token is not a well-formed JWT")]
    Malformed,
    #[error("the reviewer token is not signed by a key of the configured identity provider")]
    UnknownKey,
    #[error("the reviewer token's signature does not verify")]
    Signature,
    #[error("the reviewer token has expired (or is not valid yet); sign in again")]
    Expired,
    #[error("the reviewer token was issued by another identity provider or for another audience")]
    WrongIssuerOrAudience,
    #[error("the reviewer token has no subject")]
    NoSubject,
    #[error("the reviewer token lacks a required claim (exp, iss and aud are required)")]
    MissingClaim,
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sub: String,
}

impl ReviewerVerifier {
    /// From a JWKS document (the provider's `jwks_uri` contents). Only asymmetric keys
    /// are accepted: a shared secret would let whoever holds it mint reviewers.
    pub fn from_jwks(jwks: &str, issuer: &str, audience: &str) -> anyhow::Result<ReviewerVerifier> {
        let set: JwkSet =
            serde_json::from_str(jwks).map_err(|e| anyhow::anyhow!("not a JWKS document: {e}"))?;
        let mut keys = Vec::new();
        for (i, jwk) in set.keys.iter().enumerate() {
            let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
                (AlgorithmParameters::OctetKey(_), _) => anyhow::bail!(
                    "key {i} is a symmetric (oct) key; reviewers' tokens must be signed with the provider's private key"
                ),
                (_, Some(alg)) => alg
                    .to_string()
                    .parse::<Algorithm>()
                    .map_err(|_| anyhow::anyhow!("key {i} names an unsupported algorithm"))?,
                (AlgorithmParameters::RSA(_), None) => Algorithm::RS256,
                (AlgorithmParameters::EllipticCurve(_), None) => Algorithm::ES256,
                (AlgorithmParameters::OctetKeyPair(_), None) => Algorithm::EdDSA,
            };
            let key = DecodingKey::from_jwk(jwk)
                .map_err(|e| anyhow::anyhow!("key {i} cannot be used: {e}"))?;
            keys.push((jwk.common.key_id.clone(), algorithm, key));
        }
        anyhow::ensure!(!keys.is_empty(), "the JWKS holds no key");
        anyhow::ensure!(
            !issuer.is_empty() && !audience.is_empty(),
            "the reviewer token issuer and audience must both be set"
        );
        Ok(ReviewerVerifier {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            keys,
        })
    }

    /// From a JWKS file.
    pub fn from_file(
        path: &Path,
        issuer: &str,
        audience: &str,
    ) -> anyhow::Result<ReviewerVerifier> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read the JWKS file {}: {e}", path.display()))?;
        ReviewerVerifier::from_jwks(&text, issuer, audience)
            .map_err(|e| anyhow::anyhow!("the JWKS file {} is refused: {e}", path.display()))
    }

    /// The reviewer of a request's `authorization` metadata.
    pub fn verify_metadata(
        &self,
        metadata: &tonic::metadata::MetadataMap,
    ) -> Result<Reviewer, TokenError> {
        let value = metadata
            .get("authorization")
            .ok_or(TokenError::Missing)?
            .to_str()
            .map_err(|_| TokenError::Malformed)?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or(TokenError::Missing)?;
        self.verify(token.trim())
    }

    pub fn verify(&self, token: &str) -> Result<Reviewer, TokenError> {
        use jsonwebtoken::errors::ErrorKind;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        // The key the header names, of the algorithm the key is for: a token cannot
        // choose a weaker algorithm (or `none`) than its key's.
        let (_, algorithm, key) = self
            .keys
            .iter()
            .find(|(kid, alg, _)| {
                *alg == header.alg && (header.kid.is_none() || *kid == header.kid)
            })
            .ok_or(TokenError::UnknownKey)?;
        let mut validation = Validation::new(*algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|e| match e
            .kind()
        {
            ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => TokenError::Expired,
            ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => {
                TokenError::WrongIssuerOrAudience
            }
            ErrorKind::InvalidSignature => TokenError::Signature,
            ErrorKind::MissingRequiredClaim(claim) if claim == "sub" => TokenError::NoSubject,
            ErrorKind::MissingRequiredClaim(_) => TokenError::MissingClaim,
            _ => TokenError::Malformed,
        })?;
        let subject = data.claims.sub.trim();
        if subject.is_empty() || subject.len() > 200 {
            return Err(TokenError::NoSubject);
        }
        Ok(Reviewer {
            subject: subject.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use jsonwebtoken::{EncodingKey, Header};

    const ISSUER: &str = "https://login.lender.example";
    const AUDIENCE: &str = "dossier";

    /// An ES256 key and its JWKS entry.
    fn provider(kid: &str) -> (EncodingKey, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let raw = key.public_key_raw(); // 0x04 ‖ x ‖ y
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
            "x": b64(&raw[1..33]), "y": b64(&raw[33..65]),
        });
        (
            EncodingKey::from_ec_der(&key.serialize_der()),
            jwk.to_string(),
        )
    }

    fn jwks(keys: &[&str]) -> String {
        format!("{{\"keys\":[{}]}}", keys.join(","))
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn token(key: &EncodingKey, kid: &str, claims: serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, &claims, key).unwrap()
    }

    fn claims(sub: &str, iss: &str, aud: &str, exp: i64) -> serde_json::Value {
        serde_json::json!({ "sub": sub, "iss": iss, "aud": aud, "exp": exp, "iat": now() })
    }

    #[test]
    fn a_review_token_is_its_subject_only_when_everything_checks() {
        let (key, jwk) = provider("k1");
        let (other_key, _) = provider("k1");
        let verifier = ReviewerVerifier::from_jwks(&jwks(&[&jwk]), ISSUER, AUDIENCE).unwrap();
        let hour = now() + 3600;
        let hs256 = jsonwebtoken::encode(
            &Header {
                kid: Some("k1".into()),
                ..Header::new(Algorithm::HS256)
            },
            &claims("uw.mallory", ISSUER, AUDIENCE, hour),
            &EncodingKey::from_secret(jwk.as_bytes()),
        )
        .unwrap();
        let good = token(&key, "k1", claims("uw.alice", ISSUER, AUDIENCE, hour));
        let unsigned = {
            let mut parts: Vec<&str> = good.split('.').collect();
            parts[2] = "";
            parts.join(".")
        };
        let cases: Vec<(&str, String, Result<&str, TokenError>)> = vec![
            ("valid", good.clone(), Ok("uw.alice")),
            (
                "expired beyond the leeway",
                token(
                    &key,
                    "k1",
                    claims("uw.alice", ISSUER, AUDIENCE, now() - 120),
                ),
                Err(TokenError::Expired),
            ),
            (
                "expired within the leeway",
                token(&key, "k1", claims("uw.alice", ISSUER, AUDIENCE, now() - 10)),
                Ok("uw.alice"),
            ),
            (
                "another audience",
                token(&key, "k1", claims("uw.alice", ISSUER, "rails", hour)),
                Err(TokenError::WrongIssuerOrAudience),
            ),
            (
                "another issuer",
                token(
                    &key,
                    "k1",
                    claims("uw.alice", "https://evil.example", AUDIENCE, hour),
                ),
                Err(TokenError::WrongIssuerOrAudience),
            ),
            (
                "signed by another key under the same kid",
                token(&other_key, "k1", claims("uw.alice", ISSUER, AUDIENCE, hour)),
                Err(TokenError::Signature),
            ),
            (
                "HS256 with the public key as secret",
                hs256,
                Err(TokenError::UnknownKey),
            ),
            ("signature removed", unsigned, Err(TokenError::Signature)),
            (
                "no subject",
                token(
                    &key,
                    "k1",
                    serde_json::json!({"iss": ISSUER, "aud": AUDIENCE, "exp": hour}),
                ),
                Err(TokenError::NoSubject),
            ),
            (
                "no expiry",
                token(
                    &key,
                    "k1",
                    serde_json::json!({"sub": "uw.alice", "iss": ISSUER, "aud": AUDIENCE}),
                ),
                Err(TokenError::MissingClaim),
            ),
            (
                "unknown kid",
                token(&key, "k9", claims("uw.alice", ISSUER, AUDIENCE, hour)),
                Err(TokenError::UnknownKey),
            ),
            ("not a JWT", "hello".into(), Err(TokenError::Malformed)),
            (
                "huge",
                "a".repeat(MAX_TOKEN_BYTES + 1),
                Err(TokenError::Malformed),
            ),
        ];
        for (what, token, expected) in cases {
            let got = verifier.verify(&token).map(|r| r.subject);
            assert_eq!(got.as_deref().map_err(Clone::clone), expected, "{what}");
        }

        let mut metadata = tonic::metadata::MetadataMap::new();
        assert_eq!(
            verifier.verify_metadata(&metadata),
            Err(TokenError::Missing)
        );
        metadata.insert("authorization", format!("Bearer {good}").parse().unwrap());
        assert_eq!(
            verifier.verify_metadata(&metadata).unwrap().subject,
            "uw.alice"
        );
    }

    #[test]
    fn a_jwks_with_a_shared_secret_or_no_key_is_refused() {
        let oct = r#"{"keys":[{"kty":"oct","k":"c2VjcmV0","alg":"HS256","kid":"s"}]}"#;
        let e = ReviewerVerifier::from_jwks(oct, ISSUER, AUDIENCE)
            .err()
            .unwrap();
        assert!(e.to_string().contains("symmetric"), "{e}");
        let e = ReviewerVerifier::from_jwks(r#"{"keys":[]}"#, ISSUER, AUDIENCE)
            .err()
            .unwrap();
        assert!(e.to_string().contains("no key"), "{e}");
        let (_, jwk) = provider("k1");
        assert!(ReviewerVerifier::from_jwks(&jwks(&[&jwk]), "", AUDIENCE).is_err());
    }
}
