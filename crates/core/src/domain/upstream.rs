//! The data sources Dossier asks, as one closed set.
//!
//! Their string forms are stable: they are the keys of the upstreams file, the
//! `upstream` label of the metrics, the `upstream` column of the audit, cache and
//! fleet-limit tables, and the `source.upstream` field of stored decisions (which
//! replay reads back), so renaming one is a migration, not a refactor.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Upstream {
    /// The lender's Rails backend: applications, and the outbox of decisions.
    Rails,
    /// Ownership, taxes, liens and assessments of a property.
    PropertyRecords,
    /// Automated valuation (AVM).
    Valuation,
    /// Identity, bankruptcies and income of a person.
    Identity,
    /// A contractor's licence.
    Licensing,
    /// A contractor's business registration.
    Registry,
    /// A second AVM vendor, asked when a valuation waterfall falls back to it. It speaks
    /// the valuation wire format (`dossier_upstream::valuation`) with its own data.
    AltValuation,
    /// A second identity vendor (identity, bankruptcies, income), asked when an
    /// identity or bankruptcy waterfall falls back to it; the identity wire format.
    AltIdentity,
    /// The SDN list, screened in-process (no HTTP).
    Sanctions,
}

impl Upstream {
    /// Every upstream, in the order reports list them.
    pub const ALL: [Upstream; 9] = [
        Upstream::Rails,
        Upstream::PropertyRecords,
        Upstream::Valuation,
        Upstream::Identity,
        Upstream::Licensing,
        Upstream::Registry,
        Upstream::AltValuation,
        Upstream::AltIdentity,
        Upstream::Sanctions,
    ];

    /// The upstreams Dossier calls over HTTP (each has a protection stack and an entry
    /// in the upstreams file).
    pub const HTTP: [Upstream; 8] = [
        Upstream::Rails,
        Upstream::PropertyRecords,
        Upstream::Valuation,
        Upstream::Identity,
        Upstream::Licensing,
        Upstream::Registry,
        Upstream::AltValuation,
        Upstream::AltIdentity,
    ];

    /// The upstreams every deployment must configure; the others are vendors a
    /// waterfall may fall back to, configured only when one names them.
    pub const REQUIRED: [Upstream; 6] = [
        Upstream::Rails,
        Upstream::PropertyRecords,
        Upstream::Valuation,
        Upstream::Identity,
        Upstream::Licensing,
        Upstream::Registry,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Upstream::Rails => "rails",
            Upstream::PropertyRecords => "property_records",
            Upstream::Valuation => "valuation",
            Upstream::Identity => "identity",
            Upstream::Licensing => "licensing",
            Upstream::Registry => "registry",
            Upstream::AltValuation => "alt_valuation",
            Upstream::AltIdentity => "alt_identity",
            Upstream::Sanctions => "sanctions",
        }
    }

    pub fn parse(s: &str) -> Option<Upstream> {
        Upstream::ALL.into_iter().find(|u| u.as_str() == s)
    }

    /// Whether its answers hold personal data (an applicant's identity, an
    /// application): those are sealed at rest in the shared cache.
    pub const fn holds_personal_data(self) -> bool {
        matches!(
            self,
            Upstream::Rails | Upstream::Identity | Upstream::AltIdentity
        )
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an unknown upstream name; says which names exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownUpstream(pub String);

impl fmt::Display for UnknownUpstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let known: Vec<&str> = Upstream::ALL.iter().map(|u| u.as_str()).collect();
        write!(
            f,
            "unknown upstream `{}` (known: {})",
            self.0,
            known.join(", ")
        )
    }
}

impl std::error::Error for UnknownUpstream {}

impl FromStr for Upstream {
    type Err = UnknownUpstream;

    fn from_str(s: &str) -> Result<Upstream, UnknownUpstream> {
        Upstream::parse(s).ok_or_else(|| UnknownUpstream(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_forms_round_trip_through_parse_display_and_serde() {
        for u in Upstream::ALL {
            assert_eq!(Upstream::parse(u.as_str()), Some(u));
            assert_eq!(u.to_string(), u.as_str());
            let json = serde_json::to_string(&u).unwrap();
            assert_eq!(json, format!("\"{}\"", u.as_str()));
            assert_eq!(serde_json::from_str::<Upstream>(&json).unwrap(), u);
        }
    }

    #[test]
    fn an_unknown_name_is_refused_with_the_known_ones() {
        let e = "vendorx".parse::<Upstream>().unwrap_err().to_string();
        assert!(
            e.contains("vendorx") && e.contains("property_records"),
            "{e}"
        );
    }

    #[test]
    fn http_upstreams_are_all_but_sanctions() {
        let http: Vec<_> = Upstream::ALL
            .into_iter()
            .filter(|u| *u != Upstream::Sanctions)
            .collect();
        assert_eq!(http, Upstream::HTTP);
    }
}
