//! Name normalisation: how a name as written in the list or in a query becomes the
//! tokens that are matched (uppercase, accents folded, punctuation dropped, "LAST,
//! First" reordered for people, company-form words left out for companies).

use crate::list::Subject;

/// Company-form words left out of entity names, so "X TRADING LLC" is "X TRADING INC".
const COMPANY_SUFFIXES: &[&str] = &[
    "INC",
    "INCORPORATED",
    "LLC",
    "LLP",
    "LP",
    "CO",
    "CORP",
    "CORPORATION",
    "COMPANY",
    "LTD",
    "LIMITED",
    "SA",
    "SAS",
    "SARL",
    "SRL",
    "SPA",
    "GMBH",
    "AG",
    "BV",
    "NV",
    "PLC",
    "JSC",
    "OJSC",
    "CJSC",
    "PJSC",
    "OOO",
    "ZAO",
    "OAO",
    "FZE",
    "FZC",
    "FZCO",
    "PTE",
    "PVT",
    "THE",
];

/// ASCII letters for the accented Latin letters names commonly carry.
fn fold(c: char) -> Option<&'static str> {
    Some(match c {
        'À'..='Å' | 'Ā' | 'Ă' | 'Ą' => "A",
        'Æ' => "AE",
        'Ç' | 'Ć' | 'Ĉ' | 'Ċ' | 'Č' => "C",
        'Ð' | 'Ď' | 'Đ' => "D",
        'È'..='Ë' | 'Ē' | 'Ĕ' | 'Ė' | 'Ę' | 'Ě' => "E",
        'Ĝ' | 'Ğ' | 'Ġ' | 'Ģ' => "G",
        'Ĥ' | 'Ħ' => "H",
        'Ì'..='Ï' | 'Ĩ' | 'Ī' | 'Ĭ' | 'Į' | 'İ' => "I",
        'Ĳ' => "IJ",
        'Ĵ' => "J",
        'Ķ' => "K",
        'Ĺ' | 'Ļ' | 'Ľ' | 'Ŀ' | 'Ł' => "L",
        'Ñ' | 'Ń' | 'Ņ' | 'Ň' | 'Ŋ' => "N",
        'Ò'..='Ö' | 'Ø' | 'Ō' | 'Ŏ' | 'Ő' => "O",
        'Œ' => "OE",
        'Ŕ' | 'Ŗ' | 'Ř' => "R",
        'Ś' | 'Ŝ' | 'Ş' | 'Š' | 'Ș' => "S",
        'ẞ' => "SS",
        'Ţ' | 'Ť' | 'Ŧ' | 'Ț' => "T",
        'Þ' => "TH",
        'Ù'..='Ü' | 'Ũ' | 'Ū' | 'Ŭ' | 'Ů' | 'Ű' | 'Ų' => "U",
        'Ŵ' => "W",
        'Ý' | 'Ŷ' | 'Ÿ' => "Y",
        'Ź' | 'Ż' | 'Ž' => "Z",
        _ => return None,
    })
}

/// Uppercase, accents folded, periods and apostrophes dropped ("J." → "J",
/// "O'NEIL" → "ONEIL"), every other non-alphanumeric a separator; the words.
fn words(raw: &str) -> Vec<String> {
    let mut text = String::with_capacity(raw.len());
    for c in raw.chars().flat_map(char::to_uppercase) {
        match c {
            'A'..='Z' | '0'..='9' => text.push(c),
            '.' | '\'' | '\u{2019}' | '`' | '\u{b4}' => {}
            _ => match fold(c) {
                Some(f) => text.push_str(f),
                None if c.is_alphanumeric() => text.push(c),
                None => text.push(' '),
            },
        }
    }
    text.split_whitespace().map(str::to_owned).collect()
}

/// The tokens of a name as screened: for people "LAST, First Middle" becomes
/// FIRST MIDDLE LAST; for companies the company-form words are left out (unless
/// nothing else is left).
pub fn name_tokens(raw: &str, subject: Subject) -> Vec<String> {
    match subject {
        Subject::Person => match raw.split_once(',') {
            Some((last, given)) => {
                let mut tokens = words(given);
                tokens.extend(words(last));
                tokens
            }
            None => words(raw),
        },
        Subject::Company => {
            let all = words(raw);
            let kept: Vec<String> = all
                .iter()
                .filter(|w| !COMPANY_SUFFIXES.contains(&w.as_str()))
                .cloned()
                .collect();
            if kept.is_empty() { all } else { kept }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised() {
        assert_eq!(
            name_tokens("MORALES PEÑA, Ernesto J.", Subject::Person),
            ["ERNESTO", "J", "MORALES", "PENA"]
        );
        assert_eq!(
            name_tokens("Golden Crescent Trading, L.L.C.", Subject::Company),
            ["GOLDEN", "CRESCENT", "TRADING"]
        );
        assert_eq!(
            name_tokens("AL-ZAWAHIRI, Ayman", Subject::Person),
            ["AYMAN", "AL", "ZAWAHIRI"]
        );
        assert_eq!(
            name_tokens("O'Neil  Müller", Subject::Person),
            ["ONEIL", "MULLER"]
        );
        assert_eq!(name_tokens("CO., LTD.", Subject::Company), ["CO", "LTD"]);
        assert!(name_tokens(" ,.- ", Subject::Person).is_empty());
    }
}
