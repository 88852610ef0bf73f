//! Domain ⇄ protobuf conversions. Nothing here validates: see `validate.rs`.

use chrono::{DateTime, TimeZone, Utc};
use prost_types::value::Kind;

use crate::proto;
use dossier_core::adverse_action::{self, NoticeSettings};
use dossier_core::domain::{self, ApplicationStatus, CheckKind, Decision, MeasureKind, Outcome};

pub fn measure_kind_from_proto(k: proto::MeasureKind) -> Option<MeasureKind> {
    use proto::MeasureKind as P;
    Some(match k {
        P::Unspecified => return None,
        P::SolarPv => MeasureKind::SolarPv,
        P::BatteryStorage => MeasureKind::BatteryStorage,
        P::Hvac => MeasureKind::Hvac,
        P::Roof => MeasureKind::Roof,
        P::Windows => MeasureKind::Windows,
        P::Insulation => MeasureKind::Insulation,
        P::WaterHeater => MeasureKind::WaterHeater,
        P::SeismicRetrofit => MeasureKind::SeismicRetrofit,
    })
}

pub fn measure_kind_to_proto(k: MeasureKind) -> proto::MeasureKind {
    use proto::MeasureKind as P;
    match k {
        MeasureKind::SolarPv => P::SolarPv,
        MeasureKind::BatteryStorage => P::BatteryStorage,
        MeasureKind::Hvac => P::Hvac,
        MeasureKind::Roof => P::Roof,
        MeasureKind::Windows => P::Windows,
        MeasureKind::Insulation => P::Insulation,
        MeasureKind::WaterHeater => P::WaterHeater,
        MeasureKind::SeismicRetrofit => P::SeismicRetrofit,
    }
}

pub fn check_kind_to_proto(k: CheckKind) -> proto::CheckKind {
    use proto::CheckKind as P;
    match k {
        CheckKind::PropertyOwnership => P::PropertyOwnership,
        CheckKind::PropertyEligibility => P::PropertyEligibility,
        CheckKind::PropertyTax => P::PropertyTax,
        CheckKind::Mortgage => P::Mortgage,
        CheckKind::InvoluntaryLiens => P::InvoluntaryLiens,
        CheckKind::Valuation => P::Valuation,
        CheckKind::AssessmentLimit => P::AssessmentLimit,
        CheckKind::Term => P::Term,
        CheckKind::Identity => P::Identity,
        CheckKind::Bankruptcy => P::Bankruptcy,
        CheckKind::PersonSanctions => P::PersonSanctions,
        CheckKind::AbilityToPay => P::AbilityToPay,
        CheckKind::ContractorLicense => P::ContractorLicense,
        CheckKind::BusinessRegistration => P::BusinessRegistration,
        CheckKind::CompanySanctions => P::CompanySanctions,
    }
}

pub fn outcome_to_proto(o: Outcome) -> proto::CheckOutcome {
    match o {
        Outcome::Pass => proto::CheckOutcome::Pass,
        Outcome::Fail => proto::CheckOutcome::Fail,
        Outcome::Review => proto::CheckOutcome::Review,
        Outcome::Unavailable => proto::CheckOutcome::Unavailable,
        Outcome::NotRun => proto::CheckOutcome::NotRun,
    }
}

pub fn decision_to_proto(d: Option<Decision>) -> proto::Decision {
    match d {
        None => proto::Decision::Unspecified,
        Some(Decision::Approved) => proto::Decision::Approved,
        Some(Decision::Declined) => proto::Decision::Declined,
        Some(Decision::Refer) => proto::Decision::Refer,
    }
}

pub fn decision_from_proto(d: proto::Decision) -> Option<Decision> {
    match d {
        proto::Decision::Unspecified => None,
        proto::Decision::Approved => Some(Decision::Approved),
        proto::Decision::Declined => Some(Decision::Declined),
        proto::Decision::Refer => Some(Decision::Refer),
    }
}

pub fn status_to_proto(s: ApplicationStatus) -> proto::ApplicationStatus {
    match s {
        ApplicationStatus::Pending => proto::ApplicationStatus::Pending,
        ApplicationStatus::Running => proto::ApplicationStatus::Running,
        ApplicationStatus::Decided => proto::ApplicationStatus::Decided,
    }
}

pub fn status_from_proto(s: proto::ApplicationStatus) -> Option<ApplicationStatus> {
    match s {
        proto::ApplicationStatus::Unspecified => None,
        proto::ApplicationStatus::Pending => Some(ApplicationStatus::Pending),
        proto::ApplicationStatus::Running => Some(ApplicationStatus::Running),
        proto::ApplicationStatus::Decided => Some(ApplicationStatus::Decided),
    }
}

pub fn cache_outcome_to_proto(c: dossier_core::domain::CacheOutcome) -> proto::CacheOutcome {
    use dossier_core::domain::CacheOutcome as C;
    match c {
        C::Fetched => proto::CacheOutcome::Fetched,
        C::L1Hit => proto::CacheOutcome::L1Hit,
        C::L2Hit => proto::CacheOutcome::L2Hit,
        C::Coalesced => proto::CacheOutcome::Coalesced,
        C::Stale => proto::CacheOutcome::Stale,
        C::Local => proto::CacheOutcome::Local,
    }
}

pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

pub fn from_timestamp(t: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(t.seconds, u32::try_from(t.nanos).ok()?)
        .single()
}

pub fn json_to_struct(v: &serde_json::Value) -> Option<prost_types::Struct> {
    match json_to_value(v).kind {
        Some(Kind::StructValue(s)) => Some(s),
        _ => None,
    }
}

fn json_to_value(v: &serde_json::Value) -> prost_types::Value {
    use serde_json::Value as J;
    let kind = match v {
        J::Null => Kind::NullValue(0),
        J::Bool(b) => Kind::BoolValue(*b),
        J::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        J::String(s) => Kind::StringValue(s.clone()),
        J::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.iter().map(json_to_value).collect(),
        }),
        J::Object(o) => Kind::StructValue(prost_types::Struct {
            fields: o
                .iter()
                .map(|(k, v)| (k.clone(), json_to_value(v)))
                .collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

pub fn check_result(r: &domain::CheckResult) -> proto::CheckResult {
    proto::CheckResult {
        kind: check_kind_to_proto(r.kind) as i32,
        outcome: outcome_to_proto(r.outcome) as i32,
        reason_codes: r.reason_codes.clone(),
        message: r.message.clone(),
        subject: r.subject.clone(),
        upstream: r
            .source
            .as_ref()
            .map(|s| s.upstream.as_str().to_owned())
            .unwrap_or_default(),
        fetched_time: r.source.as_ref().map(|s| timestamp(s.fetched_at)),
        cached: r.source.as_ref().is_some_and(|s| s.cached),
        stale: r.source.as_ref().is_some_and(|s| s.stale),
        evidence: json_to_struct(&r.evidence),
        finished_time: Some(timestamp(r.finished_at)),
        passed_over: r
            .source
            .iter()
            .flat_map(|s| &s.passed_over)
            .map(|p| proto::PassedOver {
                upstream: p.upstream.as_str().to_owned(),
                reason: p.reason.clone(),
            })
            .collect(),
    }
}

/// A report as callers see it; `notices` names the lender and agencies on the
/// adverse-action notice of a decline.
pub fn report(r: &domain::Report, notices: &NoticeSettings) -> proto::Report {
    let d = r.decision.as_ref();
    proto::Report {
        application_id: r.application_id.to_string(),
        status: status_to_proto(r.status) as i32,
        decision: decision_to_proto(d.map(|d| d.decision)) as i32,
        reason_codes: d.map(|d| d.reason_codes.clone()).unwrap_or_default(),
        checks: r.checks.iter().map(check_result).collect(),
        complete: r.complete,
        idempotency_key: r.idempotency_key.clone(),
        rails_application_id: r.rails_application_id.clone().unwrap_or_default(),
        policy_version: d.map(|d| d.policy_version.clone()).unwrap_or_default(),
        create_time: Some(timestamp(r.created_at)),
        decide_time: d.map(|d| timestamp(d.decided_at)),
        figures: d.and_then(|d| json_to_struct(&d.figures)),
        review: r.review.as_ref().map(|v| proto::Review {
            outcome: if v.approve {
                proto::ReviewOutcome::Approve
            } else {
                proto::ReviewOutcome::Decline
            } as i32,
            note: v.note.clone(),
            reviewer: v.reviewer.clone(),
            review_time: Some(timestamp(v.reviewed_at)),
        }),
        final_decision: decision_to_proto(r.final_decision()) as i32,
        run_count: r.run_count,
        amount_that_would_pass_cents: d.and_then(|d| d.amount_that_would_pass_cents()),
        adverse_action: d
            .filter(|_| r.final_decision() == Some(domain::Decision::Declined))
            .map(|d| adverse_action(&adverse_action::content(&d.reason_codes, notices))),
        vendor_cost: d.and_then(|d| d.vendor_cost).map(|c| proto::VendorCost {
            mode: c.mode.as_str().to_owned(),
            spent_cents: c.spent_cents,
            avoided_cents: c.avoided_cents,
        }),
    }
}

pub fn adverse_action(n: &adverse_action::NoticeContent) -> proto::AdverseActionNotice {
    let contact = |c: &adverse_action::Contact| proto::NoticeContact {
        name: c.name.clone(),
        address: c.address.clone(),
        phone: c.phone.clone(),
        website: c.website.clone().unwrap_or_default(),
    };
    proto::AdverseActionNotice {
        reasons: n
            .reasons
            .iter()
            .map(|r| proto::PrincipalReason {
                statement: r.statement.clone(),
                reason_codes: r.reason_codes.clone(),
            })
            .collect(),
        consumer_reports: n
            .consumer_reports
            .iter()
            .map(|c| proto::ConsumerReportDisclosure {
                upstream: c.upstream.clone(),
                used_for: c.used_for.clone(),
                agency: c.agency.as_ref().map(contact),
            })
            .collect(),
        lender: n.lender.as_ref().map(contact),
        rights: n.rights.clone(),
        missing: n.missing.clone(),
    }
}

/// A funding check as callers see it; `notices` names who a declined HOLD's notice
/// names.
pub fn funding_check(
    f: &dossier_store::funding::FundingCheck,
    notices: &NoticeSettings,
) -> proto::FundingCheck {
    use dossier_core::funding::FundingVerdict;
    proto::FundingCheck {
        funding_check_id: f.id.to_string(),
        application_id: f.application_id.to_string(),
        approval_decision_id: f.approval_run_id.to_string(),
        verdict: match f.verdict {
            FundingVerdict::Clear => proto::FundingVerdict::Clear,
            FundingVerdict::Hold => proto::FundingVerdict::Hold,
        } as i32,
        reason_codes: f.reason_codes.clone(),
        changes: f
            .changes
            .iter()
            .map(|c| proto::EvidenceChange {
                subject: c.subject.clone(),
                kind: c.kind.clone(),
                description: c.description.clone(),
            })
            .collect(),
        checks: f.checks.iter().map(check_result).collect(),
        financing: Some(proto::Financing {
            amount_cents: f.financing.amount_cents,
            term_years: f.financing.term_years,
        }),
        policy_version: f.policy_version.clone(),
        check_time: Some(timestamp(f.checked_at)),
        resolution: f.resolution.as_ref().map(|r| proto::FundingResolution {
            outcome: if r.clear {
                proto::FundingReviewOutcome::Clear
            } else {
                proto::FundingReviewOutcome::Decline
            } as i32,
            reviewer: r.reviewer.clone(),
            note: r.note.clone(),
            resolve_time: Some(timestamp(r.resolved_at)),
            adverse_action: (!r.clear)
                .then(|| adverse_action(&adverse_action::content(&f.reason_codes, notices))),
        }),
    }
}

pub fn summary(s: &domain::ReportSummary) -> proto::ReportSummary {
    proto::ReportSummary {
        application_id: s.application_id.to_string(),
        status: status_to_proto(s.status) as i32,
        decision: decision_to_proto(s.decision) as i32,
        reason_codes: s.reason_codes.clone(),
        create_time: Some(timestamp(s.created_at)),
        decide_time: s.decided_at.map(timestamp),
        idempotency_key: s.idempotency_key.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measure_kinds_round_trip() {
        for k in MeasureKind::ALL {
            assert_eq!(measure_kind_from_proto(measure_kind_to_proto(k)), Some(k));
        }
    }

    #[test]
    fn json_becomes_struct() {
        let s = json_to_struct(&serde_json::json!({"a": 1, "b": [true, null], "c": {"d": "e"}}))
            .unwrap();
        assert_eq!(s.fields.len(), 3);
        assert!(json_to_struct(&serde_json::json!(3)).is_none());
    }
}
