//! Vendor waterfalls: for each kind of data, the vendors to ask in order, and which
//! answers send the question on to the next one. Read from the `[waterfalls]` table of
//! the upstreams file:
//!
//! ```toml
//! [waterfalls.valuation]
//! vendors = ["valuation", "alt_valuation"]
//! next_on = ["not_found", "low_confidence"]
//! ```
//!
//! A failure (breaker open, timeout, 5xx, quota refused within the deadline) always
//! moves on to the next vendor; `next_on` adds the answers that are not good enough.

use std::collections::BTreeMap;

use serde::Deserialize;

use dossier_core::domain::Upstream;
use dossier_core::plan::DataKind;

/// Which answers are not good enough, so the next vendor is asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NextOn {
    /// The vendor has no record (404 no hit).
    pub not_found: bool,
    /// An AVM estimate whose confidence is below the policy's `valuation.min_confidence`.
    pub low_confidence: bool,
}

/// The vendors of one kind of data, in the order they are asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waterfall {
    pub vendors: Vec<Upstream>,
    pub next_on: NextOn,
}

impl Waterfall {
    /// One vendor: the kind's own.
    pub fn primary_only(kind: DataKind) -> Waterfall {
        Waterfall {
            vendors: vec![kind.primary()],
            next_on: NextOn::default(),
        }
    }
}

/// Every configured waterfall; a kind not configured asks its primary vendor alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Waterfalls(BTreeMap<DataKind, Waterfall>);

impl Waterfalls {
    pub fn of(&self, kind: DataKind) -> Waterfall {
        self.0
            .get(&kind)
            .cloned()
            .unwrap_or_else(|| Waterfall::primary_only(kind))
    }

    /// Every vendor some waterfall asks, with the setting that names it.
    pub fn named_vendors(&self) -> Vec<(Upstream, String)> {
        let mut out = Vec::new();
        for (kind, w) in &self.0 {
            for v in &w.vendors {
                out.push((*v, format!("waterfalls.{kind}.vendors")));
            }
        }
        out
    }

    /// Reads the `[waterfalls]` table of an upstreams file (absent: none), refusing an
    /// unknown kind or vendor, a vendor that cannot answer the kind, a vendor listed
    /// twice (a cycle) and a rule that does not apply, each naming its key.
    pub fn parse_file(text: &str) -> Result<Waterfalls, String> {
        #[derive(Deserialize)]
        struct File {
            #[serde(default)]
            waterfalls: BTreeMap<String, toml::Value>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            vendors: Vec<String>,
            next_on: Option<Vec<String>>,
        }
        // Only this table is read here: the upstreams' own tables are parsed and
        // validated by `settings::parse_file`.
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut out = BTreeMap::new();
        for (key, value) in file.waterfalls {
            let kind = DataKind::parse(&key)
                .filter(|k| DataKind::WATERFALLS.contains(k))
                .ok_or_else(|| {
                    format!(
                        "waterfalls.{key}: no such kind of data; waterfalls exist for {}",
                        names(DataKind::WATERFALLS.iter().map(|k| k.as_str()))
                    )
                })?;
            let raw: Raw = value
                .try_into()
                .map_err(|e| format!("waterfalls.{key}: {e}"))?;
            if raw.vendors.is_empty() {
                return Err(format!("waterfalls.{key}.vendors is empty"));
            }
            let able = names(kind.vendors().iter().map(|u| u.as_str()));
            let mut vendors = Vec::new();
            for name in &raw.vendors {
                let vendor = Upstream::parse(name).ok_or_else(|| {
                    format!("waterfalls.{key}.vendors names unknown vendor `{name}` (vendors that answer {key}: {able})")
                })?;
                if !kind.vendors().contains(&vendor) {
                    return Err(format!(
                        "waterfalls.{key}.vendors names `{name}`, which cannot answer {key} (vendors that can: {able})"
                    ));
                }
                if vendors.contains(&vendor) {
                    return Err(format!(
                        "waterfalls.{key}.vendors lists `{name}` twice: a waterfall may not come back to a vendor it already asked (a cycle)"
                    ));
                }
                vendors.push(vendor);
            }
            let rules = raw.next_on.unwrap_or_else(|| default_rules(kind));
            let mut next_on = NextOn::default();
            for rule in &rules {
                match rule.as_str() {
                    // Identity vendors answer every search (a 404 is a wrong URL).
                    "not_found"
                        if matches!(kind, DataKind::Valuation | DataKind::PropertyRecords) =>
                    {
                        next_on.not_found = true
                    }
                    "low_confidence" if kind == DataKind::Valuation => {
                        next_on.low_confidence = true
                    }
                    _ => {
                        return Err(format!(
                            "waterfalls.{key}.next_on: `{rule}` does not apply to {key} (rules for {key}: {})",
                            names(default_rules(kind).iter().map(String::as_str))
                        ));
                    }
                }
            }
            out.insert(kind, Waterfall { vendors, next_on });
        }
        Ok(Waterfalls(out))
    }
}

/// The rules a kind can use, which are also its defaults. A bankruptcy search with no
/// filings is an answer, not a miss; an identity vendor answers every search.
fn default_rules(kind: DataKind) -> Vec<String> {
    match kind {
        DataKind::Valuation => vec!["not_found".into(), "low_confidence".into()],
        DataKind::PropertyRecords => vec!["not_found".into()],
        _ => Vec::new(),
    }
}

fn names<'a>(it: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = it.collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waterfall_is_read_with_its_rules() {
        let w = Waterfalls::parse_file(
            "[valuation]\nrate_per_second = 3\n\n[waterfalls.valuation]\nvendors = [\"valuation\", \"alt_valuation\"]\n\n[waterfalls.identity]\nvendors = [\"alt_identity\", \"identity\"]\n",
        )
        .unwrap();
        let v = w.of(DataKind::Valuation);
        assert_eq!(v.vendors, vec![Upstream::Valuation, Upstream::AltValuation]);
        assert!(v.next_on.not_found && v.next_on.low_confidence);
        assert_eq!(
            w.of(DataKind::Identity).vendors,
            vec![Upstream::AltIdentity, Upstream::Identity]
        );
        assert_eq!(w.of(DataKind::Bankruptcy).vendors, vec![Upstream::Identity]);
        assert_eq!(Waterfalls::parse_file("").unwrap(), Waterfalls::default());
    }

    #[test]
    fn the_example_upstreams_file_parses() {
        let text = include_str!("../../../examples/upstreams.toml");
        crate::settings::parse_file(text).unwrap();
        let w = Waterfalls::parse_file(text).unwrap();
        assert_eq!(
            w.of(DataKind::Valuation).vendors,
            vec![Upstream::Valuation, Upstream::AltValuation]
        );
    }

    #[test]
    fn bad_waterfalls_are_refused_naming_the_key() {
        for (file, expected) in [
            (
                "[waterfalls.valuation]\nvendors = [\"valuation\", \"acme_avm\"]\n",
                "waterfalls.valuation.vendors names unknown vendor `acme_avm`",
            ),
            (
                "[waterfalls.valuation]\nvendors = [\"valuation\", \"alt_valuation\", \"valuation\"]\n",
                "lists `valuation` twice",
            ),
            (
                "[waterfalls.valuation]\nvendors = [\"identity\"]\n",
                "`identity`, which cannot answer valuation",
            ),
            (
                "[waterfalls.bankruptcy]\nvendors = [\"identity\"]\nnext_on = [\"not_found\"]\n",
                "waterfalls.bankruptcy.next_on: `not_found` does not apply",
            ),
            (
                "[waterfalls.licensing]\nvendors = [\"licensing\"]\n",
                "waterfalls.licensing: no such kind of data",
            ),
            (
                "[waterfalls.valuation]\nvendors = []\n",
                "waterfalls.valuation.vendors is empty",
            ),
        ] {
            let e = Waterfalls::parse_file(file).unwrap_err();
            assert!(e.contains(expected), "{file}: {e}");
        }
    }
}
