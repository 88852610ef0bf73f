//! The OFAC SDN list: loading the official CSV files into PostgreSQL, replacing the
//! active list atomically, refreshing a process's copy, and screening names.
//! Fixtures: tests/fixtures/sdn (see its README.md for the documented pair).

use std::path::{Path, PathBuf};
use std::time::Duration;

use dossier_devkit::harness::TestDb;
use dossier_sanctions::{
    SanctionsHit, SanctionsScreen, SdnKind, SdnList, Subject, parse_sdn_files,
};
use dossier_service::cli::sanctions::load_dir;
use dossier_store::{Store, Vault};
use dossier_upstream::Upstream;
use dossier_upstream::sanctions::SanctionsList;

const PERSON: i64 = 40101; // MORALES, Ernesto Javier
const COMPANY: i64 = 40102; // GOLDEN CRESCENT TRADING LLC

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sdn")
}

async fn store(db: &TestDb) -> Store {
    let pool = dossier_store::connect(&db.url, 5)
        .await
        .expect("connect to the test database");
    Store::new(pool, Vault::ephemeral())
}

async fn count(store: &Store, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&store.pool)
        .await
        .expect("count")
}

/// A list "B" in the official layout: `n` invented entities, no aliases or addresses.
fn write_list_b(dir: &Path, n: usize) {
    let mut sdn = String::new();
    for i in 0..n {
        sdn.push_str(&format!(
            "{},\"NORTHWIND BLUE HARBOR {i} HOLDINGS LTD\",-0- ,\"SDGT\",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- \r\n",
            100_000 + i
        ));
    }
    sdn.push_str(
        "70001,\"QUINTERO ALVARADO, Rosa Elena\",\"individual\",\"TCO\",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,\"DOB 02 May 1975.\"\r\n\x1a",
    );
    std::fs::write(dir.join("sdn.csv"), sdn).unwrap();
}

fn best(hits: &[SanctionsHit], entry: i64) -> Option<&SanctionsHit> {
    hits.iter().find(|h| h.entry_id == entry)
}

async fn fixture_screen(store: &Store) -> SanctionsScreen {
    load_dir(store, &fixtures()).await.expect("load fixtures");
    let list = store
        .load_active_sanctions()
        .await
        .unwrap()
        .expect("an active list");
    SanctionsScreen::new(&list)
}

#[tokio::test]
async fn loading_the_fixtures_gives_the_expected_counts() {
    let db = TestDb::migrated().await;
    let store = store(&db).await;
    assert_eq!(store.active_sanctions_version().await.unwrap(), None);
    assert!(store.load_active_sanctions().await.unwrap().is_none());

    let summary = load_dir(&store, &fixtures()).await.expect("load fixtures");
    assert_eq!(summary.entries, 30);
    assert_eq!(summary.aliases, 13);
    assert_eq!(summary.addresses, 14);
    assert_eq!(summary.skipped_rows, 0);
    assert_eq!(summary.sha256.len(), 64);
    let line = summary.to_string();
    assert!(!line.contains('\n'), "{line}");
    assert!(line.contains("30 entries"), "{line}");

    assert_eq!(
        store.active_sanctions_version().await.unwrap(),
        Some(summary.list_id)
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM sanctions_entries").await,
        30 + 13
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM sanctions_addresses").await,
        14
    );

    // What is read back is what was parsed.
    let read = |name: &str| std::fs::read(fixtures().join(name)).unwrap();
    let parsed = parse_sdn_files(
        &read("sdn.csv"),
        Some(&read("alt.csv")),
        Some(&read("add.csv")),
    )
    .unwrap();
    let stored = store.load_active_sanctions().await.unwrap().unwrap();
    let version = stored
        .stored
        .clone()
        .expect("stored lists carry their version");
    assert_eq!(version.id, summary.list_id);
    assert_eq!(version.source, fixtures().display().to_string());
    assert_eq!(stored.sha256, summary.sha256);
    assert_eq!(stored.sha256, parsed.sha256);
    let mut expected = parsed.entries.clone();
    expected.sort_by_key(|e| e.ent_num);
    assert_eq!(stored.entries, expected);

    let person = stored.entries.iter().find(|e| e.ent_num == PERSON).unwrap();
    assert_eq!(person.name, "MORALES, Ernesto Javier");
    assert_eq!(person.kind, SdnKind::Individual);
    assert_eq!(person.program, "ILLICIT-DRUGS-EO14059");
    assert_eq!(person.aliases.len(), 2);
    assert_eq!(person.addresses[0].city, "Culiacan, Sinaloa");
    let company = stored
        .entries
        .iter()
        .find(|e| e.ent_num == COMPANY)
        .unwrap();
    assert_eq!(company.kind, SdnKind::Entity);
    assert_eq!(company.program, "SDGT; IRGC");
    assert_eq!(company.addresses.len(), 2);
    let vessel = stored.entries.iter().find(|e| e.ent_num == 40103).unwrap();
    assert_eq!(vessel.kind, SdnKind::Vessel);
    assert_eq!(vessel.vessel.as_ref().unwrap().call_sign, "9HA4521");
    let kinds = |k: SdnKind| stored.entries.iter().filter(|e| e.kind == k).count();
    assert_eq!(
        (
            kinds(SdnKind::Individual),
            kinds(SdnKind::Entity),
            kinds(SdnKind::Vessel),
            kinds(SdnKind::Aircraft)
        ),
        (15, 13, 1, 1)
    );
}

#[tokio::test]
async fn near_names_of_a_listed_person_match_and_others_score_lower() {
    let db = TestDb::migrated().await;
    let store = store(&db).await;
    let screen = fixture_screen(&store).await;
    let score = |name: &str| {
        let hits = screen.screen(name, Subject::Person, 0.0);
        best(&hits, PERSON).map_or(0.0, |h| h.score)
    };

    let exact = screen.screen("Ernesto Javier Morales", Subject::Person, 0.85);
    assert_eq!(exact[0].entry_id, PERSON, "{exact:?}");
    assert!(exact[0].score > 0.99, "{exact:?}");
    assert_eq!(exact[0].list_name, "MORALES, Ernesto Javier");
    assert_eq!(exact[0].program, "ILLICIT-DRUGS-EO14059");
    assert_eq!(score("MORALES, Ernesto Javier"), 1.0);
    assert_eq!(score("ernesto  javier MORALES."), 1.0);

    let initial = score("Ernesto J. Morales");
    let no_middle = score("Ernesto Morales");
    let accented = score("Ernésto Morales Peña");
    let other = score("Ernest Moralez-Smith");
    let surname_only = score("Morales");
    println!(
        "scores: initial {initial:.3}, no middle {no_middle:.3}, accented alias {accented:.3}, \
         other person {other:.3}, surname only {surname_only:.3}"
    );
    assert!(initial >= 0.9, "Ernesto J. Morales: {initial}");
    assert!(no_middle >= 0.88, "Ernesto Morales: {no_middle}");
    assert!(accented >= 0.95, "Ernésto Morales Peña (alias): {accented}");
    assert!(other < no_middle && other < initial, "{other}");
    assert!(other < 0.85, "Ernest Moralez-Smith: {other}");
    assert!(surname_only < 0.85, "Morales alone: {surname_only}");
    // Sharing a first name is not enough (Jaro–Winkler on whole names alone gave 0.89).
    let first_name_only = score("Ernesto Gonzalez");
    assert!(
        first_name_only < 0.85,
        "Ernesto Gonzalez: {first_name_only}"
    );

    // At a screening threshold of 0.88 the near names hit, the other person does not.
    let hits = screen.screen("Ernesto Morales", Subject::Person, 0.88);
    assert_eq!(hits[0].entry_id, PERSON, "{hits:?}");
    assert!(
        best(
            &screen.screen("Ernest Moralez-Smith", Subject::Person, 0.88),
            PERSON
        )
        .is_none()
    );
    // The other Morales of the list never outranks the listed one.
    assert!(best(&hits, 40128).is_none_or(|h| h.score < hits[0].score));

    // An alias names the alias and the entry.
    let alias = screen.screen("Ernesto Morales Pena", Subject::Person, 0.9);
    assert_eq!(alias[0].entry_id, PERSON);
    assert!(alias[0].is_alias);
    assert_eq!(alias[0].matched_name, "MORALES PENA, Ernesto");
    assert_eq!(alias[0].list_name, "MORALES, Ernesto Javier");

    // Someone else entirely is clear.
    assert!(
        screen
            .screen("Jane Q. Homeowner", Subject::Person, 0.85)
            .is_empty()
    );
}

#[tokio::test]
async fn company_matches_ignore_the_company_form() {
    let db = TestDb::migrated().await;
    let store = store(&db).await;
    let screen = fixture_screen(&store).await;
    for name in [
        "Golden Crescent Trading LLC",
        "Golden Crescent Trading, Inc.",
        "GOLDEN CRESCENT TRADING",
        "Golden Crescent Trading Co Ltd",
    ] {
        let hits = screen.screen(name, Subject::Company, 0.9);
        assert_eq!(hits[0].entry_id, COMPANY, "{name}: {hits:?}");
        assert_eq!(hits[0].score, 1.0, "{name}: {hits:?}");
        assert!(!hits[0].is_alias);
        assert_eq!(hits[0].program, "SDGT; IRGC");
    }
    let former = screen.screen("Golden Crescent General Trading", Subject::Company, 0.9);
    assert_eq!(former[0].entry_id, COMPANY);
    // Both the primary and the former name match well; the entry is listed once.
    assert_eq!(former.iter().filter(|h| h.entry_id == COMPANY).count(), 1);
    // Words run together are still the same name.
    let joined = screen.screen("GoldenCrescent Trading", Subject::Company, 0.85);
    assert_eq!(joined[0].entry_id, COMPANY, "{joined:?}");
    let near = screen.screen("Golden Cresent Tradng Inc", Subject::Company, 0.85);
    assert_eq!(near[0].entry_id, COMPANY, "{near:?}");
    assert!(near[0].score < 1.0);
    // Vessels and aircraft are screened as companies.
    assert_eq!(
        screen.screen("Ocean Harmony", Subject::Company, 0.9)[0].entry_id,
        40103
    );
    assert!(
        screen
            .screen("Sunrise Solar Installers LLC", Subject::Company, 0.85)
            .is_empty()
    );
}

#[tokio::test]
async fn individuals_and_companies_do_not_cross() {
    let db = TestDb::migrated().await;
    let store = store(&db).await;
    let screen = fixture_screen(&store).await;
    for threshold in [0.0, 0.5] {
        let as_company = screen.screen("Ernesto Javier Morales", Subject::Company, threshold);
        assert!(best(&as_company, PERSON).is_none(), "{as_company:?}");
        let as_person = screen.screen("Golden Crescent Trading LLC", Subject::Person, threshold);
        assert!(best(&as_person, COMPANY).is_none(), "{as_person:?}");
        assert!(best(&as_person, 40103).is_none(), "vessels are not people");
    }
    assert!(
        screen
            .screen("Ernesto Javier Morales", Subject::Company, 0.85)
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_the_list_is_atomic() {
    let db = TestDb::migrated().await;
    let store = store(&db).await;
    let a = load_dir(&store, &fixtures()).await.unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    write_list_b(dir_b.path(), 12_000);

    // Readers during the replacement see all of A or all of B, never a mix or a part.
    let reader_store = store.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_reader = stop.clone();
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        while !stop_reader.load(std::sync::atomic::Ordering::Relaxed) {
            let list = reader_store.load_active_sanctions().await.unwrap().unwrap();
            let id = list.stored.as_ref().unwrap().id;
            seen.push((id, list.entries.len(), list.alias_count()));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        seen
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let b = load_dir(&store, dir_b.path()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = reader.await.unwrap();
    assert!(!seen.is_empty());
    for (id, entries, aliases) in &seen {
        match *id {
            id if id == a.list_id => assert_eq!((*entries, *aliases), (30, 13)),
            id if id == b.list_id => assert_eq!((*entries, *aliases), (12_001, 0)),
            other => panic!("read list {other}, neither A nor B"),
        }
    }
    assert_eq!(seen.last().unwrap().0, b.list_id);

    assert!(b.list_id > a.list_id);
    assert_eq!(b.entries, 12_001);
    assert_eq!(
        store.active_sanctions_version().await.unwrap(),
        Some(b.list_id)
    );
    let active = store.load_active_sanctions().await.unwrap().unwrap();
    assert_eq!(active.entries.len(), 12_001);
    assert!(active.entries.iter().all(|e| e.ent_num != PERSON));
    // A's rows are gone; its history row stays, inactive.
    assert_eq!(
        count(&store, "SELECT count(*) FROM sanctions_entries").await,
        12_001
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM sanctions_addresses").await,
        0
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM sanctions_lists").await,
        2
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM sanctions_lists WHERE active").await,
        1
    );
}

#[tokio::test]
async fn a_failed_load_leaves_the_active_list() {
    let db = TestDb::migrated().await;
    let store = store(&db).await;
    let a = load_dir(&store, &fixtures()).await.unwrap();

    // A download that is not the list (an HTML error page, a header-only file).
    let garbage = tempfile::tempdir().unwrap();
    std::fs::write(
        garbage.path().join("sdn.csv"),
        "<html><body>Service Unavailable</body></html>\r\n\x1a",
    )
    .unwrap();
    let err = load_dir(&store, garbage.path()).await.unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("sdn.csv"), "{message}");
    assert!(message.contains("no entries"), "{message}");
    assert!(message.contains("line 1"), "{message}");

    // An empty file.
    std::fs::write(garbage.path().join("sdn.csv"), "").unwrap();
    assert!(load_dir(&store, garbage.path()).await.is_err());

    // No sdn.csv at all.
    let missing = tempfile::tempdir().unwrap();
    let err = load_dir(&store, missing.path()).await.unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("sdn.csv"), "{message}");
    assert!(message.contains("unchanged"), "{message}");

    // The store itself refuses an empty list.
    assert!(
        store
            .replace_sanctions_list(&SdnList::default(), "test")
            .await
            .is_err()
    );

    assert_eq!(
        store.active_sanctions_version().await.unwrap(),
        Some(a.list_id)
    );
    let active = store.load_active_sanctions().await.unwrap().unwrap();
    assert_eq!(active.entries.len(), 30);
    assert_eq!(active.alias_count(), 13);
    assert_eq!(
        count(&store, "SELECT count(*) FROM sanctions_lists").await,
        1
    );
}

#[tokio::test]
async fn refresh_picks_up_a_new_version() {
    let db = TestDb::migrated().await;
    let store = store(&db).await;
    let list = SanctionsList::empty();
    assert!(
        !list.refresh_from(&store).await.unwrap(),
        "nothing stored yet"
    );
    assert_eq!(list.version(), None);
    assert!(
        list.answer("Ernesto Morales", Subject::Person, 0.88)
            .source
            .stale
    );

    let a = load_dir(&store, &fixtures()).await.unwrap();
    assert!(list.refresh_from(&store).await.unwrap());
    assert_eq!(list.version(), Some(a.list_id));
    assert!(!list.refresh_from(&store).await.unwrap(), "same version");

    let answer = list.answer("Ernesto J. Morales", Subject::Person, 0.88);
    assert_eq!(answer.value[0].entry_id, PERSON);
    assert_eq!(answer.source.upstream, Upstream::Sanctions);
    assert!(!answer.source.cached);
    assert!(!answer.source.stale);
    let loaded_at: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT loaded_at FROM sanctions_lists WHERE id = $1")
            .bind(a.list_id)
            .fetch_one(&store.pool)
            .await
            .unwrap();
    assert_eq!(answer.source.fetched_at, loaded_at);

    let dir_b = tempfile::tempdir().unwrap();
    write_list_b(dir_b.path(), 10);
    let b = load_dir(&store, dir_b.path()).await.unwrap();
    assert_eq!(list.version(), Some(a.list_id), "no refresh, no change");
    assert!(list.refresh_from(&store).await.unwrap());
    assert_eq!(list.version(), Some(b.list_id));
    assert!(
        list.screen("Ernesto J. Morales", Subject::Person, 0.85)
            .is_empty()
    );
    let hits = list.screen("Rosa Elena Quintero Alvarado", Subject::Person, 0.85);
    assert_eq!(hits[0].entry_id, 70001);
    assert!(!list.refresh_from(&store).await.unwrap());
}
