//! The SDN CSV parser (sdn.csv, alt.csv, add.csv, split at NUL bytes) and screening
//! against what it parsed: a corrupt download must be refused or skipped row by row.
#![no_main]

use dossier_sanctions::{SanctionsScreen, Subject, parse_sdn_files};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == 0);
    let sdn = parts.next().unwrap_or_default();
    let alt = parts.next();
    let add = parts.next();
    if let Ok(list) = parse_sdn_files(sdn, alt, add) {
        let screen = SanctionsScreen::new(&list);
        for name in ["Ernesto Gonzalez", "J. Smith", "ACME TRADING LLC"] {
            let _ = screen.screen(name, Subject::Person, 0.85);
            let _ = screen.screen(name, Subject::Company, 0.85);
        }
        if let Ok(text) = std::str::from_utf8(sdn) {
            let _ = screen.screen(text, Subject::Person, 0.85);
        }
    }
});
