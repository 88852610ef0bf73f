//! Every upstream response decoder: the first byte picks the upstream and the HTTP
//! status, the rest is the body. Decoded answers are converted to evidence (and a Rails
//! application through intake validation), as the clients do. Garbage must become a
//! typed error, never a panic.
#![no_main]

use std::sync::LazyLock;

use dossier_core::evidence;
use dossier_core::intake;
use dossier_core::policy::{LoadedPolicy, Program};
use dossier_upstream::{Upstream, decode_answer};
use dossier_upstream::{identity, licensing, property_records, rails, registry, valuation};
use libfuzzer_sys::fuzz_target;

static PROGRAM: LazyLock<Program> = LazyLock::new(|| LoadedPolicy::default_policy().policy.program);

const STATUSES: [u16; 6] = [200, 200, 404, 429, 500, 403];

fn decode<T: serde::de::DeserializeOwned>(
    upstream: Upstream,
    status: u16,
    body: &[u8],
) -> Option<T> {
    decode_answer::<T>(upstream, status, None, body)
        .ok()
        .flatten()
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let status = STATUSES[(selector >> 4) as usize % STATUSES.len()];
    match selector & 0x0f {
        0 => {
            if let Some(r) =
                decode::<property_records::PropertyRecord>(Upstream::PropertyRecords, status, body)
            {
                let _: evidence::PropertyRecord = r.into();
            }
        }
        1 => {
            if let Some(r) = decode::<valuation::AvmEstimate>(Upstream::Valuation, status, body) {
                let _: evidence::AvmEstimate = r.into();
            }
        }
        2 => {
            if let Some(r) = decode::<identity::IdentityResult>(Upstream::Identity, status, body) {
                let _: evidence::IdentityResult = r.into();
            }
        }
        3 => {
            if let Some(r) =
                decode::<identity::IncomeVerification>(Upstream::Identity, status, body)
            {
                let _: evidence::IncomeVerification = r.into();
            }
        }
        4 => {
            if let Some(r) = decode::<identity::BankruptcySearch>(Upstream::Identity, status, body)
            {
                let _: evidence::BankruptcySearch = r.into();
            }
        }
        5 => {
            if let Some(r) = decode::<licensing::LicenseRecord>(Upstream::Licensing, status, body) {
                let _: evidence::LicenseRecord = r.into();
            }
        }
        6 => {
            if let Some(r) = decode::<registry::BusinessRecord>(Upstream::Registry, status, body) {
                let _: evidence::BusinessRecord = r.into();
            }
        }
        7 => {
            if let Some(r) = decode::<rails::RailsApplication>(Upstream::Rails, status, body) {
                let draft = dossier_service::underwriting::rails_conversion::to_draft(&r);
                let _ = intake::application(&draft, "rails_application", &PROGRAM);
            }
        }
        8 => {
            let _ = decode::<rails::RailsApplicationBatch>(Upstream::Rails, status, body);
        }
        _ => {
            let _ = decode::<rails::RailsDecisionAck>(Upstream::Rails, status, body);
        }
    }
});
