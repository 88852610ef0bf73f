//! Adverse-action notices: what a declined applicant is told and why. The lender must
//! give the principal reasons for the decline (Regulation B, 12 CFR 1002.9: at most
//! four is the accepted practice), and when information from a consumer reporting
//! agency contributed to it, that agency's name and contact details, that it did not
//! make the decision, and the applicant's right to a free copy of the report and to
//! dispute it (FCRA § 615(a)).
//!
//! The content is a pure function of the decision's reason codes and the notice
//! settings (`dossier serve --notices-file`); Rails, the report and `dossier notice`
//! all show the same content. Names and addresses of applicants are not part of it:
//! the letter is addressed by whoever sends it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::{Decision, DecisionNotice, Upstream};
use crate::reason::ReasonCode;

/// At most this many principal reasons are stated.
pub const MAX_PRINCIPAL_REASONS: usize = 4;

/// How to reach an organisation named on a notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    pub name: String,
    /// Postal address, one string (lines separated by ", " or newlines).
    pub address: String,
    pub phone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
}

/// The notices file: the lender named as the creditor, and the consumer reporting
/// agency behind each upstream whose data is a consumer report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticeSettings {
    #[serde(default)]
    pub lender: Option<Contact>,
    /// By upstream name (`identity`: identity, bankruptcy and income answers).
    #[serde(default)]
    pub consumer_reporting: BTreeMap<String, Contact>,
}

impl NoticeSettings {
    /// Parses a notices file; unknown keys and upstreams that furnish no consumer
    /// report are refused, naming them.
    pub fn parse(text: &str) -> Result<NoticeSettings, String> {
        let settings: NoticeSettings = toml::from_str(text).map_err(|e| e.to_string())?;
        for upstream in settings.consumer_reporting.keys() {
            if !CONSUMER_REPORT_UPSTREAMS.contains(&upstream.as_str()) {
                return Err(format!(
                    "[consumer_reporting.{upstream}]: only these upstreams furnish consumer reports: {}",
                    CONSUMER_REPORT_UPSTREAMS.join(", ")
                ));
            }
        }
        Ok(settings)
    }
}

/// Upstreams whose answers are consumer reports.
pub const CONSUMER_REPORT_UPSTREAMS: &[&str] = &[Upstream::Identity.as_str()];

/// One principal reason: the statement the applicant reads and the codes behind it
/// (several codes can share one statement, and are then stated once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrincipalReason {
    pub statement: String,
    pub reason_codes: Vec<String>,
}

/// The disclosure owed for one consumer reporting agency whose report contributed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerReportDisclosure {
    /// The upstream that furnished the report.
    pub upstream: String,
    /// What the report was used for ("identity verification", …).
    pub used_for: Vec<String>,
    /// From the notices file; None when it is not configured (the notice is then
    /// incomplete and says so in `missing`).
    pub agency: Option<Contact>,
}

/// The content of the notice owed for a declined application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeContent {
    pub reasons: Vec<PrincipalReason>,
    pub consumer_reports: Vec<ConsumerReportDisclosure>,
    pub lender: Option<Contact>,
    /// The applicant's rights ([`NoticeContent::RIGHTS`]) when a consumer report
    /// contributed; empty otherwise.
    pub rights: Vec<String>,
    /// Settings the notice needs but the notices file lacks, by key: a notice with
    /// anything missing must not be sent as it is.
    pub missing: Vec<String>,
}

impl NoticeContent {
    /// The applicant's rights when a consumer report contributed (FCRA § 615(a)).
    pub const RIGHTS: [&'static str; 3] = [
        "The consumer reporting agency named above did not make this decision and cannot explain why it was made.",
        "You have the right to a free copy of your report from that agency if you ask for it within 60 days of receiving this notice.",
        "You have the right to dispute with that agency the accuracy or completeness of any information in your report.",
    ];

    /// The Equal Credit Opportunity Act notice every adverse-action notice carries
    /// (12 CFR 1002.9(b)(1)); the lender's regulator is named by whoever sends it.
    pub const ECOA_STATEMENT: &'static str = "The federal Equal Credit Opportunity Act prohibits creditors from discriminating against credit applicants on the basis of race, color, religion, national origin, sex, marital status, or age (provided the applicant has the capacity to enter into a binding contract); because all or part of the applicant's income derives from any public assistance program; or because the applicant has in good faith exercised any right under the Consumer Credit Protection Act.";

    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
    }
}

/// The consumer report behind a code, if it comes from one: (upstream, what for).
/// Identity, bankruptcy and income are the identity vendor's answers; UNAVAILABLE
/// codes carry no information about the applicant, so no report contributed.
fn consumer_report_use(code: ReasonCode) -> Option<(&'static str, &'static str)> {
    use ReasonCode::*;
    let what = match code {
        IdentityFlagged | IdentityNotVerified => "identity verification",
        BankruptcyOpen
        | BankruptcyRecent
        | BankruptcyLatePayments
        | BankruptcyPaymentHistoryUnknown => "bankruptcy records",
        IncomeNotVerified | DebtToIncomeExceeded | ResidualIncomeInsufficient => {
            "income and debt verification"
        }
        _ => return None,
    };
    Some((Upstream::Identity.as_str(), what))
}

/// Codes that only say some data could not be obtained: stated after the reasons
/// that are about the applicant, the property or the contractor.
fn says_data_unavailable(code: ReasonCode) -> bool {
    use ReasonCode::*;
    matches!(
        code,
        SanctionsListUnavailable
            | UpstreamTimeout
            | DeadlineExceeded
            | UpstreamRateLimited
            | UpstreamError
            | UpstreamAuthFailed
            | UpstreamCircuitOpen
            | UpstreamBadResponse
    )
}

/// The notice a decision calls for: None unless it is a decline.
///
/// Ordering rule (docs/reason-codes.md, "Adverse-action notices"): the decision's
/// codes in the order it lists them (the order of the checks: property, term,
/// applicants, household, contractor), the codes that only say data could not be
/// obtained moved after the others; codes with the same statement stated once; the
/// first four statements.
pub fn notice_for(decision: &DecisionNotice, settings: &NoticeSettings) -> Option<NoticeContent> {
    if decision.decision != Decision::Declined {
        return None;
    }
    Some(content(&decision.reason_codes, settings))
}

/// The notice content for a decline driven by `reason_codes`.
pub fn content(reason_codes: &[String], settings: &NoticeSettings) -> NoticeContent {
    let parsed: Vec<(&String, Option<ReasonCode>)> = reason_codes
        .iter()
        .map(|c| (c, ReasonCode::parse(c)))
        .collect();
    // A stable sort keeps the decision's order within each group.
    let mut ordered = parsed.clone();
    ordered.sort_by_key(|(_, code)| code.is_some_and(says_data_unavailable));
    let mut reasons: Vec<PrincipalReason> = Vec::new();
    for (text, code) in &ordered {
        // A code this release does not know (written by a later one) still counts.
        let statement = code
            .map(ReasonCode::consumer_statement)
            .unwrap_or("Other reasons: ask us for the details of this decision.");
        if let Some(r) = reasons.iter_mut().find(|r| r.statement == statement) {
            if !r.reason_codes.contains(text) {
                r.reason_codes.push((*text).clone());
            }
        } else if reasons.len() < MAX_PRINCIPAL_REASONS {
            reasons.push(PrincipalReason {
                statement: statement.to_owned(),
                reason_codes: vec![(*text).clone()],
            });
        }
    }
    // Every driving code counts for the disclosure, stated among the four or not: the
    // report contributed to the decision either way.
    let mut uses: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (upstream, what) in parsed
        .iter()
        .filter_map(|(_, c)| c.and_then(consumer_report_use))
    {
        let used = uses.entry(upstream).or_default();
        if !used.iter().any(|u| u == what) {
            used.push(what.to_owned());
        }
    }
    let mut missing = Vec::new();
    let consumer_reports: Vec<ConsumerReportDisclosure> = uses
        .into_iter()
        .map(|(upstream, used_for)| {
            let agency = settings.consumer_reporting.get(upstream).cloned();
            if agency.is_none() {
                missing.push(format!("consumer_reporting.{upstream}"));
            }
            ConsumerReportDisclosure {
                upstream: upstream.to_owned(),
                used_for,
                agency,
            }
        })
        .collect();
    if settings.lender.is_none() {
        missing.push("lender".to_owned());
    }
    let rights = if consumer_reports.is_empty() {
        Vec::new()
    } else {
        NoticeContent::RIGHTS
            .iter()
            .map(|r| r.to_string())
            .collect()
    };
    NoticeContent {
        reasons,
        consumer_reports,
        lender: settings.lender.clone(),
        rights,
        missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agency() -> Contact {
        Contact {
            name: "Acme Consumer Data".into(),
            address: "PO Box 100, Atlanta, GA 30301".into(),
            phone: "1-800-555-0100".into(),
            website: Some("https://acme.example/disputes".into()),
        }
    }

    fn settings() -> NoticeSettings {
        NoticeSettings {
            lender: Some(Contact {
                name: "Golden State PACE".into(),
                address: "1 Capitol Mall, Sacramento, CA 95814".into(),
                phone: "1-800-555-0199".into(),
                website: None,
            }),
            consumer_reporting: [("identity".to_owned(), agency())].into(),
        }
    }

    fn codes(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn statements(n: &NoticeContent) -> Vec<&str> {
        n.reasons.iter().map(|r| r.statement.as_str()).collect()
    }

    #[test]
    fn reasons_in_order_shared_statements_once_at_most_four() {
        let n = content(
            &codes(&[
                "PROPERTY_TAX_DELINQUENT",
                "UPSTREAM_TIMEOUT",
                "ASSESSMENT_LIMIT_EXCEEDED",
                "IDENTITY_NOT_VERIFIED",
                "IDENTITY_FLAGGED",
                "DEBT_TO_INCOME_EXCEEDED",
                "LICENSE_EXPIRED",
            ]),
            &settings(),
        );
        assert_eq!(
            statements(&n),
            vec![
                ReasonCode::PropertyTaxDelinquent.consumer_statement(),
                ReasonCode::AssessmentLimitExceeded.consumer_statement(),
                ReasonCode::IdentityNotVerified.consumer_statement(),
                ReasonCode::DebtToIncomeExceeded.consumer_statement(),
            ]
        );
        // Two identity codes share one statement.
        assert_eq!(
            n.reasons[2].reason_codes,
            codes(&["IDENTITY_NOT_VERIFIED", "IDENTITY_FLAGGED"])
        );
        // The report contributed through identity and income: one agency, both uses.
        assert_eq!(n.consumer_reports.len(), 1);
        assert_eq!(
            n.consumer_reports[0].used_for,
            vec!["identity verification", "income and debt verification"]
        );
        assert_eq!(n.consumer_reports[0].agency, Some(agency()));
        assert_eq!(n.rights.len(), NoticeContent::RIGHTS.len());
        assert!(n.is_complete());
    }

    #[test]
    fn no_disclosure_without_a_consumer_report() {
        let n = content(
            &codes(&["PROPERTY_TAX_DELINQUENT", "INVOLUNTARY_LIEN"]),
            &settings(),
        );
        assert!(n.consumer_reports.is_empty());
        assert!(n.rights.is_empty());
        assert_eq!(n.reasons.len(), 2);
        // An identity vendor that could not be reached furnished nothing.
        let n = content(&codes(&["UPSTREAM_TIMEOUT"]), &settings());
        assert!(n.consumer_reports.is_empty());
    }

    #[test]
    fn a_report_beyond_the_fourth_reason_is_still_disclosed() {
        let n = content(
            &codes(&[
                "OWNER_NOT_APPLICANT",
                "PROPERTY_TAX_DELINQUENT",
                "MORTGAGE_DELINQUENT",
                "INVOLUNTARY_LIEN",
                "BANKRUPTCY_OPEN",
            ]),
            &settings(),
        );
        assert_eq!(n.reasons.len(), 4);
        assert_eq!(n.consumer_reports[0].used_for, vec!["bankruptcy records"]);
    }

    #[test]
    fn missing_settings_are_named() {
        let n = content(&codes(&["BANKRUPTCY_OPEN"]), &NoticeSettings::default());
        assert_eq!(n.missing, vec!["consumer_reporting.identity", "lender"]);
        assert_eq!(n.consumer_reports[0].agency, None);
        assert!(!n.is_complete());
    }

    #[test]
    fn the_notices_file_is_checked() {
        let ok = NoticeSettings::parse(
            "[lender]\nname = \"L\"\naddress = \"A\"\nphone = \"P\"\n\
             [consumer_reporting.identity]\nname = \"N\"\naddress = \"A\"\nphone = \"P\"\n",
        )
        .unwrap();
        assert_eq!(ok.consumer_reporting["identity"].name, "N");
        let err = NoticeSettings::parse(
            "[consumer_reporting.valuation]\nname = \"N\"\naddress = \"A\"\nphone = \"P\"\n",
        )
        .unwrap_err();
        assert!(err.contains("consumer_reporting.valuation"), "{err}");
        assert!(NoticeSettings::parse("[lender]\nnme = \"x\"\n").is_err());
    }

    /// docs/reason-codes.md lists, under "Adverse-action notices", the statement of
    /// every code exactly as the applicant reads it.
    #[test]
    fn docs_list_every_consumer_statement() {
        let doc = include_str!("../../../docs/reason-codes.md");
        let section = doc
            .split("## Adverse-action notices")
            .nth(1)
            .expect("docs/reason-codes.md has an \"Adverse-action notices\" section");
        let documented: BTreeMap<&str, &str> = section
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| {
                let (code, rest) = l.split_once("` | ")?;
                Some((code, rest.trim_end_matches(" |").trim()))
            })
            .collect();
        for &code in ReasonCode::ALL {
            assert_eq!(
                documented.get(code.as_str()).copied(),
                Some(code.consumer_statement()),
                "docs/reason-codes.md: the statement of {code}"
            );
        }
        assert_eq!(
            documented.len(),
            ReasonCode::ALL.len(),
            "unknown codes in the section"
        );
    }
}
