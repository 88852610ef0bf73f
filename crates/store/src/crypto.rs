//! Field-level protection of SSNs and dates of birth.
//!
//! Values are sealed with AES-256-GCM under a named key; the key id is stored beside
//! each value so keys can be rotated (new writes use the active key, old rows still
//! decrypt with the retired key until re-encrypted). Look-ups use a keyed hash
//! (HMAC-SHA-256 under a separate key): a plain SHA-256 of a nine-digit SSN could be
//! reversed by trying all 10^9 values.

use std::collections::HashMap;

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error(
        "encryption key setting is malformed: {0}; expected `id:base64` entries of 32-byte keys separated by commas, e.g. `k1:$(openssl rand -base64 32)`"
    )]
    BadKeyConfig(String),
    #[error(
        "no encryption key with id `{0}` is configured; add it to DOSSIER_ENCRYPTION_KEYS (retired keys must stay until every row is re-encrypted)"
    )]
    UnknownKey(String),
    #[error("stored value failed to decrypt (wrong key, or the row was tampered with)")]
    Decrypt,
}

/// A sealed value: `nonce || ciphertext+tag`, and the id of the key that sealed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub bytes: Vec<u8>,
}

#[derive(Clone)]
pub struct Vault {
    active: String,
    keys: HashMap<String, Aes256Gcm>,
    lookup: Hmac<Sha256>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("active_key_id", &self.active)
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A key's bytes, wiped from memory when dropped (the ciphers wipe their own copies:
/// aes-gcm's `zeroize` feature).
fn decode_key(b64: &str, what: &str) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
    let bytes = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| CryptoError::BadKeyConfig(format!("{what} is not base64 ({e})")))?,
    );
    let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
        CryptoError::BadKeyConfig(format!("{what} is {} bytes, not 32", bytes.len()))
    })?;
    Ok(Zeroizing::new(key))
}

/// The associated data sealed values are bound to: what the value is and the row it
/// belongs to, so a value copied into another row or column fails to open.
pub mod context {
    use uuid::Uuid;

    /// An applicant's SSN or date of birth (`field` "ssn" or "dob"). Seal version 1,
    /// written by earlier releases, bound only the column.
    pub fn applicant(field: &str, application_id: Uuid, position: i32, version: i16) -> String {
        match version {
            1 => field.to_owned(),
            _ => format!("applicant_secrets/{field}/{application_id}/{position}"),
        }
    }

    /// The personal part of an evaluation run's inputs.
    pub fn run_inputs(run_id: Uuid) -> String {
        format!("evaluation_runs/inputs/{run_id}")
    }

    /// A personal upstream answer in the shared cache, under its question's key hash.
    pub fn cache(upstream: &str, kind: &str, key: &[u8]) -> String {
        format!("upstream_cache/{upstream}/{kind}/{}", hex::encode(key))
    }
}

/// The seal version new applicant rows are written with (see [`context::applicant`]).
pub const SEAL_VERSION: i16 = 2;

impl Vault {
    /// `keys` is `id:base64,id:base64`; the first entry is the active key unless
    /// `active` names another. `lookup_key` is base64 of 32 bytes.
    pub fn from_config(
        keys: &str,
        active: Option<&str>,
        lookup_key: &str,
    ) -> Result<Vault, CryptoError> {
        let mut map = HashMap::new();
        let mut first = None;
        for entry in keys.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, b64) = entry
                .split_once(':')
                .ok_or_else(|| CryptoError::BadKeyConfig("an entry has no `id:` prefix".into()))?;
            let key = decode_key(b64, &format!("key `{id}`"))?;
            first.get_or_insert_with(|| id.to_owned());
            // Two keys under one id: whichever came last would silently open (and
            // fail to open) every value sealed under the other.
            if map
                .insert(id.to_owned(), Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key)))
                .is_some()
            {
                return Err(CryptoError::BadKeyConfig(format!(
                    "key id `{id}` is listed twice; every key needs an id of its own"
                )));
            }
        }
        let active = match active.filter(|a| !a.is_empty()) {
            Some(a) => a.to_owned(),
            None => first.ok_or_else(|| CryptoError::BadKeyConfig("no key given".into()))?,
        };
        if !map.contains_key(&active) {
            return Err(CryptoError::UnknownKey(active));
        }
        let lookup = decode_key(lookup_key, "the lookup key")?;
        Ok(Vault {
            active,
            keys: map,
            lookup: <Hmac<Sha256> as Mac>::new_from_slice(lookup.as_slice())
                .expect("HMAC takes any key size"),
        })
    }

    /// A vault with fresh random keys, for `dossier dev` and tests: data sealed with it
    /// is unreadable once the process exits.
    pub fn ephemeral() -> Vault {
        let (keys, lookup) = Vault::throwaway_config();
        Vault::from_config(&keys, None, &lookup).expect("generated keys are valid")
    }

    /// Fresh random settings for DOSSIER_ENCRYPTION_KEYS and DOSSIER_LOOKUP_KEY, for
    /// processes that must share one throw-away vault (`dossier fleet`'s replicas).
    pub fn throwaway_config() -> (String, String) {
        let b64 = |k: &[u8]| base64::engine::general_purpose::STANDARD.encode(k);
        (
            format!("ephemeral:{}", b64(&Aes256Gcm::generate_key(OsRng))),
            b64(&Aes256Gcm::generate_key(OsRng)),
        )
    }

    pub fn active_key_id(&self) -> &str {
        &self.active
    }

    /// Whether a value sealed under `key_id` should be sealed again (rotation): it is
    /// not under the active key.
    pub fn is_retired(&self, key_id: &str) -> bool {
        key_id != self.active
    }

    /// Seals `plaintext`; `context` (e.g. "ssn") is bound as associated data so a value
    /// cannot be swapped into another column undetected.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Sealed {
        let cipher = &self.keys[&self.active];
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ct = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of a short value cannot fail");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&ct);
        Sealed {
            key_id: self.active.clone(),
            bytes,
        }
    }

    pub fn open(&self, sealed: &Sealed, context: &str) -> Result<Vec<u8>, CryptoError> {
        let cipher = self
            .keys
            .get(&sealed.key_id)
            .ok_or_else(|| CryptoError::UnknownKey(sealed.key_id.clone()))?;
        if sealed.bytes.len() < NONCE_LEN {
            return Err(CryptoError::Decrypt);
        }
        let (nonce, ct) = sealed.bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("split at NONCE_LEN");
        cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ct,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Decrypt)
    }

    /// Keyed hash for equality look-ups (find applications by SSN without decrypting).
    pub fn lookup_hash(&self, context: &str, value: &[u8]) -> Vec<u8> {
        let mut mac = self.lookup.clone();
        mac.update(context.as_bytes());
        mac.update(&[0]);
        mac.update(value);
        mac.finalize().into_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "HxwdHhsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA=";

    #[test]
    fn applicant_values_are_bound_to_their_row_from_seal_version_2() {
        let v = Vault::from_config(&format!("k1:{K1}"), None, K2).unwrap();
        let (a, b) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        let sealed = v.seal(b"123456789", &context::applicant("ssn", a, 0, SEAL_VERSION));
        let opens = |id, pos, field, version| {
            v.open(&sealed, &context::applicant(field, id, pos, version))
                .is_ok()
        };
        assert!(opens(a, 0, "ssn", SEAL_VERSION));
        assert!(!opens(b, 0, "ssn", SEAL_VERSION), "another application");
        assert!(!opens(a, 1, "ssn", SEAL_VERSION), "another applicant");
        assert!(!opens(a, 0, "dob", SEAL_VERSION), "another column");
        assert!(
            !opens(a, 0, "ssn", 1),
            "the column-only binding of version 1"
        );
        assert_eq!(context::applicant("ssn", a, 0, 1), "ssn");
    }

    #[test]
    fn seals_and_opens_and_binds_context() {
        let v = Vault::from_config(&format!("k1:{K1}"), None, K2).unwrap();
        let s = v.seal(b"123456789", "ssn");
        assert_eq!(s.key_id, "k1");
        assert!(!s.bytes.windows(9).any(|w| w == b"123456789"));
        assert_eq!(v.open(&s, "ssn").unwrap(), b"123456789");
        assert!(matches!(v.open(&s, "dob"), Err(CryptoError::Decrypt)));
        // Same plaintext twice → different ciphertexts (random nonce).
        assert_ne!(v.seal(b"123456789", "ssn").bytes, s.bytes);
    }

    #[test]
    fn rotation_keeps_old_values_readable() {
        let old = Vault::from_config(&format!("k1:{K1}"), None, K2).unwrap();
        let sealed = old.seal(b"1970-01-01", "dob");
        let rotated = Vault::from_config(&format!("k2:{K2},k1:{K1}"), None, K2).unwrap();
        assert_eq!(rotated.active_key_id(), "k2");
        assert_eq!(rotated.open(&sealed, "dob").unwrap(), b"1970-01-01");
        let dropped = Vault::from_config(&format!("k2:{K2}"), None, K2).unwrap();
        assert!(
            matches!(dropped.open(&sealed, "dob"), Err(CryptoError::UnknownKey(id)) if id == "k1")
        );
    }

    #[test]
    fn lookup_hash_is_keyed_and_stable() {
        let a = Vault::from_config(&format!("k1:{K1}"), None, K2).unwrap();
        let b = Vault::from_config(&format!("k1:{K1}"), None, K1).unwrap();
        assert_eq!(
            a.lookup_hash("ssn", b"123456789"),
            a.lookup_hash("ssn", b"123456789")
        );
        assert_ne!(
            a.lookup_hash("ssn", b"123456789"),
            b.lookup_hash("ssn", b"123456789")
        );
    }

    #[test]
    fn bad_key_config_is_explained() {
        let err = Vault::from_config("k1:c2hvcnQ=", None, K2)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not 32"), "{err}");
        let err = Vault::from_config(&format!("k1:{K1}"), Some("k9"), K2)
            .unwrap_err()
            .to_string();
        assert!(err.contains("k9"), "{err}");
        let err = Vault::from_config(&format!("k1:{K1},k1:{K2}"), None, K2)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`k1` is listed twice"), "{err}");
        assert!(!err.contains(K1) && !err.contains(K2), "{err}");
    }
}
