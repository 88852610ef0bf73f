//! Screening: the list's names prepared for matching (normalised once, people and
//! companies apart, each word indexed), the query, the scoring of a name and
//! [`SanctionsScreen`], which finds the entries a name may be. The bounds that make the
//! prefilter cheap are in [`crate::bounds`].

use std::collections::{HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, Utc};
use dossier_core::evidence::SanctionsHit;

use crate::bounds::{
    BUCKETS, NameShape, Needs, Shape, histogram, jaro_winkler_bound, jaro_winkler_quick_bound,
    letters_overlap, matchable, sorted_quick_bound, token_similarity,
};
use crate::list::{SdnList, Subject};
use crate::normalise::name_tokens;

/// The most hits one screen returns.
pub const MAX_HITS: usize = 5;

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

#[cfg(test)]
mod tests;
