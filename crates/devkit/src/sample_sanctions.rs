//! A small sample SDN list in the official layout (the test fixtures), compiled into the
//! developer tools so that `dossier dev`, the benchmark and the tests screen against
//! something. Not in the production build: production loads the real list with
//! `dossier sanctions load DIR`.

use dossier_sanctions::{SdnList, parse_sdn_files};
use dossier_service::config::SanctionsSeed;
use dossier_store::Store;
use dossier_store::sanctions::LoadSummary;

const SDN: &[u8] = include_bytes!("../../../tests/fixtures/sdn/sdn.csv");
const ALT: &[u8] = include_bytes!("../../../tests/fixtures/sdn/alt.csv");
const ADD: &[u8] = include_bytes!("../../../tests/fixtures/sdn/add.csv");
const SOURCE: &str = "built-in sample (tests/fixtures/sdn)";

/// The sample list, parsed.
pub fn list() -> SdnList {
    parse_sdn_files(SDN, Some(ALT), Some(ADD)).expect("the sample sanctions list parses")
}

/// The sample as a server's seed list (loaded when no list is active).
pub fn seed() -> SanctionsSeed {
    SanctionsSeed {
        list: list(),
        source: SOURCE.to_owned(),
    }
}

/// Loads the sample unless a list is already active. Returns what was loaded.
pub async fn load_if_none(store: &Store) -> anyhow::Result<Option<LoadSummary>> {
    if store.active_sanctions_version().await?.is_some() {
        return Ok(None);
    }
    Ok(Some(store.replace_sanctions_list(&list(), SOURCE).await?))
}

/// Writes the sample list in the official layout into `dir`, with one more individual
/// entry, `ent_num` named `name` ("LAST, First"): a new list version that names someone,
/// for the monitoring tests and the bench.
pub fn write_with_individual(
    dir: &std::path::Path,
    ent_num: i64,
    name: &str,
) -> std::io::Result<()> {
    // The official files end with a DOS end-of-file byte; the new row goes before it.
    let sdn = String::from_utf8_lossy(SDN);
    let body = sdn.trim_end_matches(['\x1a', '\r', '\n']);
    let row = format!(
        "{ent_num},\"{name}\",\"individual\",\"SDGT\",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- "
    );
    std::fs::write(dir.join("sdn.csv"), format!("{body}\r\n{row}\r\n\x1a"))?;
    std::fs::write(dir.join("alt.csv"), ALT)?;
    std::fs::write(dir.join("add.csv"), ADD)
}
