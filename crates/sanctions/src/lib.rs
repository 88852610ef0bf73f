//! Screening names against the US Treasury OFAC SDN list: the list's types, reading the
//! official CSV files, and matching names. Pure: no I/O, no async runtime. The store
//! keeps the active list in PostgreSQL (`dossier-store`), and each pod holds it in
//! memory for screening (`dossier_upstream::sanctions::SanctionsList`).
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

mod bounds;
mod list;
mod normalise;
mod screen;
mod sdn_csv;

pub use dossier_core::evidence::SanctionsHit;
pub use list::{ListVersion, SdnAddress, SdnAlias, SdnEntry, SdnKind, SdnList, Subject, Vessel};
pub use normalise::name_tokens;
pub use screen::{MAX_HITS, SanctionsScreen};
pub use sdn_csv::{MAX_WARNINGS, SdnError, files_sha256, parse_sdn_files};
