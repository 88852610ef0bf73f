//! Deterministic "randomness" for the simulators.
//!
//! Every simulated fact is a function of the normalised request: the request's fields are
//! trimmed, upper-cased and their inner whitespace collapsed, then hashed with SHA-256
//! together with a per-upstream domain tag. [`Dice`] draws numbers from that hash, so the
//! same address always has the same owners, value, mortgage and so on, on every machine and
//! across releases of `rand` (which we deliberately do not use here).

use chrono::{Days, Months, NaiveDate};
use sha2::{Digest, Sha256};

/// Trim, upper-case and collapse inner whitespace: `"  12  main st "` → `"12 MAIN ST"`.
pub(crate) fn normalise(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase()
}

/// Whether `text` contains `word` as a whole word, case-insensitively. Words are runs of
/// ASCII letters and digits, so "LATE" matches "12 Late St" but not "12 Slate St".
pub(crate) fn has_word(text: &str, word: &str) -> bool {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .any(|w| w.eq_ignore_ascii_case(word))
}

/// The simulators' notion of "today", used only for relative dates ("filed 2 years ago").
pub(crate) fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

pub(crate) fn days_ago(days: u64) -> NaiveDate {
    today() - Days::new(days)
}

pub(crate) fn days_ahead(days: u64) -> NaiveDate {
    today() + Days::new(days)
}

pub(crate) fn months_ago(months: u32) -> NaiveDate {
    today()
        .checked_sub_months(Months::new(months))
        .expect("date in range")
}

/// Whole dollars in cents.
pub(crate) const fn dollars(dollars: i64) -> i64 {
    dollars * 100
}

/// A deterministic stream of numbers derived from a hash of the normalised request.
pub(crate) struct Dice {
    seed: [u8; 32],
    counter: u64,
}

impl Dice {
    /// `domain` keeps upstreams independent (the same text hashed for two upstreams gives
    /// unrelated numbers); `parts` are normalised before hashing.
    pub(crate) fn new(domain: &str, parts: &[&str]) -> Dice {
        let mut hasher = Sha256::new();
        hasher.update(domain.as_bytes());
        for part in parts {
            hasher.update([0x1f]);
            hasher.update(normalise(part).as_bytes());
        }
        Dice {
            seed: hasher.finalize().into(),
            counter: 0,
        }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut hasher = Sha256::new();
        hasher.update(self.seed);
        hasher.update(self.counter.to_le_bytes());
        self.counter += 1;
        let digest = hasher.finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
    }

    /// Uniform in `lo..=hi` (the modulo bias is negligible for the small ranges used here).
    pub(crate) fn range(&mut self, lo: i64, hi: i64) -> i64 {
        assert!(lo <= hi, "empty range {lo}..={hi}");
        let span = (hi - lo) as u64 + 1;
        lo + (self.next_u64() % span) as i64
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.range(0, items.len() as i64 - 1) as usize]
    }

    /// True with the given probability in percent.
    pub(crate) fn chance(&mut self, percent: i64) -> bool {
        self.range(0, 99) < percent
    }
}

/// First names for generated people (single words, so "LAST, FIRST M" parses back).
pub(crate) const FIRST_NAMES: &[&str] = &[
    "JAMES",
    "MARY",
    "ROBERT",
    "PATRICIA",
    "JOHN",
    "JENNIFER",
    "MICHAEL",
    "LINDA",
    "DAVID",
    "ELIZABETH",
    "WILLIAM",
    "BARBARA",
    "RICHARD",
    "SUSAN",
    "JOSEPH",
    "JESSICA",
    "THOMAS",
    "KAREN",
    "CARLOS",
    "SARAH",
    "DANIEL",
    "NANCY",
    "MATTHEW",
    "LISA",
    "ANTHONY",
    "MARGARET",
    "MARK",
    "SANDRA",
    "STEVEN",
    "ASHLEY",
    "ANDREW",
    "EMILY",
    "KEVIN",
    "MICHELLE",
    "BRIAN",
    "AMANDA",
    "JORGE",
    "MARIA",
    "KENNETH",
    "ROSA",
    "GEORGE",
    "ANGELA",
    "EDWARD",
    "HELEN",
    "RONALD",
    "GRACE",
    "TIMOTHY",
    "NICOLE",
    "JASON",
    "DIANA",
];

/// Last names for generated people (single words).
pub(crate) const LAST_NAMES: &[&str] = &[
    "SMITH",
    "JOHNSON",
    "WILLIAMS",
    "BROWN",
    "JONES",
    "GARCIA",
    "MILLER",
    "DAVIS",
    "RODRIGUEZ",
    "MARTINEZ",
    "HERNANDEZ",
    "LOPEZ",
    "GONZALEZ",
    "WILSON",
    "ANDERSON",
    "TAYLOR",
    "MOORE",
    "JACKSON",
    "MARTIN",
    "LEE",
    "PEREZ",
    "THOMPSON",
    "WHITE",
    "HARRIS",
    "SANCHEZ",
    "CLARK",
    "RAMIREZ",
    "LEWIS",
    "ROBINSON",
    "WALKER",
    "YOUNG",
    "ALLEN",
    "KING",
    "WRIGHT",
    "SCOTT",
    "TORRES",
    "NGUYEN",
    "HILL",
    "FLORES",
    "GREEN",
    "ADAMS",
    "NELSON",
    "BAKER",
    "HALL",
    "RIVERA",
    "CAMPBELL",
    "MITCHELL",
    "CARTER",
    "ROBERTS",
    "CHEN",
];

/// Middle initials (some letters are rarer in practice; it does not matter here).
pub(crate) const INITIALS: &[&str] = &[
    "A", "B", "C", "D", "E", "F", "G", "H", "J", "K", "L", "M", "N", "P", "R", "S", "T", "W",
];

/// "MARIA" → "Maria".
pub(crate) fn title_case(word: &str) -> String {
    let lower = word.to_lowercase();
    let mut chars = lower.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_trims_uppercases_and_collapses() {
        assert_eq!(normalise("  12  main\tst "), "12 MAIN ST");
    }

    #[test]
    fn whole_words_only() {
        assert!(has_word("12 Late St", "LATE"));
        assert!(has_word("12 LIEN-PACE ST", "PACE"));
        assert!(!has_word("12 Slate St", "LATE"));
        assert!(!has_word("9 Highland Ave", "LAND"));
    }

    #[test]
    fn dice_is_deterministic_and_normalises() {
        let a: Vec<i64> = {
            let mut d = Dice::new("t", &["12 Main St", "Fresno"]);
            (0..5).map(|_| d.range(0, 1000)).collect()
        };
        let mut d = Dice::new("t", &[" 12  MAIN st", "fresno "]);
        let b: Vec<i64> = (0..5).map(|_| d.range(0, 1000)).collect();
        assert_eq!(a, b);
        let mut other = Dice::new("u", &["12 Main St", "Fresno"]);
        let c: Vec<i64> = (0..5).map(|_| other.range(0, 1000)).collect();
        assert_ne!(a, c);
    }

    #[test]
    fn title_case_works() {
        assert_eq!(title_case("MARIA"), "Maria");
        assert_eq!(title_case(""), "");
    }
}
