use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// A US Social Security number, nine ASCII digits. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Ssn(String);

impl Ssn {
    /// Parses "123-45-6789" or "123456789". Rejects numbers the SSA never issues
    /// (area 000, 666 or 900–999, group 00, serial 0000).
    pub fn parse(input: &str) -> Result<Ssn, &'static str> {
        let digits: String = input.chars().filter(|c| *c != '-' && *c != ' ').collect();
        if digits.len() != 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err("must be nine digits, optionally written as AAA-GG-SSSS");
        }
        let area: u32 = digits[0..3].parse().expect("digits");
        let group: u32 = digits[3..5].parse().expect("digits");
        let serial: u32 = digits[5..9].parse().expect("digits");
        if area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0 {
            return Err("is not a number the Social Security Administration issues");
        }
        Ok(Ssn(digits))
    }

    /// The nine digits. Call only to encrypt, hash, or send to the identity vendor.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// "***-**-6789", safe to show to underwriters.
    pub fn masked(&self) -> String {
        format!("***-**-{}", &self.0[5..])
    }
}

impl std::fmt::Debug for Ssn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ssn(<redacted>)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub line1: String,
    pub line2: String,
    pub city: String,
    pub state: String,
    pub postal_code: String,
}

/// A person applying. Holds PII (`ssn`, `date_of_birth`): the manual `Debug` redacts them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applicant {
    pub first_name: String,
    pub middle_name: String,
    pub last_name: String,
    pub suffix: String,
    pub ssn: Ssn,
    pub date_of_birth: NaiveDate,
    pub email: String,
    pub stated_annual_income_cents: i64,
}

impl Applicant {
    pub fn display_name(&self) -> String {
        [
            &self.first_name,
            &self.middle_name,
            &self.last_name,
            &self.suffix,
        ]
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(" ")
    }
}

impl std::fmt::Debug for Applicant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applicant")
            .field("name", &self.display_name())
            .field("ssn", &"<redacted>")
            .field("date_of_birth", &"<redacted>")
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Property {
    pub address: Address,
    pub apn: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contractor {
    pub business_name: String,
    pub license_number: String,
    pub license_state: String,
}

/// Kinds of improvement. The string forms are stable (stored, and used in policy files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeasureKind {
    SolarPv,
    BatteryStorage,
    Hvac,
    Roof,
    Windows,
    Insulation,
    WaterHeater,
    SeismicRetrofit,
}

impl MeasureKind {
    pub const ALL: [MeasureKind; 8] = [
        MeasureKind::SolarPv,
        MeasureKind::BatteryStorage,
        MeasureKind::Hvac,
        MeasureKind::Roof,
        MeasureKind::Windows,
        MeasureKind::Insulation,
        MeasureKind::WaterHeater,
        MeasureKind::SeismicRetrofit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MeasureKind::SolarPv => "solar_pv",
            MeasureKind::BatteryStorage => "battery_storage",
            MeasureKind::Hvac => "hvac",
            MeasureKind::Roof => "roof",
            MeasureKind::Windows => "windows",
            MeasureKind::Insulation => "insulation",
            MeasureKind::WaterHeater => "water_heater",
            MeasureKind::SeismicRetrofit => "seismic_retrofit",
        }
    }

    pub fn parse(s: &str) -> Option<MeasureKind> {
        MeasureKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measure {
    pub kind: MeasureKind,
    pub cost_cents: i64,
    pub description: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Financing {
    pub amount_cents: i64,
    pub term_years: i32,
}

/// A validated application. Only `api/validate.rs` and the Rails conversion build one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Application {
    pub applicants: Vec<Applicant>,
    pub property: Property,
    pub contractor: Contractor,
    pub measures: Vec<Measure>,
    pub financing: Financing,
}

/// Where an application came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplicationSource {
    Inline(Box<Application>),
    Rails { id: String },
}

/// The two-letter USPS codes of the states, DC and the territories.
pub const US_STATES: &[&str] = &[
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN", "IA",
    "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM",
    "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA",
    "WV", "WI", "WY", "PR", "GU", "VI", "AS", "MP",
];

pub fn is_us_state(code: &str) -> bool {
    US_STATES.contains(&code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssn_accepts_dashes_and_rejects_unissued_numbers() {
        let cases = [
            ("123-45-6789", true),
            ("123456789", true),
            ("12345678", false),
            ("12345678a", false),
            ("000-12-3456", false),
            ("666-12-3456", false),
            ("900-12-3456", false),
            ("123-00-4567", false),
            ("123-45-0000", false),
        ];
        for (input, ok) in cases {
            assert_eq!(Ssn::parse(input).is_ok(), ok, "{input}");
        }
    }

    #[test]
    fn ssn_never_prints() {
        let ssn = Ssn::parse("123-45-6789").unwrap();
        assert!(!format!("{ssn:?}").contains("6789"));
        assert_eq!(ssn.masked(), "***-**-6789");
    }
}
