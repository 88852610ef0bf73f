//! Cheap exact upper bounds of Jaro–Winkler (as `strsim` computes it), from lengths,
//! character sets and character counts, and the word similarity they bound. The screen
//! ([`crate::screen`]) uses them to skip almost every comparison without losing a hit.

pub(crate) const BUCKETS: usize = 38;

/// Character counts of a normalised string: A–Z, 0–9, space, anything else.
pub(crate) fn histogram(s: &str) -> [u16; BUCKETS] {
    let mut h = [0u16; BUCKETS];
    for c in s.chars() {
        let b = match c {
            'A'..='Z' => c as usize - 'A' as usize,
            '0'..='9' => 26 + (c as usize - '0' as usize),
            ' ' => 36,
            _ => 37,
        };
        h[b] = h[b].saturating_add(1);
    }
    h
}

/// Bit of the space in [`char_set`].
const SPACE: u64 = 1 << 37;

/// Which characters a string holds: A–Z, 0–9, one bit for all others, the space.
fn char_set(s: &str) -> u64 {
    s.chars().fold(0, |m, c| {
        m | match c {
            'A'..='Z' => 1 << (c as u32 - 'A' as u32),
            '0'..='9' => 1 << (26 + c as u32 - '0' as u32),
            ' ' => SPACE,
            _ => 1 << 36,
        }
    })
}

/// What the cheapest bounds know of a string: its length in characters, its first
/// character and its character set.
#[derive(Clone, Copy)]
pub(crate) struct Shape {
    pub(crate) chars: u64,
    pub(crate) len: u32,
    pub(crate) first: char,
}

impl Shape {
    pub(crate) fn of(s: &str) -> Shape {
        Shape {
            chars: char_set(s),
            len: s.chars().count() as u32,
            first: s.chars().next().unwrap_or(' '),
        }
    }
}

/// At most this many characters of `a` can be matched in `b`: each character `a` has
/// and `b` lacks is at least one unmatched character.
pub(crate) fn matchable(a: Shape, b: Shape) -> u32 {
    a.len.saturating_sub((a.chars & !b.chars).count_ones())
}

/// Two words compared: Jaro–Winkler, except that an initial matches any word it begins.
pub(crate) fn token_similarity(a: &str, b: &str) -> f64 {
    if a == b {
        return 1.0;
    }
    let single = |s: &str| s.chars().nth(1).is_none();
    if single(a) || single(b) {
        return if a.chars().next() == b.chars().next() {
            0.9
        } else {
            0.0
        };
    }
    strsim::jaro_winkler(a, b)
}

/// Jaro–Winkler as `strsim` computes it, from an upper bound `m` of the matching
/// characters, no transpositions and the longest possible common prefix: an upper bound.
fn jaro_winkler_from(m: u32, a_len: u32, b_len: u32, prefix: usize) -> f64 {
    if m == 0 || a_len == 0 || b_len == 0 {
        return 0.0;
    }
    let m = f64::from(m);
    let jaro = ((m / f64::from(a_len) + m / f64::from(b_len) + 1.0) / 3.0).min(1.0);
    if jaro <= 0.7 {
        jaro
    } else {
        jaro + 0.1 * prefix.min(4) as f64 * (1.0 - jaro)
    }
}

/// An upper bound of `strsim::jaro_winkler(a, b)` from character counts and the common
/// prefix: matched characters are at most the common multiset, transpositions at least 0.
pub(crate) fn jaro_winkler_bound(
    a: &str,
    a_len: u32,
    a_hist: &[u16; BUCKETS],
    b: &str,
    b_len: u32,
    b_hist: &[u16; BUCKETS],
) -> f64 {
    let common: u32 = a_hist
        .iter()
        .zip(b_hist)
        .map(|(x, y)| u32::from((*x).min(*y)))
        .sum();
    let prefix = a
        .chars()
        .zip(b.chars())
        .take(4)
        .take_while(|(x, y)| x == y)
        .count();
    jaro_winkler_from(common, a_len, b_len, prefix)
}

/// A cruder, cheaper upper bound of `strsim::jaro_winkler` from lengths and character
/// sets only.
pub(crate) fn jaro_winkler_quick_bound(a: Shape, b: Shape) -> f64 {
    let prefix = if a.first == b.first { 4 } else { 0 };
    jaro_winkler_from(matchable(a, b).min(matchable(b, a)), a.len, b.len, prefix)
}

/// For one query word and a threshold: how many matchable characters a vocabulary word
/// of each length needs for [`jaro_winkler_quick_bound`] to reach the threshold, so the
/// scan of the vocabulary compares integers. Index: length; `[different, same]` first
/// character. `u32::MAX`: impossible.
pub(crate) struct Needs {
    min_matches: Vec<[u32; 2]>,
}

impl Needs {
    pub(crate) fn new(word: Shape, threshold: f64, max_len: u32) -> Needs {
        let min_matches = (0..=max_len)
            .map(|len| {
                [0, 4].map(|prefix| {
                    // The bound grows with m: the first m that reaches the threshold.
                    let most = word.len.min(len);
                    let (mut lo, mut hi) = (0, most + 1);
                    while lo < hi {
                        let mid = (lo + hi) / 2;
                        if jaro_winkler_from(mid, word.len, len, prefix) >= threshold {
                            hi = mid;
                        } else {
                            lo = mid + 1;
                        }
                    }
                    if lo > most { u32::MAX } else { lo }
                })
            })
            .collect();
        Needs { min_matches }
    }

    /// Whether [`jaro_winkler_quick_bound`]`(word, other)` reaches the threshold.
    pub(crate) fn allows(&self, word: Shape, other: Shape) -> bool {
        let Some(need) = self.min_matches.get(other.len as usize) else {
            return true;
        };
        let need = need[usize::from(word.first == other.first)];
        need != u32::MAX && matchable(word, other).min(matchable(other, word)) >= need
    }
}

/// A sorted name's shape, and its shape without the spaces (for the overlap weight).
#[derive(Clone, Copy)]
pub(crate) struct NameShape {
    pub(crate) whole: Shape,
    pub(crate) letters: Shape,
}

impl NameShape {
    pub(crate) fn of(sorted: &str) -> NameShape {
        let whole = Shape::of(sorted);
        NameShape {
            whole,
            letters: Shape {
                chars: whole.chars & !SPACE,
                len: whole.len - sorted.matches(' ').count() as u32,
                first: whole.first,
            },
        }
    }
}

/// An upper bound of the weighted sorted-name comparison of `score_name`
/// ([`crate::screen`]), from lengths and character sets only.
pub(crate) fn sorted_quick_bound(q: NameShape, n: NameShape) -> f64 {
    let total = q.letters.len + n.letters.len;
    if total == 0 {
        return 0.0;
    }
    let common = matchable(q.letters, n.letters).min(matchable(n.letters, q.letters));
    let overlap = 2.0 * f64::from(common) / f64::from(total);
    overlap * jaro_winkler_quick_bound(q.whole, n.whole)
}

/// How much of their letters two names share (Dice coefficient over the character
/// counts, spaces left out): 1 when one is an anagram of the other.
pub(crate) fn letters_overlap(a: &[u16; BUCKETS], b: &[u16; BUCKETS]) -> f64 {
    let (mut common, mut total) = (0u32, 0u32);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        if i != 36 {
            common += u32::from((*x).min(*y));
            total += u32::from(*x) + u32::from(*y);
        }
    }
    if total == 0 {
        0.0
    } else {
        2.0 * f64::from(common) / f64::from(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_is_never_below_the_score() {
        let pairs = [
            ("ERNESTO J MORALES", "ERNESTO JAVIER MORALES"),
            ("ABC", "CBA"),
            ("MARTHA", "MARHTA"),
            ("A", "A"),
            ("DIXON", "DICKSONX"),
            ("X", "ZZZZ"),
            ("AL ZAWAHIRI AYMAN", "AYMAN ZAWAHIRI"),
            ("RAHMAN", "ARHMAN"),
            ("AAAAB", "AB"),
            ("MORALES", "MORALEZ"),
        ];
        for (a, b) in pairs {
            for (a, b) in [(a, b), (b, a)] {
                let (ha, hb) = (histogram(a), histogram(b));
                let (la, lb) = (a.chars().count() as u32, b.chars().count() as u32);
                let bound = jaro_winkler_bound(a, la, &ha, b, lb, &hb);
                let jw = strsim::jaro_winkler(a, b);
                assert!(bound + 1e-12 >= jw, "{a} / {b}: bound {bound} < {jw}");
                let quick = jaro_winkler_quick_bound(Shape::of(a), Shape::of(b));
                assert!(quick + 1e-12 >= bound, "{a} / {b}: quick {quick} < {bound}");
                let weighted = letters_overlap(&ha, &hb) * bound;
                let quick = sorted_quick_bound(NameShape::of(a), NameShape::of(b));
                assert!(quick + 1e-12 >= weighted, "{a} / {b}: {quick} < {weighted}");
            }
        }
    }

    #[test]
    fn needs_agree_with_the_quick_bound() {
        let words = [
            "A",
            "AL",
            "MORALES",
            "ERNESTO",
            "ZAWAHIRI",
            "QQQQQQQQQQQQ",
            "ABDULRAHMAN",
        ];
        for threshold in [0.0, 0.5, 0.75, 0.85, 0.92, 1.0] {
            for a in words {
                let needs = Needs::new(Shape::of(a), threshold, 12);
                for b in words {
                    let (sa, sb) = (Shape::of(a), Shape::of(b));
                    assert_eq!(
                        needs.allows(sa, sb),
                        jaro_winkler_quick_bound(sa, sb) >= threshold,
                        "{a} / {b} at {threshold}"
                    );
                }
            }
        }
    }
}
