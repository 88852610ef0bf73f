use chrono::NaiveDate;

use super::*;
use crate::domain::Upstream;
use crate::evidence::{AssessmentRecord, BankruptcySearch, LicenseRecord, SanctionsHit};
use crate::test_fixtures::{found, run_inputs};

fn approved() -> RunInputs {
    let mut inputs = run_inputs(2_000_000, 10_000_000, 450_000, 12_000_000, 100_000);
    inputs.applicants[0].bankruptcy =
        found(BankruptcySearch { filings: vec![] }, Upstream::Identity);
    inputs.license = found(
        LicenseRecord {
            number: "1000001".into(),
            state: "CA".into(),
            status: "ACTIVE".into(),
            classifications: vec!["C-46".into()],
            expires_on: NaiveDate::from_ymd_opt(2028, 1, 1).unwrap(),
            bonded: true,
            workers_comp: true,
            business_name: "Sunny Solar".into(),
        },
        Upstream::Licensing,
    );
    inputs
}

fn record(inputs: &mut RunInputs) -> &mut PropertyRecord {
    match &mut inputs.property_record {
        Answer::Found { value, .. } => value,
        _ => unreachable!("the fixture has a record"),
    }
}

fn kinds(changes: &[EvidenceChange]) -> Vec<&str> {
    changes.iter().map(|c| c.kind.as_str()).collect()
}

#[test]
fn unchanged_evidence_has_no_changes() {
    assert_eq!(changes(&approved(), &approved()), vec![]);
}

/// Each change between approval and funding is named, with the figures an underwriter
/// needs and without naming a person.
#[test]
fn changes_table() {
    type Edit = fn(&mut RunInputs);
    let cases: Vec<(Edit, &str, &str)> = vec![
        (
            |i| {
                record(i).liens.push(LienRecord {
                    kind: "MECHANICS_LIEN".into(),
                    amount_cents: 420_000,
                    recorded_on: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
                })
            },
            "lien_recorded",
            "a $4,200.00 mechanics lien recorded 2026-12-01",
        ),
        (
            |i| record(i).owners = vec!["NEWMAN, PAT".into()],
            "owners_changed",
            "the owners of record changed (1 before, 1 now; vesting INDIVIDUAL)",
        ),
        (
            |i| record(i).tax.delinquent = true,
            "tax_delinquent",
            "the property taxes are now delinquent",
        ),
        (
            |i| record(i).mortgages[0].days_late = 60,
            "mortgage_late",
            "a mortgage is now 60 days late (was 0)",
        ),
        (
            |i| {
                record(i).assessments.push(AssessmentRecord {
                    program: "HERO".into(),
                    balance_cents: 2_500_000,
                    annual_payment_cents: 250_000,
                })
            },
            "assessment_recorded",
            "a new HERO assessment of $25,000.00 ($2,500.00 a year)",
        ),
        (
            |i| i.financing.amount_cents = 2_100_000,
            "amount_changed",
            "the final amount is $21,000.00 (approved: $20,000.00)",
        ),
        (
            |i| {
                i.applicants[0].bankruptcy = found(
                    BankruptcySearch {
                        filings: vec![crate::evidence::BankruptcyFiling {
                            chapter: 13,
                            filed_on: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
                            disposition: "OPEN".into(),
                            closed_on: None,
                        }],
                    },
                    Upstream::Identity,
                )
            },
            "bankruptcy_filed",
            "a chapter 13 bankruptcy filed 2026-11-20 is open",
        ),
        (
            |i| {
                i.applicants[0].sanctions.hits.push(SanctionsHit {
                    entry_id: 36_001,
                    matched_name: "LOPEZ, ANA".into(),
                    list_name: "LOPEZ, Ana".into(),
                    score: 0.97,
                    program: "SDNTK".into(),
                    is_alias: false,
                })
            },
            "sanctions_candidate",
            "a new sanctions list candidate: entry 36001 (SDNTK), score 0.97",
        ),
        (
            |i| {
                if let Answer::Found { value, .. } = &mut i.license {
                    value.status = "SUSPENDED".into();
                }
            },
            "license_status_changed",
            "the licence is now SUSPENDED (was ACTIVE)",
        ),
        (
            |i| {
                i.property_record = Answer::Failed {
                    reason_code: "UPSTREAM_TIMEOUT".into(),
                    message: "timed out".into(),
                    upstream: "property_records".into(),
                    kind: "timeout".into(),
                }
            },
            "not_rechecked",
            "property records could not be asked again (UPSTREAM_TIMEOUT)",
        ),
    ];
    for (edit, kind, description) in cases {
        let mut now = approved();
        edit(&mut now);
        let got = changes(&approved(), &now);
        assert_eq!(kinds(&got), vec![kind], "{got:?}");
        assert_eq!(got[0].description, description);
        for name in ["NEWMAN", "LOPEZ", "Lopez"] {
            assert!(
                !got[0].description.contains(name),
                "no names in descriptions"
            );
        }
    }
}

#[test]
fn the_verdict_table() {
    let codes = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let trust = codes(&["OWNER_IS_ENTITY"]);
    // (re-run's decision, its reasons, the codes an underwriter accepted, verdict)
    type Case<'a> = (Decision, Vec<String>, Option<&'a [String]>, FundingVerdict);
    let cases: [Case; 6] = [
        (Decision::Approved, vec![], None, FundingVerdict::Clear),
        (Decision::Refer, trust.clone(), None, FundingVerdict::Hold),
        (
            Decision::Declined,
            codes(&["INVOLUNTARY_LIEN"]),
            None,
            FundingVerdict::Hold,
        ),
        // Approved by an underwriter despite a trust: referring again for the trust
        // alone is what they accepted.
        (
            Decision::Refer,
            trust.clone(),
            Some(&trust),
            FundingVerdict::Clear,
        ),
        // Something new besides it is not.
        (
            Decision::Refer,
            codes(&["OWNER_IS_ENTITY", "SANCTIONS_NEAR_MATCH"]),
            Some(&trust),
            FundingVerdict::Hold,
        ),
        (
            Decision::Declined,
            trust.clone(),
            Some(&trust),
            FundingVerdict::Hold,
        ),
    ];
    for (decision, reasons, accepted, want) in cases {
        assert_eq!(
            FundingVerdict::of(decision, &reasons, accepted),
            want,
            "{decision:?} {reasons:?}"
        );
    }
    for v in [FundingVerdict::Clear, FundingVerdict::Hold] {
        assert_eq!(FundingVerdict::parse(v.as_str()), Some(v));
    }
}
