//! Operator-written files and identities: the underwriting policy, the access policy
//! and the upstreams file (TOML), a SPIFFE ID, a JWKS and a reviewer's token. A bad
//! file is refused with an error naming what is wrong, never a panic. A NUL byte splits
//! the input into a JWKS and the token verified against it.
#![no_main]

use dossier_core::policy::LoadedPolicy;
use dossier_service::identity::{AccessPolicy, ReviewerVerifier, SpiffeId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = LoadedPolicy::parse(text);
    let _ = AccessPolicy::parse(text, dossier_service::api::served_methods());
    let _ = dossier_upstream::settings::parse_file(text);
    let _ = SpiffeId::parse(text);
    let (jwks, token) = text.split_once('\0').unwrap_or((text, text));
    if let Ok(verifier) =
        ReviewerVerifier::from_jwks(jwks, "https://idp.dossier-dev.invalid", "dossier-dev")
    {
        let _ = verifier.verify(token);
    }
    let _ = SpiffeId::from_certificate(data);
});
