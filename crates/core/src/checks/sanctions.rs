//! Sanctions screening of a person or a company against the OFAC SDN list.

use serde_json::json;

use super::Verdict;
use crate::evidence::SanctionsHit;
use crate::policy::SanctionsRules;
use crate::reason::ReasonCode;

/// `hits` are the candidates at or above the review threshold, best first; `list_loaded`
/// is false when no list has been loaded yet (never treated as clear).
pub fn screen(
    hits: &[SanctionsHit],
    list_loaded: bool,
    rules: &SanctionsRules,
    screened: &str,
) -> Verdict {
    if !list_loaded {
        let mut unscreened = Verdict::unavailable(
            ReasonCode::SanctionsListUnavailable,
            "No sanctions list is loaded; load one with `dossier sanctions load DIR`.",
        );
        // The name that was not screened: monitoring screens it once a list is loaded.
        unscreened.evidence = json!({ "screened_name": screened, "candidates": [] });
        return unscreened;
    }
    let candidates: Vec<_> = hits
        .iter()
        .map(|h| {
            json!({
                "entry_id": h.entry_id,
                "list_name": h.list_name,
                "matched_name": h.matched_name,
                "score": (h.score * 1000.0).round() / 1000.0,
                "program": h.program,
                "is_alias": h.is_alias,
            })
        })
        .collect();
    let evidence = json!({
        "screened_name": screened,
        "candidates": candidates,
        "match_threshold": rules.match_threshold,
        "review_threshold": rules.review_threshold,
    });
    match hits.first() {
        Some(best) if best.score >= rules.match_threshold => Verdict::fail(
            ReasonCode::SanctionsMatch,
            format!(
                "\"{screened}\" matches SDN entry {} \"{}\" ({}) with score {:.2}; financing is prohibited unless compliance clears it.",
                best.entry_id, best.list_name, best.program, best.score
            ),
            evidence,
        ),
        Some(best) if best.score >= rules.review_threshold => Verdict::review(
            ReasonCode::SanctionsNearMatch,
            format!(
                "\"{screened}\" resembles SDN entry {} \"{}\" ({}), score {:.2}; compare date of birth and address before proceeding.",
                best.entry_id, best.list_name, best.program, best.score
            ),
            evidence,
        ),
        _ => Verdict::pass("No match on the OFAC SDN list.", evidence),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Outcome;

    fn hit(score: f64) -> SanctionsHit {
        SanctionsHit {
            entry_id: 1,
            matched_name: "X".into(),
            list_name: "X".into(),
            score,
            program: "SDGT".into(),
            is_alias: false,
        }
    }

    #[test]
    fn thresholds_table() {
        let rules = SanctionsRules {
            match_threshold: 0.95,
            review_threshold: 0.85,
        };
        let cases = [
            (vec![], true, Outcome::Pass, vec![]),
            (
                vec![hit(0.95)],
                true,
                Outcome::Fail,
                vec!["SANCTIONS_MATCH"],
            ),
            (
                vec![hit(0.9499)],
                true,
                Outcome::Review,
                vec!["SANCTIONS_NEAR_MATCH"],
            ),
            (
                vec![hit(0.85)],
                true,
                Outcome::Review,
                vec!["SANCTIONS_NEAR_MATCH"],
            ),
            (vec![hit(0.8499)], true, Outcome::Pass, vec![]),
            (
                vec![],
                false,
                Outcome::Unavailable,
                vec!["SANCTIONS_LIST_UNAVAILABLE"],
            ),
        ];
        for (hits, loaded, outcome, codes) in cases {
            let v = screen(&hits, loaded, &rules, "Someone");
            let got: Vec<&str> = v.reason_codes.iter().map(String::as_str).collect();
            assert_eq!((v.outcome, got), (outcome, codes), "{hits:?} {loaded}");
            // Screened or not, the result names who was to be screened: monitoring
            // screens the name once a list is loaded.
            assert_eq!(v.evidence["screened_name"], "Someone");
        }
    }
}
