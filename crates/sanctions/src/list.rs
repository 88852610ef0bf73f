//! The SDN list's types: entries with their aliases and addresses, as read from the
//! official CSV files ([`crate::sdn_csv`]) or back from the store, and the [`Subject`] a
//! query screens for. Plain data; reading and matching live in their own files.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[cfg(doc)]
use crate::sdn_csv::{MAX_WARNINGS, files_sha256};

/// What an SDN entry designates (`SDN_Type`; `-0- ` means an entity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SdnKind {
    Individual,
    Entity,
    Vessel,
    Aircraft,
}

impl SdnKind {
    /// Stable string form, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            SdnKind::Individual => "individual",
            SdnKind::Entity => "entity",
            SdnKind::Vessel => "vessel",
            SdnKind::Aircraft => "aircraft",
        }
    }

    pub fn parse(s: &str) -> Option<SdnKind> {
        [
            SdnKind::Individual,
            SdnKind::Entity,
            SdnKind::Vessel,
            SdnKind::Aircraft,
        ]
        .into_iter()
        .find(|k| k.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// Which kind of query may match entries of this kind.
    pub fn subject(self) -> Subject {
        match self {
            SdnKind::Individual => Subject::Person,
            SdnKind::Entity | SdnKind::Vessel | SdnKind::Aircraft => Subject::Company,
        }
    }
}

/// What is being screened: a person matches only individuals; a company matches
/// entities, vessels and aircraft.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Subject {
    Person,
    Company,
}

/// The vessel columns of `sdn.csv`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vessel {
    pub call_sign: String,
    pub vessel_type: String,
    pub tonnage: String,
    pub grt: String,
    pub flag: String,
    pub owner: String,
}

impl Vessel {
    pub(crate) fn is_empty(&self) -> bool {
        *self == Vessel::default()
    }
}

/// A row of `alt.csv`: another name of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdnAlias {
    pub alt_num: i64,
    /// "aka", "fka" or "nka" as written in the file.
    pub alt_type: String,
    pub name: String,
    pub remarks: String,
}

/// A row of `add.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdnAddress {
    pub add_num: i64,
    pub address: String,
    /// City, state or province and postal code, as one field.
    pub city: String,
    pub country: String,
    pub remarks: String,
}

/// One SDN entry (a row of `sdn.csv`) with its aliases and addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdnEntry {
    pub ent_num: i64,
    /// As written: "LAST, First Middle" for individuals.
    pub name: String,
    pub kind: SdnKind,
    /// Sanctions programs, "; "-separated ("SDGT; IRGC").
    pub program: String,
    pub title: String,
    /// Only for entries with vessel columns.
    pub vessel: Option<Vessel>,
    pub remarks: String,
    pub aliases: Vec<SdnAlias>,
    pub addresses: Vec<SdnAddress>,
}

/// Which stored list a [`SdnList`] was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListVersion {
    /// `sanctions_lists.id`: the list's version.
    pub id: i64,
    pub loaded_at: DateTime<Utc>,
    pub source: String,
}

/// A whole SDN list: parsed from files, or read back from the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SdnList {
    pub entries: Vec<SdnEntry>,
    /// Rows of the files skipped as malformed.
    pub skipped_rows: usize,
    /// SHA-256 (hex) of the files the list was read from (see [`files_sha256`]).
    pub sha256: String,
    /// The first warnings of the parse (at most [`MAX_WARNINGS`]); empty when read back.
    pub warnings: Vec<String>,
    /// Set when read from the store.
    pub stored: Option<ListVersion>,
}

impl SdnList {
    pub fn alias_count(&self) -> usize {
        self.entries.iter().map(|e| e.aliases.len()).sum()
    }

    pub fn address_count(&self) -> usize {
        self.entries.iter().map(|e| e.addresses.len()).sum()
    }
}
