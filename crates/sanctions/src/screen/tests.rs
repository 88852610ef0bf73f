//! Tests of the screen: matching by subject, the hit limit, the prefilter against
//! scoring every name, and the time of a screen over a synthetic list of 20,000 entries.

use super::*;
use crate::list::{SdnAlias, SdnEntry, SdnKind};

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

/// A deterministic synthetic list shaped like the real one: 20,000 entries, half
/// people with 2–4 names, half companies with 2–5 words, a third with an alias.
fn synthetic(n: usize) -> SdnList {
    const SYL: &[&str] = &[
        "AL", "MO", "HAM", "MAD", "RA", "SHI", "KIM", "JONG", "PE", "DRO", "SAN", "CHEZ", "IVA",
        "NOV", "SER", "GEI", "HU", "SEIN", "FA", "TI", "MA", "LO", "PEZ", "GAR", "CIA", "ZA",
        "DEH", "KA", "RIM", "BO", "RIS", "YA", "SIN", "TA", "REK", "NU",
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
