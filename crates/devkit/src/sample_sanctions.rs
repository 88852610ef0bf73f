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
