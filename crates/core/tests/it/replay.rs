//! Decisions stored by an earlier release still replay: each fixture in
//! tests/fixtures/replay is a run as PostgreSQL stored it (its inputs, the policy's text,
//! the decision and every check's outcome), captured by `capture.sh` from a running
//! server. Today's judge must read the stored inputs and reach the same decision, with
//! the same reason codes, check by check.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dossier_core::domain::Decision;
use dossier_core::judge::{self, RunInputs};
use dossier_core::policy::{self, LoadedPolicy};
use serde::Deserialize;

#[derive(Deserialize)]
struct StoredRun {
    stored_by: String,
    decision: String,
    reason_codes: Vec<String>,
    policy_hash: String,
    policy_source: String,
    checks: Vec<StoredCheck>,
    inputs: serde_json::Value,
}

#[derive(Deserialize)]
struct StoredCheck {
    kind: String,
    subject: String,
    outcome: String,
    reason_codes: Vec<String>,
}

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/replay");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn runs_stored_by_an_earlier_release_replay_to_the_same_decision() {
    let files = fixtures();
    let decisions: Vec<String> = files
        .iter()
        .map(|f| replay(f).as_str().to_owned())
        .collect();
    // The fixtures cover every decision, so each path of the judge is pinned.
    for wanted in ["approved", "declined", "refer"] {
        assert!(
            decisions.iter().any(|d| d == wanted),
            "no fixture ends {wanted}: {decisions:?}"
        );
    }
}

/// Replays one fixture and checks it against what was stored; returns the decision.
fn replay(file: &Path) -> Decision {
    let name = file.display();
    let stored: StoredRun = serde_json::from_str(&std::fs::read_to_string(file).unwrap())
        .unwrap_or_else(|e| panic!("{name}: not a stored run: {e}"));
    let policy = LoadedPolicy::parse(&stored.policy_source)
        .unwrap_or_else(|e| panic!("{name}: the stored policy no longer parses: {e}"));
    assert_eq!(
        policy.hash, stored.policy_hash,
        "{name}: policy text and hash"
    );
    let inputs: RunInputs = serde_json::from_value(stored.inputs).unwrap_or_else(|e| {
        panic!(
            "{name}: inputs stored by {} no longer decode: {e}",
            stored.stored_by
        )
    });
    let results = judge::judge_all(&inputs, &policy);
    let recomputed: BTreeMap<(String, String), (String, Vec<String>)> = results
        .iter()
        .map(|r| {
            (
                (r.kind.as_str().to_owned(), r.subject.clone()),
                (r.outcome.as_str().to_owned(), r.reason_codes.clone()),
            )
        })
        .collect();
    let then: BTreeMap<(String, String), (String, Vec<String>)> = stored
        .checks
        .into_iter()
        .map(|c| ((c.kind, c.subject), (c.outcome, c.reason_codes)))
        .collect();
    assert_eq!(recomputed, then, "{name}: check outcomes");
    let (decision, reason_codes) = policy::decide(policy.for_state(&inputs.state), &results);
    assert_eq!(decision.as_str(), stored.decision, "{name}: decision");
    assert_eq!(reason_codes, stored.reason_codes, "{name}: reason codes");
    decision
}
