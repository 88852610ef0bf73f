//! Screening names against the US Treasury OFAC SDN list, held in PostgreSQL.
//!
//! The list is not an HTTP upstream: an operator (or a scheduled job) loads the official
//! CSV files into PostgreSQL with [`load_dir`], every pod keeps the active list in
//! memory in a [`SanctionsList`] refreshed with [`SanctionsList::refresh_from`], and
//! each underwriting call screens names with [`SanctionsList::answer`] in well under a
//! millisecond, without any network call.
//!
//! * Reading: [`parse_sdn_files`] reads the official layout: `sdn.csv`, `alt.csv`,
//!   `add.csv`, no header rows, double-quoted fields, `-0- ` for empty, CRLF rows and a
//!   trailing 0x1A line. Malformed rows are skipped with a counted warning; a file that
//!   yields no entry is an error, so a bad download never replaces a good list.
//! * Matching: [`SanctionsScreen`] normalises every name once at build time (uppercase,
//!   diacritics and punctuation removed, "LAST, First" reordered, company suffixes
//!   dropped) and scores a query with Jaro–Winkler on token-sorted strings and on a
//!   token-set best-pair average, taking the larger. Cheap exact bounds and a shared
//!   first-letter gate keep a screen over ~30,000 names far below a millisecond.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::http::Fetched;
use crate::domain::DataSource;
pub use crate::store::sanctions::LoadSummary;
use crate::store::{Store, StoreError};

/// The `upstream` name in [`DataSource`]s of sanctions answers.
pub const UPSTREAM: &str = "sanctions";
/// The most hits one screen returns.
pub const MAX_HITS: usize = 5;

// ---------------------------------------------------------------------------------
// The list
// ---------------------------------------------------------------------------------

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
    fn is_empty(&self) -> bool {
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

// ---------------------------------------------------------------------------------
// Reading the official CSV files
// ---------------------------------------------------------------------------------

/// Warnings kept in [`SdnList::warnings`] (all are logged).
pub const MAX_WARNINGS: usize = 50;

/// A file that cannot be used at all. Malformed rows are not errors: they are skipped
/// and counted.
#[derive(Debug, thiserror::Error)]
pub enum SdnError {
    #[error(
        "{file} line {line}: cannot read the CSV ({detail}); the file is damaged or is not \
         the SDN list's CSV: download it again"
    )]
    Csv {
        file: &'static str,
        line: u64,
        detail: String,
    },
    #[error(
        "{file} yielded no entries ({rows} rows read, {skipped} skipped as malformed{first}); \
         refusing to replace the sanctions list with an empty one: check that it is the SDN \
         list in CSV form (no header row, 12 columns per row) and download it again"
    )]
    Empty {
        file: &'static str,
        rows: usize,
        skipped: usize,
        /// "; first: line 3: …", or empty.
        first: String,
    },
}

struct Warnings {
    kept: Vec<String>,
    skipped: usize,
}

impl Warnings {
    fn warn(&mut self, file: &str, line: u64, what: &str) {
        tracing::warn!(file, line, "sanctions list: {what}");
        if self.kept.len() < MAX_WARNINGS {
            self.kept.push(format!("{file} line {line}: {what}"));
        }
    }

    fn skip(&mut self, file: &str, line: u64, what: &str) {
        self.skipped += 1;
        self.warn(file, line, &format!("{what}; row skipped"));
    }
}

/// A field as text: UTF-8, or Latin-1 when it is not valid UTF-8; control characters
/// (NUL, the 0x1A end-of-file mark) become spaces; trimmed; `-0-` is empty.
fn field(raw: &[u8]) -> String {
    let text = match std::str::from_utf8(raw) {
        Ok(s) => s.to_owned(),
        Err(_) => raw.iter().map(|&b| b as char).collect(),
    };
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = text.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    if text == "-0-" {
        String::new()
    } else {
        text.to_owned()
    }
}

/// Reads the records of one file as trimmed text fields, with their line numbers.
/// Blank records (empty lines, the trailing 0x1A line) are left out.
fn read_rows(file: &'static str, bytes: &[u8]) -> Result<Vec<(u64, Vec<String>)>, SdnError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut rows = Vec::new();
    let mut record = csv::ByteRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(line);
                return Err(SdnError::Csv {
                    file,
                    line,
                    detail: e.to_string(),
                });
            }
        }
        let line = record.position().map(|p| p.line()).unwrap_or(line);
        let fields: Vec<String> = record.iter().map(field).collect();
        if fields.iter().all(String::is_empty) {
            continue;
        }
        rows.push((line, fields));
    }
    Ok(rows)
}

fn number(s: &str) -> Option<i64> {
    s.parse::<i64>().ok().filter(|n| *n > 0)
}

fn get(fields: &[String], i: usize) -> String {
    fields.get(i).cloned().unwrap_or_default()
}

/// "CUBA] [CUBA-EO14404" → "CUBA; CUBA-EO14404".
fn tidy_program(raw: &str) -> String {
    raw.split("] [")
        .map(|p| p.trim_matches(|c: char| c == '[' || c == ']' || c.is_whitespace()))
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// SHA-256 over the files a list is read from: for each present file in the order
/// sdn, alt, add, its name, its length (u64 little-endian) and its bytes.
pub fn files_sha256(sdn: &[u8], alt: Option<&[u8]>, add: Option<&[u8]>) -> String {
    let mut hash = Sha256::new();
    for (name, bytes) in [("sdn.csv", Some(sdn)), ("alt.csv", alt), ("add.csv", add)] {
        if let Some(bytes) = bytes {
            hash.update(name.as_bytes());
            hash.update((bytes.len() as u64).to_le_bytes());
            hash.update(bytes);
        }
    }
    hex::encode(hash.finalize())
}

/// Parses the official SDN CSV files: `sdn.csv` (required), `alt.csv` and `add.csv`
/// (optional). Malformed rows (too few columns, a non-numeric or duplicate number,
/// an empty name, an alias or address of an unknown entry) are skipped, counted in
/// [`SdnList::skipped_rows`] and logged. Fails when `sdn.csv` yields no entry.
pub fn parse_sdn_files(
    sdn: &[u8],
    alt: Option<&[u8]>,
    add: Option<&[u8]>,
) -> Result<SdnList, SdnError> {
    let mut w = Warnings {
        kept: Vec::new(),
        skipped: 0,
    };
    let mut entries: Vec<SdnEntry> = Vec::new();
    let mut index: HashMap<i64, usize> = HashMap::new();

    let rows = read_rows("sdn.csv", sdn)?;
    let row_count = rows.len();
    for (line, f) in rows {
        let file = "sdn.csv";
        if f.len() < 3 {
            w.skip(
                file,
                line,
                &format!("expected 12 columns, found {}", f.len()),
            );
            continue;
        }
        let Some(ent_num) = number(&f[0]) else {
            w.skip(file, line, &format!("ent_num {:?} is not a number", f[0]));
            continue;
        };
        if f[1].is_empty() {
            w.skip(file, line, &format!("entry {ent_num} has no name"));
            continue;
        }
        if index.contains_key(&ent_num) {
            w.skip(file, line, &format!("entry {ent_num} appears twice"));
            continue;
        }
        let kind = if f[2].is_empty() {
            SdnKind::Entity
        } else {
            SdnKind::parse(&f[2]).unwrap_or_else(|| {
                // Never drop a designation over its type: screen it as an entity.
                w.warn(
                    file,
                    line,
                    &format!(
                        "entry {ent_num} has unknown SDN_Type {:?}; kept as an entity",
                        f[2]
                    ),
                );
                SdnKind::Entity
            })
        };
        let vessel = Vessel {
            call_sign: get(&f, 5),
            vessel_type: get(&f, 6),
            tonnage: get(&f, 7),
            grt: get(&f, 8),
            flag: get(&f, 9),
            owner: get(&f, 10),
        };
        index.insert(ent_num, entries.len());
        entries.push(SdnEntry {
            ent_num,
            name: f[1].clone(),
            kind,
            program: tidy_program(&get(&f, 3)),
            title: get(&f, 4),
            vessel: (!vessel.is_empty()).then_some(vessel),
            remarks: get(&f, 11),
            aliases: Vec::new(),
            addresses: Vec::new(),
        });
    }
    if entries.is_empty() {
        return Err(SdnError::Empty {
            file: "sdn.csv",
            rows: row_count,
            skipped: w.skipped,
            first: w
                .kept
                .first()
                .map(|s| format!("; first: {s}"))
                .unwrap_or_default(),
        });
    }

    if let Some(alt) = alt {
        let file = "alt.csv";
        let mut seen: HashSet<(i64, i64)> = HashSet::new();
        for (line, f) in read_rows(file, alt)? {
            if f.len() < 4 {
                w.skip(
                    file,
                    line,
                    &format!("expected 5 columns, found {}", f.len()),
                );
                continue;
            }
            let (Some(ent_num), Some(alt_num)) = (number(&f[0]), number(&f[1])) else {
                w.skip(file, line, "ent_num or alt_num is not a number");
                continue;
            };
            let Some(&i) = index.get(&ent_num) else {
                w.skip(file, line, &format!("alias of unknown entry {ent_num}"));
                continue;
            };
            if f[3].is_empty() {
                w.skip(file, line, &format!("alias {alt_num} has no name"));
                continue;
            }
            if !seen.insert((ent_num, alt_num)) {
                w.skip(file, line, &format!("alias {alt_num} appears twice"));
                continue;
            }
            entries[i].aliases.push(SdnAlias {
                alt_num,
                alt_type: f[2].clone(),
                name: f[3].clone(),
                remarks: get(&f, 4),
            });
        }
    }

    if let Some(add) = add {
        let file = "add.csv";
        let mut seen: HashSet<(i64, i64)> = HashSet::new();
        for (line, f) in read_rows(file, add)? {
            if f.len() < 3 {
                w.skip(
                    file,
                    line,
                    &format!("expected 6 columns, found {}", f.len()),
                );
                continue;
            }
            let (Some(ent_num), Some(add_num)) = (number(&f[0]), number(&f[1])) else {
                w.skip(file, line, "ent_num or add_num is not a number");
                continue;
            };
            let Some(&i) = index.get(&ent_num) else {
                w.skip(file, line, &format!("address of unknown entry {ent_num}"));
                continue;
            };
            if !seen.insert((ent_num, add_num)) {
                w.skip(file, line, &format!("address {add_num} appears twice"));
                continue;
            }
            entries[i].addresses.push(SdnAddress {
                add_num,
                address: get(&f, 2),
                city: get(&f, 3),
                country: get(&f, 4),
                remarks: get(&f, 5),
            });
        }
    }

    Ok(SdnList {
        entries,
        skipped_rows: w.skipped,
        sha256: files_sha256(sdn, alt, add),
        warnings: w.kept,
        stored: None,
    })
}

/// Reads `sdn.csv` (required), `alt.csv` and `add.csv` (optional) from `dir` and makes
/// them the active sanctions list of the fleet, in one transaction.
pub async fn load_dir(store: &Store, dir: &Path) -> anyhow::Result<LoadSummary> {
    let sdn_path = dir.join("sdn.csv");
    let sdn = tokio::fs::read(&sdn_path).await.with_context(|| {
        format!(
            "cannot read {}: put the SDN list's CSV files (sdn.csv; alt.csv and add.csv for \
             aliases and addresses) in {} and run the load again; the active list is unchanged",
            sdn_path.display(),
            dir.display()
        )
    })?;
    let optional = |name: &'static str| {
        let path = dir.join(name);
        async move {
            match tokio::fs::read(&path).await {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tracing::warn!(
                        "{} not found: the list is loaded without its {}",
                        path.display(),
                        if name == "alt.csv" {
                            "aliases (a.k.a. names are not screened)"
                        } else {
                            "addresses"
                        }
                    );
                    Ok(None)
                }
                Err(e) => Err(anyhow::anyhow!(
                    "cannot read {} ({e}); fix its permissions or remove it, then run the load again; the active list is unchanged",
                    path.display()
                )),
            }
        }
    };
    let alt = optional("alt.csv").await?;
    let add = optional("add.csv").await?;
    let list =
        tokio::task::spawn_blocking(move || parse_sdn_files(&sdn, alt.as_deref(), add.as_deref()))
            .await
            .context("the sanctions list parser panicked")?
            .with_context(|| format!("cannot load the sanctions list from {}", dir.display()))?;
    let summary = store
        .replace_sanctions_list(&list, &dir.display().to_string())
        .await
        .with_context(|| {
            format!(
                "cannot store the sanctions list read from {}; the active list is unchanged",
                dir.display()
            )
        })?;
    tracing::info!(
        list_id = summary.list_id,
        entries = summary.entries,
        aliases = summary.aliases,
        addresses = summary.addresses,
        skipped_rows = summary.skipped_rows,
        "{summary}"
    );
    Ok(summary)
}

// ---------------------------------------------------------------------------------
// Normalising names
// ---------------------------------------------------------------------------------

/// Company-form words left out of entity names, so "X TRADING LLC" is "X TRADING INC".
const COMPANY_SUFFIXES: &[&str] = &[
    "INC",
    "INCORPORATED",
    "LLC",
    "LLP",
    "LP",
    "CO",
    "CORP",
    "CORPORATION",
    "COMPANY",
    "LTD",
    "LIMITED",
    "SA",
    "SAS",
    "SARL",
    "SRL",
    "SPA",
    "GMBH",
    "AG",
    "BV",
    "NV",
    "PLC",
    "JSC",
    "OJSC",
    "CJSC",
    "PJSC",
    "OOO",
    "ZAO",
    "OAO",
    "FZE",
    "FZC",
    "FZCO",
    "PTE",
    "PVT",
    "THE",
];

/// ASCII letters for the accented Latin letters names commonly carry.
fn fold(c: char) -> Option<&'static str> {
    Some(match c {
        'À'..='Å' | 'Ā' | 'Ă' | 'Ą' => "A",
        'Æ' => "AE",
        'Ç' | 'Ć' | 'Ĉ' | 'Ċ' | 'Č' => "C",
        'Ð' | 'Ď' | 'Đ' => "D",
        'È'..='Ë' | 'Ē' | 'Ĕ' | 'Ė' | 'Ę' | 'Ě' => "E",
        'Ĝ' | 'Ğ' | 'Ġ' | 'Ģ' => "G",
        'Ĥ' | 'Ħ' => "H",
        'Ì'..='Ï' | 'Ĩ' | 'Ī' | 'Ĭ' | 'Į' | 'İ' => "I",
        'Ĳ' => "IJ",
        'Ĵ' => "J",
        'Ķ' => "K",
        'Ĺ' | 'Ļ' | 'Ľ' | 'Ŀ' | 'Ł' => "L",
        'Ñ' | 'Ń' | 'Ņ' | 'Ň' | 'Ŋ' => "N",
        'Ò'..='Ö' | 'Ø' | 'Ō' | 'Ŏ' | 'Ő' => "O",
        'Œ' => "OE",
        'Ŕ' | 'Ŗ' | 'Ř' => "R",
        'Ś' | 'Ŝ' | 'Ş' | 'Š' | 'Ș' => "S",
        'ẞ' => "SS",
        'Ţ' | 'Ť' | 'Ŧ' | 'Ț' => "T",
        'Þ' => "TH",
        'Ù'..='Ü' | 'Ũ' | 'Ū' | 'Ŭ' | 'Ů' | 'Ű' | 'Ų' => "U",
        'Ŵ' => "W",
        'Ý' | 'Ŷ' | 'Ÿ' => "Y",
        'Ź' | 'Ż' | 'Ž' => "Z",
        _ => return None,
    })
}

/// Uppercase, accents folded, periods and apostrophes dropped ("J." → "J",
/// "O'NEIL" → "ONEIL"), every other non-alphanumeric a separator; the words.
fn words(raw: &str) -> Vec<String> {
    let mut text = String::with_capacity(raw.len());
    for c in raw.chars().flat_map(char::to_uppercase) {
        match c {
            'A'..='Z' | '0'..='9' => text.push(c),
            '.' | '\'' | '\u{2019}' | '`' | '\u{b4}' => {}
            _ => match fold(c) {
                Some(f) => text.push_str(f),
                None if c.is_alphanumeric() => text.push(c),
                None => text.push(' '),
            },
        }
    }
    text.split_whitespace().map(str::to_owned).collect()
}

/// The tokens of a name as screened: for people "LAST, First Middle" becomes
/// FIRST MIDDLE LAST; for companies the company-form words are left out (unless
/// nothing else is left).
pub fn name_tokens(raw: &str, subject: Subject) -> Vec<String> {
    match subject {
        Subject::Person => match raw.split_once(',') {
            Some((last, given)) => {
                let mut tokens = words(given);
                tokens.extend(words(last));
                tokens
            }
            None => words(raw),
        },
        Subject::Company => {
            let all = words(raw);
            let kept: Vec<String> = all
                .iter()
                .filter(|w| !COMPANY_SUFFIXES.contains(&w.as_str()))
                .cloned()
                .collect();
            if kept.is_empty() { all } else { kept }
        }
    }
}

// ---------------------------------------------------------------------------------
// Matching
// ---------------------------------------------------------------------------------

/// One entry a screened name may be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SanctionsHit {
    /// The entry's `ent_num`.
    pub entry_id: i64,
    /// The name (primary or alias) that matched, as written in the list.
    pub matched_name: String,
    /// The entry's primary name.
    pub list_name: String,
    /// 0–1; 1 is the same name after normalisation.
    pub score: f64,
    pub program: String,
    pub is_alias: bool,
}

const BUCKETS: usize = 38;

/// Character counts of a normalised string: A–Z, 0–9, space, anything else.
fn histogram(s: &str) -> [u16; BUCKETS] {
    let mut h = [0u16; BUCKETS];
    for c in s.chars() {
        let b = match c {
            'A'..='Z' => c as usize - 'A' as usize,
            '0'..='9' => 26 + (c as usize - '0' as usize),
            ' ' => 36,
            _ => 37,
        };
        h[b] = h[b].saturating_add(1);
    }
    h
}

/// Bit of the space in [`char_set`].
const SPACE: u64 = 1 << 37;

/// Which characters a string holds: A–Z, 0–9, one bit for all others, the space.
fn char_set(s: &str) -> u64 {
    s.chars().fold(0, |m, c| {
        m | match c {
            'A'..='Z' => 1 << (c as u32 - 'A' as u32),
            '0'..='9' => 1 << (26 + c as u32 - '0' as u32),
            ' ' => SPACE,
            _ => 1 << 36,
        }
    })
}

/// What the cheapest bounds know of a string: its length in characters, its first
/// character and its character set.
#[derive(Clone, Copy)]
struct Shape {
    chars: u64,
    len: u32,
    first: char,
}

impl Shape {
    fn of(s: &str) -> Shape {
        Shape {
            chars: char_set(s),
            len: s.chars().count() as u32,
            first: s.chars().next().unwrap_or(' '),
        }
    }
}

/// At most this many characters of `a` can be matched in `b`: each character `a` has
/// and `b` lacks is at least one unmatched character.
fn matchable(a: Shape, b: Shape) -> u32 {
    a.len.saturating_sub((a.chars & !b.chars).count_ones())
}

/// Two words compared: Jaro–Winkler, except that an initial matches any word it begins.
fn token_similarity(a: &str, b: &str) -> f64 {
    if a == b {
        return 1.0;
    }
    let single = |s: &str| s.chars().nth(1).is_none();
    if single(a) || single(b) {
        return if a.chars().next() == b.chars().next() {
            0.9
        } else {
            0.0
        };
    }
    strsim::jaro_winkler(a, b)
}

/// Jaro–Winkler as `strsim` computes it, from an upper bound `m` of the matching
/// characters, no transpositions and the longest possible common prefix: an upper bound.
fn jaro_winkler_from(m: u32, a_len: u32, b_len: u32, prefix: usize) -> f64 {
    if m == 0 || a_len == 0 || b_len == 0 {
        return 0.0;
    }
    let m = f64::from(m);
    let jaro = ((m / f64::from(a_len) + m / f64::from(b_len) + 1.0) / 3.0).min(1.0);
    if jaro <= 0.7 {
        jaro
    } else {
        jaro + 0.1 * prefix.min(4) as f64 * (1.0 - jaro)
    }
}

/// An upper bound of `strsim::jaro_winkler(a, b)` from character counts and the common
/// prefix: matched characters are at most the common multiset, transpositions at least 0.
fn jaro_winkler_bound(
    a: &str,
    a_len: u32,
    a_hist: &[u16; BUCKETS],
    b: &str,
    b_len: u32,
    b_hist: &[u16; BUCKETS],
) -> f64 {
    let common: u32 = a_hist
        .iter()
        .zip(b_hist)
        .map(|(x, y)| u32::from((*x).min(*y)))
        .sum();
    let prefix = a
        .chars()
        .zip(b.chars())
        .take(4)
        .take_while(|(x, y)| x == y)
        .count();
    jaro_winkler_from(common, a_len, b_len, prefix)
}

/// A cruder, cheaper upper bound of `strsim::jaro_winkler` from lengths and character
/// sets only.
fn jaro_winkler_quick_bound(a: Shape, b: Shape) -> f64 {
    let prefix = if a.first == b.first { 4 } else { 0 };
    jaro_winkler_from(matchable(a, b).min(matchable(b, a)), a.len, b.len, prefix)
}

/// For one query word and a threshold: how many matchable characters a vocabulary word
/// of each length needs for [`jaro_winkler_quick_bound`] to reach the threshold, so the
/// scan of the vocabulary compares integers. Index: length; `[different, same]` first
/// character. `u32::MAX`: impossible.
struct Needs {
    min_matches: Vec<[u32; 2]>,
}

impl Needs {
    fn new(word: Shape, threshold: f64, max_len: u32) -> Needs {
        let min_matches = (0..=max_len)
            .map(|len| {
                [0, 4].map(|prefix| {
                    // The bound grows with m: the first m that reaches the threshold.
                    let most = word.len.min(len);
                    let (mut lo, mut hi) = (0, most + 1);
                    while lo < hi {
                        let mid = (lo + hi) / 2;
                        if jaro_winkler_from(mid, word.len, len, prefix) >= threshold {
                            hi = mid;
                        } else {
                            lo = mid + 1;
                        }
                    }
                    if lo > most { u32::MAX } else { lo }
                })
            })
            .collect();
        Needs { min_matches }
    }

    /// Whether [`jaro_winkler_quick_bound`]`(word, other)` reaches the threshold.
    fn allows(&self, word: Shape, other: Shape) -> bool {
        let Some(need) = self.min_matches.get(other.len as usize) else {
            return true;
        };
        let need = need[usize::from(word.first == other.first)];
        need != u32::MAX && matchable(word, other).min(matchable(other, word)) >= need
    }
}

/// A sorted name's shape, and its shape without the spaces (for the overlap weight).
#[derive(Clone, Copy)]
struct NameShape {
    whole: Shape,
    letters: Shape,
}

impl NameShape {
    fn of(sorted: &str) -> NameShape {
        let whole = Shape::of(sorted);
        NameShape {
            whole,
            letters: Shape {
                chars: whole.chars & !SPACE,
                len: whole.len - sorted.matches(' ').count() as u32,
                first: whole.first,
            },
        }
    }
}

/// An upper bound of the weighted sorted-name comparison of [`score_name`], from lengths
/// and character sets only.
fn sorted_quick_bound(q: NameShape, n: NameShape) -> f64 {
    let total = q.letters.len + n.letters.len;
    if total == 0 {
        return 0.0;
    }
    let common = matchable(q.letters, n.letters).min(matchable(n.letters, q.letters));
    let overlap = 2.0 * f64::from(common) / f64::from(total);
    overlap * jaro_winkler_quick_bound(q.whole, n.whole)
}

/// How much of their letters two names share (Dice coefficient over the character
/// counts, spaces left out): 1 when one is an anagram of the other.
fn letters_overlap(a: &[u16; BUCKETS], b: &[u16; BUCKETS]) -> f64 {
    let (mut common, mut total) = (0u32, 0u32);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        if i != 36 {
            common += u32::from((*x).min(*y));
            total += u32::from(*x) + u32::from(*y);
        }
    }
    if total == 0 {
        0.0
    } else {
        2.0 * f64::from(common) / f64::from(total)
    }
}

/// A normalised word with its character counts.
struct Word {
    text: Box<str>,
    hist: [u16; BUCKETS],
}

impl Word {
    fn new(text: &str) -> Word {
        Word {
            hist: histogram(text),
            text: text.into(),
        }
    }
}

/// A name prepared for matching.
struct IndexedName {
    entry: u32,
    is_alias: bool,
    /// As written in the list.
    name: String,
    /// Normalised tokens, sorted, joined by single spaces.
    sorted: Box<str>,
    hist: [u16; BUCKETS],
    /// Distinct tokens, as ids into the index's vocabulary.
    tokens: Box<[u32]>,
}

/// The names of one kind of subject (people, or companies) with their vocabulary and,
/// for each word, the names that use it.
#[derive(Default)]
struct NameIndex {
    names: Vec<IndexedName>,
    /// Beside `names`, compact for the scan.
    name_shapes: Vec<NameShape>,
    vocabulary: Vec<Word>,
    /// Beside `vocabulary`, compact for the scan.
    word_shapes: Vec<Shape>,
    postings: Vec<Vec<u32>>,
    /// The longest word and sorted name, in characters.
    max_word_len: u32,
    max_name_len: u32,
    ids: HashMap<Box<str>, u32>,
}

impl NameIndex {
    fn add(&mut self, entry: u32, is_alias: bool, name: &str, subject: Subject) {
        let mut tokens = name_tokens(name, subject);
        if tokens.is_empty() {
            return;
        }
        tokens.sort();
        let sorted = tokens.join(" ");
        tokens.dedup();
        let at = self.names.len() as u32;
        let token_ids: Box<[u32]> = tokens
            .iter()
            .map(|t| {
                let id = match self.ids.get(t.as_str()) {
                    Some(&id) => id,
                    None => {
                        let id = self.vocabulary.len() as u32;
                        self.vocabulary.push(Word::new(t));
                        let shape = Shape::of(t);
                        self.max_word_len = self.max_word_len.max(shape.len);
                        self.word_shapes.push(shape);
                        self.postings.push(Vec::new());
                        self.ids.insert(t.as_str().into(), id);
                        id
                    }
                };
                self.postings[id as usize].push(at);
                id
            })
            .collect();
        let shape = NameShape::of(&sorted);
        self.max_name_len = self.max_name_len.max(shape.whole.len);
        self.name_shapes.push(shape);
        self.names.push(IndexedName {
            entry,
            is_alias,
            name: name.to_owned(),
            hist: histogram(&sorted),
            sorted: sorted.into(),
            tokens: token_ids,
        });
    }
}

struct ScreenEntry {
    ent_num: i64,
    name: String,
    program: String,
}

/// Characters and distinct words of a query that are screened; real names are far
/// shorter.
const MAX_QUERY_CHARS: usize = 1_000;
const MAX_QUERY_WORDS: usize = 16;

/// A query prepared for matching.
struct Query {
    words: Vec<Word>,
    word_shapes: Vec<Shape>,
    sorted: String,
    shape: NameShape,
    hist: [u16; BUCKETS],
}

impl Query {
    fn new(name: &str, subject: Subject) -> Option<Query> {
        // A bound on work for absurd inputs; real names are far shorter.
        let name: String = name.chars().take(MAX_QUERY_CHARS).collect();
        let mut tokens = name_tokens(&name, subject);
        if tokens.is_empty() {
            return None;
        }
        tokens.sort();
        let sorted = tokens.join(" ");
        tokens.dedup();
        tokens.truncate(MAX_QUERY_WORDS);
        Some(Query {
            words: tokens.iter().map(|t| Word::new(t)).collect(),
            word_shapes: tokens.iter().map(|t| Shape::of(t)).collect(),
            shape: NameShape::of(&sorted),
            hist: histogram(&sorted),
            sorted,
        })
    }
}

/// The token-set score of one name from `memo`, the similarity of vocabulary word `t`
/// to query word `i` at `t * words + i`; a NaN slot is filled with `fill(i, t)`. With
/// upper bounds of the similarities, an upper bound of the score.
fn token_set_score(
    query: &Query,
    n: &IndexedName,
    memo: &mut [f32],
    query_best: &mut [f64],
    fill: impl Fn(usize, usize) -> f64,
) -> f64 {
    let nq = query.words.len();
    query_best.iter_mut().for_each(|b| *b = 0.0);
    let mut name_sum = 0.0;
    for &t in n.tokens.iter() {
        let t = t as usize;
        let row = &mut memo[t * nq..(t + 1) * nq];
        let mut best = 0f64;
        for (i, slot) in row.iter_mut().enumerate() {
            if slot.is_nan() {
                *slot = fill(i, t) as f32;
            }
            let s = f64::from(*slot);
            best = best.max(s);
            query_best[i] = query_best[i].max(s);
        }
        name_sum += best;
    }
    (query_best.iter().sum::<f64>() + name_sum) / (nq + n.tokens.len()) as f64
}

/// An upper bound of the weighted sorted-name comparison, from character counts.
fn sorted_bound(query: &Query, index: &NameIndex, at: usize) -> f64 {
    let n = &index.names[at];
    letters_overlap(&query.hist, &n.hist)
        * jaro_winkler_bound(
            &query.sorted,
            query.shape.whole.len,
            &query.hist,
            &n.sorted,
            index.name_shapes[at].whole.len,
            &n.hist,
        )
}

/// The score of one name (see [`SanctionsScreen::screen`]); `memo` as for
/// [`token_set_score`], exact values only. The sorted-name comparison is skipped when
/// it cannot reach `threshold`.
fn score_name(
    query: &Query,
    index: &NameIndex,
    at: usize,
    memo: &mut [f32],
    query_best: &mut [f64],
    threshold: f64,
) -> f64 {
    let n = &index.names[at];
    let token_set = token_set_score(query, n, memo, query_best, |i, t| {
        token_similarity(&query.words[i].text, &index.vocabulary[t].text)
    });
    let bound = sorted_bound(query, index, at);
    if bound >= threshold && bound > token_set {
        let overlap = letters_overlap(&query.hist, &n.hist);
        token_set.max(overlap * strsim::jaro_winkler(&query.sorted, &n.sorted))
    } else {
        token_set
    }
}

/// An SDN list prepared for screening: every name normalised once, people and
/// companies apart, each word indexed. Immutable; [`SanctionsList`] swaps whole screens.
pub struct SanctionsScreen {
    version: Option<i64>,
    loaded_at: Option<DateTime<Utc>>,
    entries: Vec<ScreenEntry>,
    persons: NameIndex,
    companies: NameIndex,
}

impl fmt::Debug for SanctionsScreen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SanctionsScreen")
            .field("version", &self.version)
            .field("loaded_at", &self.loaded_at)
            .field("entries", &self.entries.len())
            .field("names", &self.name_count())
            .finish()
    }
}

impl SanctionsScreen {
    /// A screen with no entries: every name is clear, [`SanctionsScreen::version`] is None.
    pub fn empty() -> SanctionsScreen {
        SanctionsScreen {
            version: None,
            loaded_at: None,
            entries: Vec::new(),
            persons: NameIndex::default(),
            companies: NameIndex::default(),
        }
    }

    /// Prepares every name (primary and aliases) of the list.
    pub fn new(list: &SdnList) -> SanctionsScreen {
        let mut screen = SanctionsScreen {
            version: list.stored.as_ref().map(|s| s.id),
            loaded_at: list.stored.as_ref().map(|s| s.loaded_at),
            entries: Vec::with_capacity(list.entries.len()),
            ..SanctionsScreen::empty()
        };
        for entry in &list.entries {
            let at = screen.entries.len() as u32;
            screen.entries.push(ScreenEntry {
                ent_num: entry.ent_num,
                name: entry.name.clone(),
                program: entry.program.clone(),
            });
            let subject = entry.kind.subject();
            let index = match subject {
                Subject::Person => &mut screen.persons,
                Subject::Company => &mut screen.companies,
            };
            index.add(at, false, &entry.name, subject);
            for alias in &entry.aliases {
                index.add(at, true, &alias.name, subject);
            }
        }
        // The look-up table is only needed while building.
        screen.persons.ids = HashMap::new();
        screen.companies.ids = HashMap::new();
        screen
    }

    /// The stored list's id, when built from a stored list.
    pub fn version(&self) -> Option<i64> {
        self.version
    }

    /// When the stored list was loaded.
    pub fn loaded_at(&self) -> Option<DateTime<Utc>> {
        self.loaded_at
    }

    /// Entries in the list.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Names (primary and aliases) screened against.
    pub fn name_count(&self) -> usize {
        self.persons.names.len() + self.companies.names.len()
    }

    /// The entries `name` may be, best first, at most [`MAX_HITS`], each scoring at
    /// least `threshold` (0–1). People are screened against individuals only,
    /// companies against entities, vessels and aircraft.
    ///
    /// A name's score is the larger of
    /// * the token-set score: each word of either name paired with its most similar
    ///   word of the other (Jaro–Winkler; an initial matches a word it begins), averaged
    ///   over all words of both, so a missing middle name costs a little and a shared
    ///   surname alone is not a match; and
    /// * Jaro–Winkler on the token-sorted names (which catches words run together or
    ///   split, "ABDULRAHMAN" / "ABDUL RAHMAN"), weighted by the share of letters the two
    ///   names have in common. Unweighted, Jaro's wide matching window and the Winkler
    ///   prefix bonus give 0.87–0.89 to any two short names sharing a first name
    ///   ("Ernesto Gonzalez" against "Ernesto J. Morales"): a false hit on every call.
    ///
    /// Prefilter: an average reaches the threshold only if one of its terms does, so a
    /// name is scored only if it has a word at least `threshold`-similar to a word of
    /// the query, or if an upper bound of its sorted-name comparison reaches the
    /// threshold. Similar words are found by scanning the vocabulary with upper bounds of
    /// Jaro–Winkler (lengths and character sets, then character counts), computing it
    /// only where a bound allows; the sorted-name bound uses the same two steps. Both are
    /// exact, with one exception: initials in the query ("J.") select no names by
    /// themselves unless the query is only initials (an initial is 0.9-similar to every
    /// word it begins, which would select half the list).
    pub fn screen(&self, name: &str, subject: Subject, threshold: f64) -> Vec<SanctionsHit> {
        let Some(query) = Query::new(name, subject) else {
            return Vec::new();
        };
        let threshold = if threshold.is_nan() {
            1.0
        } else {
            threshold.clamp(0.0, 1.0)
        };
        let index = match subject {
            Subject::Person => &self.persons,
            Subject::Company => &self.companies,
        };
        let nq = query.words.len();
        let needs: Vec<Needs> = query
            .word_shapes
            .iter()
            .map(|q| Needs::new(*q, threshold, index.max_word_len))
            .collect();
        // For each vocabulary word and query word: an upper bound of their similarity
        // (exact where it was computed), and the exact similarity; NaN until computed.
        let mut bounds = vec![f32::NAN; index.vocabulary.len() * nq];
        let mut exact = vec![f32::NAN; index.vocabulary.len() * nq];
        let only_initials = query.word_shapes.iter().all(|s| s.len == 1);
        let mut selected = vec![false; index.names.len()];
        let mut candidates: Vec<u32> = Vec::new();
        for (v, shape) in index.word_shapes.iter().enumerate() {
            let mut good = false;
            for (i, q) in query.word_shapes.iter().enumerate() {
                let slot = v * nq + i;
                if q.len == 1 || shape.len == 1 {
                    if q.first != shape.first {
                        bounds[slot] = 0.0;
                        exact[slot] = 0.0;
                        continue;
                    }
                } else if !needs[i].allows(*q, *shape) {
                    continue;
                } else {
                    let (qw, w) = (&query.words[i], &index.vocabulary[v]);
                    let bound =
                        jaro_winkler_bound(&qw.text, q.len, &qw.hist, &w.text, shape.len, &w.hist);
                    if bound < threshold {
                        bounds[slot] = bound as f32;
                        continue;
                    }
                }
                let s = token_similarity(&query.words[i].text, &index.vocabulary[v].text);
                bounds[slot] = s as f32;
                exact[slot] = s as f32;
                good |= s >= threshold && (q.len > 1 || only_initials);
            }
            if good {
                for &n in &index.postings[v] {
                    if !std::mem::replace(&mut selected[n as usize], true) {
                        candidates.push(n);
                    }
                }
            }
        }
        // Names whose sorted form alone may reach the threshold (words run together).
        // Both factors of the weighted comparison are at most 1, so each must reach it.
        let letters_needed = |total: u32| (threshold * f64::from(total) / 2.0 - 1e-9).ceil();
        let whole_needs = Needs::new(query.shape.whole, threshold, index.max_name_len);
        for (at, shape) in index.name_shapes.iter().enumerate() {
            if selected[at] {
                continue;
            }
            let (q, n) = (query.shape.letters, shape.letters);
            let common = matchable(q, n).min(matchable(n, q));
            if f64::from(common) < letters_needed(q.len + n.len)
                || !whole_needs.allows(query.shape.whole, shape.whole)
            {
                continue;
            }
            if sorted_quick_bound(query.shape, *shape) >= threshold
                && sorted_bound(&query, index, at) >= threshold
            {
                selected[at] = true;
                candidates.push(at as u32);
            }
        }

        let mut query_best = vec![0f64; nq];
        let mut found: Vec<(f64, u32)> = Vec::new();
        for at in candidates {
            let at_ = at as usize;
            // Cheap first: the token-set score from upper bounds.
            let upper = token_set_score(
                &query,
                &index.names[at_],
                &mut bounds,
                &mut query_best,
                |i, t| jaro_winkler_quick_bound(query.word_shapes[i], index.word_shapes[t]),
            );
            if upper < threshold && sorted_bound(&query, index, at_) < threshold {
                continue;
            }
            let score = score_name(&query, index, at_, &mut exact, &mut query_best, threshold);
            if score >= threshold {
                found.push((score, at));
            }
        }
        self.best_hits(index, found)
    }

    /// Hits from scored names: best first, one per entry, at most [`MAX_HITS`].
    fn best_hits(&self, index: &NameIndex, mut found: Vec<(f64, u32)>) -> Vec<SanctionsHit> {
        let names = &index.names;
        found.sort_by(|a, b| {
            b.0.total_cmp(&a.0)
                .then_with(|| {
                    names[a.1 as usize]
                        .is_alias
                        .cmp(&names[b.1 as usize].is_alias)
                })
                .then_with(|| a.1.cmp(&b.1))
        });
        let mut seen = HashSet::new();
        let mut hits = Vec::new();
        for (score, at) in found {
            let n = &names[at as usize];
            if !seen.insert(n.entry) {
                continue;
            }
            let entry = &self.entries[n.entry as usize];
            hits.push(SanctionsHit {
                entry_id: entry.ent_num,
                matched_name: n.name.clone(),
                list_name: entry.name.clone(),
                score,
                program: entry.program.clone(),
                is_alias: n.is_alias,
            });
            if hits.len() == MAX_HITS {
                break;
            }
        }
        hits
    }
}

// ---------------------------------------------------------------------------------
// The process-wide list
// ---------------------------------------------------------------------------------

/// The sanctions list of this process: the active stored list, prepared for screening.
/// Cheap to read from any task; [`SanctionsList::refresh_from`] swaps in a new list
/// whole, so a screen never sees half of one.
pub struct SanctionsList {
    current: RwLock<Arc<SanctionsScreen>>,
    /// Serialises refreshes, so concurrent callers do not load the same list twice.
    refreshing: tokio::sync::Mutex<()>,
}

impl fmt::Debug for SanctionsList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SanctionsList")
            .field(&self.current())
            .finish()
    }
}

impl Default for SanctionsList {
    fn default() -> Self {
        SanctionsList::empty()
    }
}

impl SanctionsList {
    /// No list yet: every screen is clear and [`SanctionsList::version`] is None.
    pub fn empty() -> Self {
        SanctionsList::from_screen(SanctionsScreen::empty())
    }

    /// Holds a prepared screen (tests, tools).
    pub fn from_screen(screen: SanctionsScreen) -> Self {
        SanctionsList {
            current: RwLock::new(Arc::new(screen)),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// The screen in use now.
    pub fn current(&self) -> Arc<SanctionsScreen> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn swap(&self, screen: SanctionsScreen) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(screen);
    }

    /// Loads the active stored list when its version differs from the one held.
    /// Returns whether the list changed. With no active stored list the held list is
    /// kept (the fleet never loses a list it had).
    pub async fn refresh_from(&self, store: &Store) -> Result<bool, StoreError> {
        let _one_at_a_time = self.refreshing.lock().await;
        let active = store.active_sanctions_version().await?;
        if active.is_none() || active == self.version() {
            return Ok(false);
        }
        let Some(list) = store.load_active_sanctions().await? else {
            return Ok(false);
        };
        if list.stored.as_ref().map(|s| s.id) == self.version() {
            return Ok(false);
        }
        // Preparing ~30,000 names takes tens of milliseconds: off the async workers.
        let screen = match tokio::task::spawn_blocking(move || SanctionsScreen::new(&list)).await {
            Ok(screen) => screen,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        tracing::info!(
            version = screen.version(),
            entries = screen.len(),
            "sanctions list loaded"
        );
        self.swap(screen);
        Ok(true)
    }

    /// See [`SanctionsScreen::screen`].
    pub fn screen(&self, name: &str, subject: Subject, threshold: f64) -> Vec<SanctionsHit> {
        self.current().screen(name, subject, threshold)
    }

    /// The id of the stored list in use; None before the first list is loaded.
    pub fn version(&self) -> Option<i64> {
        self.current().version()
    }

    /// Screens `name` and says where the answer came from: upstream "sanctions",
    /// fetched when the list was loaded, never cached. With no list loaded the answer
    /// has no hits and is marked stale (fetched at the epoch): a check must treat it as
    /// unavailable, never as clear.
    pub fn answer(
        &self,
        name: &str,
        subject: Subject,
        threshold: f64,
    ) -> Fetched<Vec<SanctionsHit>> {
        let screen = self.current();
        Fetched {
            value: screen.screen(name, subject, threshold),
            source: DataSource {
                upstream: UPSTREAM.to_owned(),
                fetched_at: screen.loaded_at().unwrap_or(DateTime::UNIX_EPOCH),
                cached: false,
                stale: screen.version().is_none(),
                cache: crate::domain::CacheOutcome::Local,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(sdn: &str) -> SdnList {
        parse_sdn_files(sdn.as_bytes(), None, None).expect("parses")
    }

    const ROW_36: &str =
        "36,\"AEROCARIBBEAN AIRLINES\",-0- ,\"CUBA\",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ";

    #[test]
    fn dash_zero_is_empty() {
        let list = parse(&format!("{ROW_36}\r\n"));
        let e = &list.entries[0];
        assert_eq!(e.ent_num, 36);
        assert_eq!(e.name, "AEROCARIBBEAN AIRLINES");
        assert_eq!(e.kind, SdnKind::Entity, "-0- type is an entity");
        assert_eq!(e.program, "CUBA");
        assert_eq!(e.title, "");
        assert_eq!(e.remarks, "");
        assert_eq!(e.vessel, None);
        assert_eq!(list.skipped_rows, 0);
    }

    #[test]
    fn quoted_fields_keep_commas_and_quotes() {
        let list = parse(concat!(
            "173,\"ANGLO-CARIBBEAN CO., LTD.\",-0- ,\"CUBA\",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,\"a.k.a. 'AC', Havana; \"\"quoted\"\".\"\r\n",
            "2674,\"ABBAS, Abu\",\"individual\",\"SDGT] [IRGC\",\"Director, PLF\",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,\"DOB 10 Dec 1948.\"\r\n",
        ));
        assert_eq!(list.entries.len(), 2);
        assert_eq!(list.entries[0].name, "ANGLO-CARIBBEAN CO., LTD.");
        assert_eq!(list.entries[0].remarks, "a.k.a. 'AC', Havana; \"quoted\".");
        assert_eq!(list.entries[1].name, "ABBAS, Abu");
        assert_eq!(list.entries[1].kind, SdnKind::Individual);
        assert_eq!(list.entries[1].program, "SDGT; IRGC");
        assert_eq!(list.entries[1].title, "Director, PLF");
    }

    #[test]
    fn trailing_control_z_line_is_ignored() {
        let list = parse(&format!("{ROW_36}\r\n\x1a"));
        assert_eq!(list.entries.len(), 1);
        assert_eq!(list.skipped_rows, 0);
        let list = parse(&format!("{ROW_36}\r\n\x1a\r\n\r\n"));
        assert_eq!(list.entries.len(), 1);
        assert_eq!(list.skipped_rows, 0);
    }

    #[test]
    fn malformed_rows_are_skipped_and_counted() {
        let list = parse(&format!(
            "{ROW_36}\nabc,\"NOT A NUMBER\",-0- ,\"X\"\n37,\"SHORT\"\n38,\"\",-0- ,\"X\"\n36,\"DUPLICATE\",-0- ,\"X\"\n39,\"ODD TYPE\",\"spaceship\",\"X\"\n"
        ));
        assert_eq!(list.entries.len(), 2, "36 and 39");
        assert_eq!(
            list.entries[1].kind,
            SdnKind::Entity,
            "unknown types are kept"
        );
        assert_eq!(list.skipped_rows, 4);
        assert!(list.warnings.iter().any(|w| w.contains("sdn.csv line 2")));
    }

    #[test]
    fn a_file_without_entries_is_an_error() {
        for bad in [
            "",
            "\x1a",
            "ent_num,SDN_Name\nfoo,bar\n",
            "<html>nope</html>",
        ] {
            let err = parse_sdn_files(bad.as_bytes(), None, None).unwrap_err();
            assert!(matches!(err, SdnError::Empty { .. }), "{bad:?}: {err}");
            assert!(err.to_string().contains("sdn.csv"), "{err}");
        }
    }

    #[test]
    fn aliases_and_addresses_attach_to_their_entries() {
        let list = parse_sdn_files(
            format!("{ROW_36}\r\n").as_bytes(),
            Some(b"36,12,\"aka\",\"AERO-CARIBBEAN\",-0- \r\n99,13,\"aka\",\"ORPHAN\",-0- \r\n36,12,\"aka\",\"AGAIN\",-0- \r\n\x1a"),
            Some(b"36,25,-0- ,\"Havana\",\"Cuba\",-0- \r\n36,x,-0- ,\"Havana\",\"Cuba\",-0- \r\n"),
        )
        .unwrap();
        let e = &list.entries[0];
        assert_eq!(e.aliases.len(), 1);
        assert_eq!(e.aliases[0].alt_type, "aka");
        assert_eq!(e.aliases[0].name, "AERO-CARIBBEAN");
        assert_eq!(e.addresses.len(), 1);
        assert_eq!(e.addresses[0].address, "");
        assert_eq!(e.addresses[0].city, "Havana");
        assert_eq!(e.addresses[0].country, "Cuba");
        assert_eq!(list.skipped_rows, 3);
    }

    #[test]
    fn latin1_and_nul_bytes_are_read() {
        let sdn = b"40,\"PE\xd1A, Jos\xe9\",\"individual\",\"SDNTK\",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,\"a\x00b\"\n";
        let list = parse_sdn_files(sdn, None, None).unwrap();
        assert_eq!(list.entries[0].name, "PEÑA, José");
        assert_eq!(list.entries[0].remarks, "a b");
    }

    #[test]
    fn vessels_keep_their_columns() {
        let list = parse(
            "15036,\"OCEAN HARMONY\",\"vessel\",\"IRAN\",-0- ,\"9HA1234\",\"Crude Oil Tanker\",-0- ,\"81,479\",\"Panama\",\"SEA LINE LTD\",\"IMO 9187654.\"\n",
        );
        let v = list.entries[0].vessel.as_ref().unwrap();
        assert_eq!(v.call_sign, "9HA1234");
        assert_eq!(v.grt, "81,479");
        assert_eq!(v.flag, "Panama");
        assert_eq!(list.entries[0].kind, SdnKind::Vessel);
    }

    #[test]
    fn the_hash_depends_on_every_file() {
        let a = files_sha256(b"x", None, None);
        assert_eq!(a.len(), 64);
        assert_ne!(a, files_sha256(b"x", Some(b""), None));
        assert_ne!(a, files_sha256(b"x", None, Some(b"y")));
        assert_eq!(a, files_sha256(b"x", None, None));
    }

    #[test]
    fn names_are_normalised() {
        assert_eq!(
            name_tokens("MORALES PEÑA, Ernesto J.", Subject::Person),
            ["ERNESTO", "J", "MORALES", "PENA"]
        );
        assert_eq!(
            name_tokens("Golden Crescent Trading, L.L.C.", Subject::Company),
            ["GOLDEN", "CRESCENT", "TRADING"]
        );
        assert_eq!(
            name_tokens("AL-ZAWAHIRI, Ayman", Subject::Person),
            ["AYMAN", "AL", "ZAWAHIRI"]
        );
        assert_eq!(
            name_tokens("O'Neil  Müller", Subject::Person),
            ["ONEIL", "MULLER"]
        );
        assert_eq!(name_tokens("CO., LTD.", Subject::Company), ["CO", "LTD"]);
        assert!(name_tokens(" ,.- ", Subject::Person).is_empty());
    }

    #[test]
    fn the_bound_is_never_below_the_score() {
        let pairs = [
            ("ERNESTO J MORALES", "ERNESTO JAVIER MORALES"),
            ("ABC", "CBA"),
            ("MARTHA", "MARHTA"),
            ("A", "A"),
            ("DIXON", "DICKSONX"),
            ("X", "ZZZZ"),
            ("AL ZAWAHIRI AYMAN", "AYMAN ZAWAHIRI"),
            ("RAHMAN", "ARHMAN"),
            ("AAAAB", "AB"),
            ("MORALES", "MORALEZ"),
        ];
        for (a, b) in pairs {
            for (a, b) in [(a, b), (b, a)] {
                let (ha, hb) = (histogram(a), histogram(b));
                let (la, lb) = (a.chars().count() as u32, b.chars().count() as u32);
                let bound = jaro_winkler_bound(a, la, &ha, b, lb, &hb);
                let jw = strsim::jaro_winkler(a, b);
                assert!(bound + 1e-12 >= jw, "{a} / {b}: bound {bound} < {jw}");
                let quick = jaro_winkler_quick_bound(Shape::of(a), Shape::of(b));
                assert!(quick + 1e-12 >= bound, "{a} / {b}: quick {quick} < {bound}");
                let weighted = letters_overlap(&ha, &hb) * bound;
                let quick = sorted_quick_bound(NameShape::of(a), NameShape::of(b));
                assert!(quick + 1e-12 >= weighted, "{a} / {b}: {quick} < {weighted}");
            }
        }
    }

    #[test]
    fn needs_agree_with_the_quick_bound() {
        let words = [
            "A",
            "AL",
            "MORALES",
            "ERNESTO",
            "ZAWAHIRI",
            "QQQQQQQQQQQQ",
            "ABDULRAHMAN",
        ];
        for threshold in [0.0, 0.5, 0.75, 0.85, 0.92, 1.0] {
            for a in words {
                let needs = Needs::new(Shape::of(a), threshold, 12);
                for b in words {
                    let (sa, sb) = (Shape::of(a), Shape::of(b));
                    assert_eq!(
                        needs.allows(sa, sb),
                        jaro_winkler_quick_bound(sa, sb) >= threshold,
                        "{a} / {b} at {threshold}"
                    );
                }
            }
        }
    }

    fn entry(ent_num: i64, name: &str, kind: SdnKind, aliases: &[&str]) -> SdnEntry {
        SdnEntry {
            ent_num,
            name: name.to_owned(),
            kind,
            program: "SDGT".to_owned(),
            title: String::new(),
            vessel: None,
            remarks: String::new(),
            aliases: aliases
                .iter()
                .enumerate()
                .map(|(i, a)| SdnAlias {
                    alt_num: ent_num * 100 + i as i64,
                    alt_type: "aka".to_owned(),
                    name: (*a).to_owned(),
                    remarks: String::new(),
                })
                .collect(),
            addresses: Vec::new(),
        }
    }

    fn small_screen() -> SanctionsScreen {
        SanctionsScreen::new(&SdnList {
            entries: vec![
                entry(
                    1,
                    "MORALES, Ernesto Javier",
                    SdnKind::Individual,
                    &["EL GUERO"],
                ),
                entry(2, "GOLDEN CRESCENT TRADING LLC", SdnKind::Entity, &[]),
                entry(3, "MORALES", SdnKind::Entity, &[]),
                entry(4, "SEA FALCON", SdnKind::Vessel, &[]),
            ],
            ..SdnList::default()
        })
    }

    #[test]
    fn people_match_individuals_only() {
        let s = small_screen();
        let hits = s.screen("Ernesto J. Morales", Subject::Person, 0.8);
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!(hits[0].entry_id, 1);
        assert!(hits[0].score > 0.9, "{hits:?}");
        assert!(
            s.screen("Morales", Subject::Company, 0.8)
                .iter()
                .all(|h| h.entry_id == 3)
        );
        assert_eq!(s.screen("Sea Falcon", Subject::Company, 0.9)[0].entry_id, 4);
        assert!(
            s.screen("Sea Falcon", Subject::Person, 0.0)
                .iter()
                .all(|h| h.entry_id != 4),
            "a vessel is not a person"
        );
        let alias = s.screen("El Guero", Subject::Person, 0.9);
        assert!(alias[0].is_alias);
        assert_eq!(alias[0].matched_name, "EL GUERO");
        assert_eq!(alias[0].list_name, "MORALES, Ernesto Javier");
    }

    #[test]
    fn no_more_than_five_hits_best_first() {
        let entries: Vec<SdnEntry> = (1..=9)
            .map(|i| entry(i, &format!("ACME TRADING {i}"), SdnKind::Entity, &[]))
            .collect();
        let s = SanctionsScreen::new(&SdnList {
            entries,
            ..SdnList::default()
        });
        let hits = s.screen("Acme Trading 3", Subject::Company, 0.5);
        assert_eq!(hits.len(), MAX_HITS);
        assert_eq!(hits[0].entry_id, 3);
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
        assert!(s.screen("", Subject::Company, 0.0).is_empty());
        // Absurd input is cut short, not a panic or a long wait.
        let long = "ACME TRADING 3 ".repeat(20_000);
        assert_eq!(s.screen(&long, Subject::Company, 0.9)[0].entry_id, 3);
        let one_word = "Q".repeat(100_000);
        assert!(s.screen(&one_word, Subject::Company, 0.5).is_empty());
    }

    #[test]
    fn the_empty_list_answers_stale_and_clear() {
        let list = SanctionsList::empty();
        assert_eq!(list.version(), None);
        let answer = list.answer("Ernesto Morales", Subject::Person, 0.8);
        assert!(answer.value.is_empty());
        assert_eq!(answer.source.upstream, "sanctions");
        assert!(answer.source.stale);
        assert!(!answer.source.cached);
    }

    /// A deterministic synthetic list shaped like the real one: 20,000 entries, half
    /// people with 2–4 names, half companies with 2–5 words, a third with an alias.
    fn synthetic(n: usize) -> SdnList {
        const SYL: &[&str] = &[
            "AL", "MO", "HAM", "MAD", "RA", "SHI", "KIM", "JONG", "PE", "DRO", "SAN", "CHEZ",
            "IVA", "NOV", "SER", "GEI", "HU", "SEIN", "FA", "TI", "MA", "LO", "PEZ", "GAR", "CIA",
            "ZA", "DEH", "KA", "RIM", "BO", "RIS", "YA", "SIN", "TA", "REK", "NU",
        ];
        const WORDS: &[&str] = &[
            "TRADING",
            "GENERAL",
            "INTERNATIONAL",
            "SHIPPING",
            "BANK",
            "INDUSTRIES",
            "GROUP",
            "HOLDING",
            "PETROLEUM",
            "EXPORT",
            "IMPORT",
            "MARINE",
            "TECHNOLOGY",
            "INVESTMENT",
            "DEVELOPMENT",
            "ENERGY",
            "LOGISTICS",
            "METALS",
            "CHEMICAL",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |m: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % m as u64) as usize
        };
        let word = |next: &mut dyn FnMut(usize) -> usize| {
            let parts = 2 + next(2);
            (0..parts).map(|_| SYL[next(SYL.len())]).collect::<String>()
        };
        let entries = (0..n)
            .map(|i| {
                let person = i % 2 == 0;
                let name = if person {
                    let given: Vec<String> = (0..1 + next(3)).map(|_| word(&mut next)).collect();
                    format!("{}, {}", word(&mut next), given.join(" "))
                } else {
                    let mut w: Vec<String> = (0..1 + next(2)).map(|_| word(&mut next)).collect();
                    for _ in 0..1 + next(3) {
                        w.push(WORDS[next(WORDS.len())].to_owned());
                    }
                    w.push(["LLC", "LTD", "CO", "JSC", "SA"][next(5)].to_owned());
                    w.join(" ")
                };
                let aliases: Vec<String> = if next(3) == 0 {
                    vec![format!("{} {}", word(&mut next), word(&mut next))]
                } else {
                    Vec::new()
                };
                let alias_refs: Vec<&str> = aliases.iter().map(String::as_str).collect();
                entry(
                    i as i64 + 1,
                    &name,
                    if person {
                        SdnKind::Individual
                    } else {
                        SdnKind::Entity
                    },
                    &alias_refs,
                )
            })
            .collect();
        SdnList {
            entries,
            ..SdnList::default()
        }
    }

    /// The prefilter only skips work: scoring every name gives the same hits.
    #[test]
    fn the_prefilter_loses_no_hit() {
        let mut list = synthetic(3_000);
        list.entries.push(entry(
            99_999,
            "MORALES, Ernesto Javier",
            SdnKind::Individual,
            &[],
        ));
        let screen = SanctionsScreen::new(&list);
        // Queries: names of the list, lightly changed, and invented ones.
        let mut queries: Vec<(String, Subject)> = vec![
            ("Ernesto J. Morales".into(), Subject::Person),
            ("Ernest Moralez".into(), Subject::Person),
            ("E J M".into(), Subject::Person),
        ];
        for e in list.entries.iter().step_by(37) {
            let subject = e.kind.subject();
            let mut q = e.name.replace(',', "");
            if q.len() > 6 {
                q.remove(q.len() / 2);
            }
            queries.push((q, subject));
            let words: Vec<&str> = e.name.split_whitespace().collect();
            queries.push((words[..words.len().min(2)].join(" "), subject));
        }
        let mut compared = 0;
        for (q, subject) in &queries {
            for threshold in [0.75, 0.85, 0.92] {
                let fast = screen.screen(q, *subject, threshold);
                let query = Query::new(q, *subject).unwrap();
                let index = match subject {
                    Subject::Person => &screen.persons,
                    Subject::Company => &screen.companies,
                };
                let nq = query.words.len();
                let mut memo = vec![f32::NAN; index.vocabulary.len() * nq];
                let mut query_best = vec![0.0; nq];
                let all: Vec<(f64, u32)> = (0..index.names.len() as u32)
                    .map(|at| {
                        let score = score_name(
                            &query,
                            index,
                            at as usize,
                            &mut memo,
                            &mut query_best,
                            threshold,
                        );
                        (score, at)
                    })
                    .filter(|(score, _)| *score >= threshold)
                    .collect();
                let slow = screen.best_hits(index, all);
                assert_eq!(fast, slow, "{q:?} at {threshold}");
                compared += slow.len();
            }
        }
        assert!(compared > 100, "the queries hit something ({compared})");
    }

    #[test]
    fn sanctions_screen_time_over_20k_entries() {
        let mut list = synthetic(20_000);
        list.entries.push(entry(
            99_999,
            "MORALES, Ernesto Javier",
            SdnKind::Individual,
            &[],
        ));
        list.entries.push(entry(
            99_998,
            "GOLDEN CRESCENT TRADING LLC",
            SdnKind::Entity,
            &[],
        ));
        let started = std::time::Instant::now();
        let screen = SanctionsScreen::new(&list);
        let built = started.elapsed();
        let queries = [
            ("Ernesto J. Morales", Subject::Person),
            ("Mohammad Hamrashi", Subject::Person),
            ("Maria Garcia Lopez", Subject::Person),
            ("Golden Crescent Trading Inc", Subject::Company),
            ("Acme Solar Installers LLC", Subject::Company),
            ("Kimjong International Shipping", Subject::Company),
        ];
        // Medians: this machine may be busy with other work.
        let mut medians = Vec::new();
        for (q, subject) in queries {
            let mut times: Vec<std::time::Duration> = (0..21)
                .map(|_| {
                    let started = std::time::Instant::now();
                    std::hint::black_box(screen.screen(q, subject, 0.85));
                    started.elapsed()
                })
                .collect();
            times.sort();
            println!(
                "sanctions screen: {q:?}: median {:?}",
                times[times.len() / 2]
            );
            medians.push(times[times.len() / 2]);
        }
        println!(
            "sanctions screen: {} names prepared in {built:?}; {:?} per screen (mean of the medians of {} queries, {} profile)",
            screen.name_count(),
            medians.iter().sum::<std::time::Duration>() / medians.len() as u32,
            medians.len(),
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
        );
        assert_eq!(
            screen.screen("Ernesto J. Morales", Subject::Person, 0.85)[0].entry_id,
            99_999
        );
        assert_eq!(
            screen.screen("Golden Crescent Trading Inc", Subject::Company, 0.85)[0].entry_id,
            99_998
        );
    }
}

/// A small sample list in the official layout (the test fixtures), compiled in so that
/// `dossier dev`, the benchmark and the tests screen against something. Never used by
/// `dossier serve`: production loads the real list with `dossier sanctions load DIR`.
pub mod sample {
    use super::*;

    const SDN: &[u8] = include_bytes!("../../tests/fixtures/sdn/sdn.csv");
    const ALT: &[u8] = include_bytes!("../../tests/fixtures/sdn/alt.csv");
    const ADD: &[u8] = include_bytes!("../../tests/fixtures/sdn/add.csv");

    /// Loads the sample unless a list is already active. Returns what was loaded.
    pub async fn load_if_none(store: &Store) -> anyhow::Result<Option<LoadSummary>> {
        if store.active_sanctions_version().await?.is_some() {
            return Ok(None);
        }
        let list = parse_sdn_files(SDN, Some(ALT), Some(ADD))?;
        Ok(Some(
            store
                .replace_sanctions_list(&list, "built-in sample (tests/fixtures/sdn)")
                .await?,
        ))
    }
}
