//! ListReports page tokens: where the next page starts, bound to the filters it was
//! issued for and to the caller it was issued to, and signed, so a token cannot be
//! forged (to start anywhere) or replayed by another caller.
//!
//! `base64url(json) "." base64url(mac)`, the MAC an HMAC-SHA-256 under the vault's
//! keyed-hash key in a context of its own ("page-token"), truncated to 16 bytes. A
//! lookup-key rotation invalidates outstanding tokens: callers restart the listing.

use base64::Engine as _;
use dossier_store::Vault;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::identity::Caller;

const MAC_BYTES: usize = 16;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageToken {
    /// Position: created_at (RFC 3339) and id of the last row returned.
    pub c: chrono::DateTime<chrono::Utc>,
    pub i: Uuid,
    /// Fingerprint of the filters, so a token is not reused with other filters.
    pub f: String,
}

/// Why a page token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not a token this service issued to this caller (forged, altered, another
    /// caller's, or signed under a retired key).
    NotIssued,
    /// Issued for other filters.
    OtherFilters,
}

fn mac(vault: &Vault, caller: &Caller, payload: &[u8]) -> Vec<u8> {
    let mut input = caller.to_string().into_bytes();
    input.push(0);
    input.extend_from_slice(payload);
    let mut mac = vault.lookup_hash("page-token", &input);
    mac.truncate(MAC_BYTES);
    mac
}

pub fn encode(vault: &Vault, caller: &Caller, token: &PageToken) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = serde_json::to_vec(token).expect("a page token serialises");
    format!(
        "{}.{}",
        b64.encode(&payload),
        b64.encode(mac(vault, caller, &payload))
    )
}

pub fn decode(
    vault: &Vault,
    caller: &Caller,
    text: &str,
    filters: &str,
) -> Result<PageToken, Refused> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (payload, tag) = text.split_once('.').ok_or(Refused::NotIssued)?;
    let payload = b64.decode(payload).map_err(|_| Refused::NotIssued)?;
    let tag = b64.decode(tag).map_err(|_| Refused::NotIssued)?;
    if !equal_in_constant_time(&tag, &mac(vault, caller, &payload)) {
        return Err(Refused::NotIssued);
    }
    let token: PageToken = serde_json::from_slice(&payload).map_err(|_| Refused::NotIssued)?;
    if token.f != filters {
        return Err(Refused::OtherFilters);
    }
    Ok(token)
}

/// Byte comparison whose time does not depend on where the inputs differ, so a caller
/// cannot find a valid MAC byte by byte. Three lines, not worth a crate.
fn equal_in_constant_time(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::SpiffeId;

    fn caller(id: &str) -> Caller {
        Caller::Workload(SpiffeId::parse(id).unwrap())
    }

    #[test]
    fn a_page_token_is_good_only_for_its_caller_and_filters() {
        let vault = Vault::ephemeral();
        let alice = caller("spiffe://lender.example/ns/reporting/sa/a");
        let bob = caller("spiffe://lender.example/ns/reporting/sa/b");
        let token = PageToken {
            c: chrono::Utc::now(),
            i: Uuid::now_v7(),
            f: "abcd".into(),
        };
        let issued = encode(&vault, &alice, &token);
        assert_eq!(decode(&vault, &alice, &issued, "abcd"), Ok(token.clone()));
        assert_eq!(
            decode(&vault, &alice, &issued, "ef01"),
            Err(Refused::OtherFilters)
        );
        assert_eq!(
            decode(&vault, &bob, &issued, "abcd"),
            Err(Refused::NotIssued)
        );
        assert_eq!(
            decode(&vault, &Caller::Anonymous, &issued, "abcd"),
            Err(Refused::NotIssued)
        );
        assert_eq!(
            decode(&Vault::ephemeral(), &alice, &issued, "abcd"),
            Err(Refused::NotIssued),
            "another key"
        );

        // A forged position: the payload changed, the MAC kept.
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (_, tag) = issued.split_once('.').unwrap();
        let forged = PageToken {
            i: Uuid::nil(),
            ..token.clone()
        };
        let forged = format!("{}.{tag}", b64.encode(serde_json::to_vec(&forged).unwrap()));
        assert_eq!(
            decode(&vault, &alice, &forged, "abcd"),
            Err(Refused::NotIssued)
        );
        // The unsigned tokens of earlier releases, and garbage.
        let unsigned = b64.encode(serde_json::to_vec(&token).unwrap());
        for bad in [unsigned.as_str(), "", ".", "a.b", "!!!.???"] {
            assert_eq!(
                decode(&vault, &alice, bad, "abcd"),
                Err(Refused::NotIssued),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn comparison_is_exact() {
        assert!(equal_in_constant_time(b"abc", b"abc"));
        assert!(!equal_in_constant_time(b"abc", b"abd"));
        assert!(!equal_in_constant_time(b"abc", b"ab"));
        assert!(equal_in_constant_time(b"", b""));
    }
}
