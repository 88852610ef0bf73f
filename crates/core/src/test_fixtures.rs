//! Inputs of runs for the tests of the pure modules: one applicant on a $400,000
//! property in Fresno, every answer found.

use chrono::{NaiveDate, Utc};

use crate::domain::{DataSource, Financing, Upstream};
use crate::evidence::{AvmEstimate, IncomeVerification, MortgageRecord, PropertyRecord, TaxStatus};
use crate::judge::{Answer, ApplicantInputs, RunInputs, Screened};

fn source(upstream: Upstream) -> DataSource {
    DataSource {
        upstream,
        fetched_at: Utc::now(),
        cached: false,
        stale: false,
        cache: Default::default(),
        passed_over: Vec::new(),
    }
}

pub fn found<T>(value: T, upstream: Upstream) -> Answer<T> {
    Answer::Found {
        value,
        source: source(upstream),
    }
}

/// A household with `income` a year and `debts` a month, on a $400,000 property
/// with a `mortgage` balance and `tax` a year, asking for `amount` over 20 years.
pub fn run_inputs(amount: i64, mortgage: i64, tax: i64, income: i64, debts: i64) -> RunInputs {
    let screened = |name: &str| Screened {
        name: name.into(),
        loaded: true,
        hits: vec![],
        source: None,
    };
    RunInputs {
        as_of: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
        state: "CA".into(),
        measures: vec![],
        financing: Financing {
            amount_cents: amount,
            term_years: 20,
        },
        property_record: found(
            PropertyRecord {
                apn: "1".into(),
                line1: "1 MAIN ST".into(),
                city: "FRESNO".into(),
                state: "CA".into(),
                postal_code: "93701".into(),
                owners: vec!["LOPEZ, ANA".into()],
                vesting: "INDIVIDUAL".into(),
                property_type: "SINGLE_FAMILY".into(),
                units: 1,
                assessed_value_cents: 40_000_000,
                annual_tax_cents: tax,
                tax: TaxStatus {
                    delinquent: false,
                    late_payments: vec![],
                },
                mortgages: vec![MortgageRecord {
                    lender: "BANK".into(),
                    balance_cents: mortgage,
                    days_late: 0,
                    late_payments_12m: 0,
                    notice_of_default: false,
                }],
                liens: vec![],
                assessments: vec![],
            },
            Upstream::PropertyRecords,
        ),
        avm: found(
            AvmEstimate {
                value_cents: 40_000_000,
                confidence: 90,
                low_cents: 38_000_000,
                high_cents: 42_000_000,
                as_of: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
            },
            Upstream::Valuation,
        ),
        applicants: vec![ApplicantInputs {
            first_name: "Ana".into(),
            last_name: "Lopez".into(),
            display_name: "Ana Lopez".into(),
            identity: Answer::NotFound,
            bankruptcy: Answer::NotFound,
            income: found(
                IncomeVerification {
                    verified_annual_income_cents: income,
                    monthly_debt_payments_cents: debts,
                },
                Upstream::Identity,
            ),
            sanctions: screened("Ana Lopez"),
        }],
        license: Answer::NotFound,
        business: Answer::NotFound,
        company_sanctions: screened("Sunny Solar"),
    }
}
