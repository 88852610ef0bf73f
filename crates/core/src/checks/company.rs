//! Company checks: contractor licence and business registration.

use chrono::NaiveDate;
use serde_json::json;

use super::Verdict;
use crate::domain::Measure;
use crate::evidence::BusinessRecord;
use crate::evidence::LicenseRecord;
use crate::policy::Policy;
use crate::reason::ReasonCode;

/// Active, unexpired, bonded, with a classification covering every financed measure.
pub fn contractor_license(
    license: Option<&LicenseRecord>,
    measures: &[Measure],
    policy: &Policy,
    today: NaiveDate,
) -> Verdict {
    let Some(license) = license else {
        return Verdict::fail(
            ReasonCode::LicenseNotFound,
            "The licence board has no licence with this number.",
            json!({}),
        );
    };
    let evidence = json!({
        "number": license.number,
        "state": license.state,
        "status": license.status,
        "classifications": license.classifications,
        "expires_on": license.expires_on,
        "bonded": license.bonded,
        "workers_comp": license.workers_comp,
        "business_name": license.business_name,
    });
    let mut findings = Vec::new();
    if license.status != "ACTIVE" {
        findings.push(Verdict::fail(
            ReasonCode::LicenseNotActive,
            format!("The contractor licence is {}.", license.status),
            json!({}),
        ));
    } else if license.expires_on < today {
        findings.push(Verdict::fail(
            ReasonCode::LicenseExpired,
            format!("The contractor licence expired on {}.", license.expires_on),
            json!({}),
        ));
    }
    if !license.bonded {
        findings.push(Verdict::fail(
            ReasonCode::LicenseNotBonded,
            "No contractor's bond is on file.",
            json!({}),
        ));
    }
    for m in measures {
        let accepted = policy
            .contractor
            .classifications
            .get(&m.kind)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if !license.classifications.iter().any(|c| accepted.contains(c)) {
            findings.push(Verdict::fail(
                ReasonCode::LicenseClassificationMissing,
                format!(
                    "No licence classification covers {} (needs one of {}).",
                    m.kind.as_str(),
                    accepted.join(", ")
                ),
                json!({}),
            ));
        }
    }
    Verdict::worst(
        findings,
        Verdict::pass(
            "The contractor licence is active and covers the work.",
            evidence,
        ),
    )
}

pub fn business_registration(record: Option<&BusinessRecord>) -> Verdict {
    let Some(record) = record else {
        return Verdict::fail(
            ReasonCode::BusinessNotRegistered,
            "The business registry has no record of this business.",
            json!({}),
        );
    };
    let evidence = json!({
        "name": record.name,
        "status": record.status,
        "formed_on": record.formed_on,
        "jurisdiction": record.jurisdiction,
    });
    if record.status != "ACTIVE" {
        return Verdict::fail(
            ReasonCode::BusinessNotInGoodStanding,
            format!("The business is {} in the registry.", record.status),
            evidence,
        );
    }
    Verdict::pass("The business is registered and active.", evidence)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{MeasureKind, Outcome::*};
    use crate::policy::LoadedPolicy;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn license() -> LicenseRecord {
        LicenseRecord {
            number: "123456".into(),
            state: "CA".into(),
            status: "ACTIVE".into(),
            classifications: vec!["C-46".into(), "C-20".into()],
            expires_on: d(2026, 11, 25),
            bonded: true,
            workers_comp: true,
            business_name: "SUNNY SOLAR INC".into(),
        }
    }

    #[test]
    fn license_table() {
        let policy = LoadedPolicy::default_policy().policy;
        let today = d(2026, 11, 25);
        let solar = vec![Measure {
            kind: MeasureKind::SolarPv,
            cost_cents: 1,
            description: String::new(),
        }];
        let roof = vec![Measure {
            kind: MeasureKind::Roof,
            cost_cents: 1,
            description: String::new(),
        }];
        let expired = LicenseRecord {
            expires_on: d(2026, 11, 24),
            ..license()
        };
        let suspended = LicenseRecord {
            status: "SUSPENDED".into(),
            ..license()
        };
        let unbonded = LicenseRecord {
            bonded: false,
            ..license()
        };
        let cases = [
            (Some(license()), &solar, Pass, vec![]),
            (Some(expired), &solar, Fail, vec!["LICENSE_EXPIRED"]),
            (Some(suspended), &solar, Fail, vec!["LICENSE_NOT_ACTIVE"]),
            (Some(unbonded), &solar, Fail, vec!["LICENSE_NOT_BONDED"]),
            (
                Some(license()),
                &roof,
                Fail,
                vec!["LICENSE_CLASSIFICATION_MISSING"],
            ),
            (None, &solar, Fail, vec!["LICENSE_NOT_FOUND"]),
        ];
        for (lic, measures, outcome, want) in cases {
            let v = contractor_license(lic.as_ref(), measures, &policy, today);
            let codes: Vec<&str> = v.reason_codes.iter().map(String::as_str).collect();
            assert_eq!((v.outcome, codes), (outcome, want), "{lic:?}");
        }
    }

    #[test]
    fn registration_table() {
        let rec = |status: &str| BusinessRecord {
            name: "SUNNY SOLAR INC".into(),
            status: status.into(),
            formed_on: d(2010, 1, 1),
            jurisdiction: "CA".into(),
            officers: vec![],
        };
        assert_eq!(business_registration(Some(&rec("ACTIVE"))).outcome, Pass);
        assert_eq!(
            business_registration(Some(&rec("DISSOLVED"))).reason_codes,
            vec!["BUSINESS_NOT_IN_GOOD_STANDING"]
        );
        assert_eq!(
            business_registration(None).reason_codes,
            vec!["BUSINESS_NOT_REGISTERED"]
        );
    }
}
