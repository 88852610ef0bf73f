//! Matching county owner-of-record strings against applicants' names.
//!
//! Counties write owners as "SMITH, JOHN A", "SMITH, JOHN A & JANE B", "JOHN A SMITH JR",
//! "THE SMITH FAMILY TRUST". Matching is by first and last name, ignoring case,
//! punctuation, middle names or initials and generational suffixes.

/// A person's name reduced to what must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonName {
    pub first: String,
    pub last: String,
}

/// An owner of record, as parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    Person(PersonName),
    /// A trust, company or other entity: title is not held by people directly.
    Entity(String),
}

const SUFFIXES: &[&str] = &["JR", "SR", "II", "III", "IV", "V", "ESQ"];
const ENTITY_WORDS: &[&str] = &[
    "TRUST",
    "TR",
    "TRUSTEE",
    "LLC",
    "INC",
    "CORP",
    "CORPORATION",
    "LP",
    "LTD",
    "COMPANY",
    "CO",
    "ESTATE",
    "BANK",
    "CHURCH",
    "PARTNERSHIP",
];

fn words(s: &str) -> Vec<String> {
    s.to_uppercase()
        .replace(['.', '\''], "")
        .split(|c: char| !c.is_alphanumeric() && c != '-' && c != ',' && c != '&')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

fn clean(word: &str) -> String {
    word.trim_matches(|c: char| c == ',' || c == '-').to_owned()
}

/// Normalises an applicant's own first and last name.
pub fn person(first: &str, last: &str) -> PersonName {
    let norm = |s: &str| {
        words(s)
            .into_iter()
            .map(|w| clean(&w))
            .collect::<Vec<_>>()
            .join(" ")
    };
    PersonName {
        first: norm(first),
        last: norm(last),
    }
}

/// Parses one owner-of-record string into the people (or entity) it names.
pub fn parse_owner(raw: &str) -> Vec<Owner> {
    let all = words(raw);
    if all
        .iter()
        .any(|w| ENTITY_WORDS.contains(&clean(w).as_str()))
    {
        return vec![Owner::Entity(raw.trim().to_owned())];
    }
    let text = all.join(" ");
    // "SMITH, JOHN & JANE" or "SMITH, JOHN AND JANE": one last name, several first names.
    if let Some((last, firsts)) = text.split_once(',') {
        let last = last.trim().to_owned();
        return split_joint(firsts)
            .into_iter()
            .filter_map(|given| {
                let given: Vec<String> = given
                    .split_whitespace()
                    .map(clean)
                    .filter(|w| !w.is_empty() && !SUFFIXES.contains(&w.as_str()))
                    .collect();
                given.first().map(|first| {
                    Owner::Person(PersonName {
                        first: first.clone(),
                        last: last.clone(),
                    })
                })
            })
            .collect();
    }
    // "JOHN A SMITH JR & JANE SMITH": first word is the first name, last is the surname.
    split_joint(&text)
        .into_iter()
        .filter_map(|part| {
            let ws: Vec<String> = part
                .split_whitespace()
                .map(clean)
                .filter(|w| !w.is_empty() && !SUFFIXES.contains(&w.as_str()))
                .collect();
            match ws.as_slice() {
                [] => None,
                [only] => Some(Owner::Entity(only.clone())),
                [first, .., last] => Some(Owner::Person(PersonName {
                    first: first.clone(),
                    last: last.clone(),
                })),
            }
        })
        .collect()
}

fn split_joint(s: &str) -> Vec<String> {
    s.split('&')
        .flat_map(|p| p.split(" AND "))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Does this owner name one of the applicants? Last names must be equal and first names
/// equal (an applicant's "Mary Ann" also matches the county's "MARY"). An initial alone
/// never matches a full first name: it is too weak a link for title.
pub fn owner_is_applicant(owner: &PersonName, applicants: &[PersonName]) -> bool {
    applicants.iter().any(|a| {
        a.last == owner.last && (a.first == owner.first || first_word(&a.first) == owner.first)
    })
}

fn first_word(s: &str) -> &str {
    s.split_whitespace().next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(first: &str, last: &str) -> Owner {
        Owner::Person(PersonName {
            first: first.into(),
            last: last.into(),
        })
    }

    #[test]
    fn parses_county_owner_formats() {
        let cases: Vec<(&str, Vec<Owner>)> = vec![
            ("SMITH, JOHN A", vec![p("JOHN", "SMITH")]),
            ("Smith, John", vec![p("JOHN", "SMITH")]),
            (
                "SMITH, JOHN A & JANE B",
                vec![p("JOHN", "SMITH"), p("JANE", "SMITH")],
            ),
            (
                "SMITH, JOHN AND JANE",
                vec![p("JOHN", "SMITH"), p("JANE", "SMITH")],
            ),
            ("John A. Smith Jr.", vec![p("JOHN", "SMITH")]),
            (
                "JOHN SMITH & MARY JONES",
                vec![p("JOHN", "SMITH"), p("MARY", "JONES")],
            ),
            ("O'NEIL, PAT", vec![p("PAT", "ONEIL")]),
            ("GARCIA-LOPEZ, ANA", vec![p("ANA", "GARCIA-LOPEZ")]),
            (
                "THE SMITH FAMILY TRUST",
                vec![Owner::Entity("THE SMITH FAMILY TRUST".into())],
            ),
            (
                "ACME HOLDINGS LLC",
                vec![Owner::Entity("ACME HOLDINGS LLC".into())],
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_owner(raw), want, "{raw}");
        }
    }

    #[test]
    fn matches_applicants_ignoring_case_and_punctuation() {
        let applicants = vec![person("John", "Smith"), person("Ana", "Garcia-Lopez")];
        let owner = |first: &str, last: &str| PersonName {
            first: first.into(),
            last: last.into(),
        };
        assert!(owner_is_applicant(&owner("JOHN", "SMITH"), &applicants));
        assert!(owner_is_applicant(
            &owner("ANA", "GARCIA-LOPEZ"),
            &applicants
        ));
        assert!(!owner_is_applicant(&owner("JANE", "SMITH"), &applicants));
        assert!(!owner_is_applicant(&owner("JOHN", "SMYTHE"), &applicants));
    }
}
