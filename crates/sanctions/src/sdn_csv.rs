//! Reading the official SDN CSV files (`sdn.csv`, `alt.csv`, `add.csv`) into an
//! [`SdnList`]: the layout's quirks (no header rows, `-0- ` for empty, Latin-1, the
//! trailing 0x1A line), malformed rows skipped with counted warnings, and the hash of
//! the files. Not named `csv.rs`, which would shadow the `csv` crate.

use std::collections::{HashMap, HashSet};

use sha2::{Digest, Sha256};

use crate::list::{SdnAddress, SdnAlias, SdnEntry, SdnKind, SdnList, Vessel};

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
}
