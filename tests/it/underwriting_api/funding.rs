//! PrepareFunding: an approved application re-verified before funding against the
//! simulators, with the county records changed after the approval.

use std::time::Duration;

use dossier_devkit::harness::{TestApp, as_reviewer, count_jobs, evaluate_request, eventually};
use dossier_devkit::sim::Upstream;
use dossier_devkit::sim::property_records::PropertyEvent;
use dossier_service::proto::{self, Decision, FundingVerdict};
use dossier_upstream::property_records::PropertyQuery;
use tonic::Code;

const WITHIN: Duration = Duration::from_secs(30);

async fn approved(app: &TestApp, key: &str) -> proto::Report {
    let report = app
        .client()
        .await
        .evaluate_application(evaluate_request("approve", key))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(report.decision(), Decision::Approved);
    report
}

fn request(id: &str) -> tonic::Request<proto::PrepareFundingRequest> {
    let mut r = tonic::Request::new(proto::PrepareFundingRequest {
        application_id: id.into(),
        ..Default::default()
    });
    r.set_timeout(WITHIN);
    r
}

/// PrepareFunding of `id` with the approved terms, which must succeed.
async fn prepared(app: &TestApp, id: &str) -> proto::FundingCheck {
    app.client()
        .await
        .prepare_funding(request(id))
        .await
        .unwrap()
        .into_inner()
        .funding_check
        .unwrap()
}

/// The property of the `approve` example, as the property records vendor is asked.
fn approved_property() -> PropertyQuery {
    let a = dossier_devkit::harness::example_application("approve");
    let address = a.property.unwrap().address.unwrap();
    PropertyQuery {
        line1: address.line1,
        city: address.city,
        state: address.state,
        postal_code: address.postal_code,
        apn: String::new(),
    }
}

/// A mechanics' lien recorded after the approval turns funding into a HOLD that names
/// it; the approval stays as it was, and Rails receives the funding check.
#[tokio::test]
async fn a_lien_recorded_after_approval_holds_funding_and_names_the_lien() {
    let app = TestApp::spawn().await;
    let report = approved(&app, "fund-lien").await;
    app.sims.record_property_event(
        &approved_property(),
        PropertyEvent::LienRecorded {
            lien_kind: "MECHANICS_LIEN".into(),
            amount_cents: 420_000,
            recorded_on: chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
        },
    );
    let check = prepared(&app, &report.application_id).await;
    assert_eq!(check.verdict(), FundingVerdict::Hold, "{check:#?}");
    assert_eq!(check.reason_codes, vec!["INVOLUNTARY_LIEN"]);
    let descriptions: Vec<&str> = check
        .changes
        .iter()
        .map(|c| c.description.as_str())
        .collect();
    assert_eq!(
        descriptions,
        vec!["a $4,200.00 mechanics lien recorded 2026-12-01"]
    );
    assert_eq!(check.changes[0].kind, "lien_recorded");

    // The approval still stands; the funding check is beside it.
    let decisions: Vec<String> =
        sqlx::query_scalar("SELECT decision FROM decisions WHERE application_id = $1::uuid")
            .bind(&report.application_id)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(decisions, vec!["approved"]);
    let fetched = app
        .client()
        .await
        .get_report(proto::GetReportRequest {
            application_id: report.application_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(fetched.final_decision(), Decision::Approved);

    // Delivered to Rails through the outbox.
    eventually("the funding check delivered", WITHIN, || async {
        (count_jobs(&app.pool, "deliver_funding", "done").await == 1).then_some(())
    })
    .await;
    let delivered = app.sims.deliveries();
    let sent = &delivered.funding_checks[&check.funding_check_id].check;
    assert_eq!(sent.verdict, "hold");
    assert_eq!(sent.changes[0].kind, "lien_recorded");
    assert_eq!(
        sent.approval_decision_id.to_string(),
        check.approval_decision_id
    );
    // Replaying it from its stored inputs gives the same verdict.
    let replayed = dossier_service::underwriting::funding::replay_funding_check(
        &app.store,
        check.funding_check_id.parse().unwrap(),
    )
    .await
    .unwrap();
    assert!(replayed.matches(), "{replayed:?}");
}

/// Nothing changed: CLEAR with no changes, the vendors asked again (not the cache).
#[tokio::test]
async fn an_unchanged_property_is_clear() {
    let app = TestApp::spawn().await;
    let report = approved(&app, "fund-clear").await;
    let before = app.sims.stats(Upstream::PropertyRecords).total();
    let check = prepared(&app, &report.application_id).await;
    assert_eq!(check.verdict(), FundingVerdict::Clear, "{check:#?}");
    assert!(check.changes.is_empty(), "{:?}", check.changes);
    assert!(check.reason_codes.is_empty());
    assert_eq!(
        app.sims.stats(Upstream::PropertyRecords).total(),
        before + 1,
        "the property records are asked again, not taken from the cache"
    );
}

/// Only an approved application can be prepared for funding, and final terms are
/// validated like an application's.
#[tokio::test]
async fn bad_requests_are_refused_with_what_is_wrong() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let declined = client
        .evaluate_application(evaluate_request("decline", "fund-declined"))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    let err = client
        .prepare_funding(request(&declined.application_id))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("is declined"), "{}", err.message());

    let report = approved(&app, "fund-bad-terms").await;
    let mut bad = request(&report.application_id);
    bad.get_mut().final_financing = Some(proto::Financing {
        amount_cents: 1,
        term_years: 99,
    });
    bad.get_mut().final_measures = vec![proto::Measure {
        kind: proto::MeasureKind::SolarPv as i32,
        cost_cents: -5,
        description: String::new(),
    }];
    let err = client.prepare_funding(bad).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let details = tonic_types::StatusExt::get_error_details(&err);
    let fields: Vec<&str> = details
        .bad_request()
        .unwrap()
        .field_violations
        .iter()
        .map(|v| v.field.as_str())
        .collect();
    assert_eq!(
        fields,
        vec![
            "final_financing.amount_cents",
            "final_financing.term_years",
            "final_measures[0].cost_cents"
        ]
    );
    let err = client
        .prepare_funding(request("not-a-uuid"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    // Nothing was recorded for the refused calls.
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM funding_checks")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
}

/// A final amount over the property's limit (a change order) holds funding, naming
/// the new amount; two calls at once share one check.
#[tokio::test]
async fn a_larger_final_amount_holds_and_concurrent_calls_share_one_check() {
    let app = TestApp::spawn().await;
    let report = approved(&app, "fund-change-order").await;
    // Slow vendors keep the first check running while the second call arrives.
    app.sims.set_behaviour(
        Upstream::PropertyRecords,
        dossier_devkit::sim::Behaviour {
            latency_ms: 500,
            ..Default::default()
        },
    );
    let call = |amount| {
        let mut r = request(&report.application_id);
        r.get_mut().final_financing = Some(proto::Financing {
            amount_cents: amount,
            term_years: 20,
        });
        let app = &app;
        async move { app.client().await.prepare_funding(r).await }
    };
    let (first, second) = tokio::join!(call(29_000_000), call(29_000_000));
    let (first, second) = (
        first.unwrap().into_inner().funding_check.unwrap(),
        second.unwrap().into_inner().funding_check.unwrap(),
    );
    assert_eq!(first.funding_check_id, second.funding_check_id);
    assert_eq!(first.verdict(), FundingVerdict::Hold);
    assert!(
        first.changes.iter().any(|c| c.kind == "amount_changed"
            && c.description.starts_with("the final amount is $290,000.00")),
        "{:?}",
        first.changes
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM funding_checks")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(rows, 1);
}

/// An authenticated underwriter resolves a HOLD once; a decline carries the
/// adverse-action notice of the HOLD's reasons, and Rails receives the resolution.
#[tokio::test]
async fn an_underwriter_resolves_a_hold_once_and_a_decline_carries_its_notice() {
    let app = TestApp::spawn().await;
    let report = approved(&app, "fund-review").await;
    let mut client = app.client().await;
    // A CLEAR check has nothing to resolve.
    let other = approved(&app, "fund-review-clear").await;
    let clear = prepared(&app, &other.application_id).await;
    let err = client
        .review_funding(as_reviewer(
            proto::ReviewFundingRequest {
                funding_check_id: clear.funding_check_id,
                outcome: proto::FundingReviewOutcome::Clear as i32,
                note: "n/a".into(),
            },
            "uw.alice@example.com",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);

    app.sims
        .record_property_event(&approved_property(), PropertyEvent::TaxDelinquent);
    let hold = prepared(&app, &report.application_id).await;
    assert_eq!(hold.verdict(), FundingVerdict::Hold);
    assert_eq!(hold.reason_codes, vec!["PROPERTY_TAX_DELINQUENT"]);
    assert!(hold.resolution.is_none());
    let review = |outcome: proto::FundingReviewOutcome| proto::ReviewFundingRequest {
        funding_check_id: hold.funding_check_id.clone(),
        outcome: outcome as i32,
        note: "The county confirms the installment is unpaid.".into(),
    };
    // Without an ID token nobody is an underwriter.
    let err = client
        .review_funding(review(proto::FundingReviewOutcome::Decline))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");

    let resolved = client
        .review_funding(as_reviewer(
            review(proto::FundingReviewOutcome::Decline),
            "uw.alice@example.com",
        ))
        .await
        .unwrap()
        .into_inner()
        .funding_check
        .unwrap();
    let resolution = resolved.resolution.unwrap();
    assert_eq!(resolution.outcome(), proto::FundingReviewOutcome::Decline);
    assert_eq!(resolution.reviewer, "uw.alice@example.com");
    let notice = resolution.adverse_action.unwrap();
    assert_eq!(
        notice.reasons[0].statement,
        "Property taxes on the property are delinquent."
    );
    // Resolved once: the second review is refused, naming who resolved it.
    let again = client
        .review_funding(as_reviewer(
            review(proto::FundingReviewOutcome::Clear),
            "uw.bob@example.com",
        ))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert!(
        again.message().contains("uw.alice@example.com"),
        "{}",
        again.message()
    );
    // The hold left the queue, and Rails has the resolution with the notice.
    let holds: i64 = sqlx::query_scalar("SELECT count(*) FROM reporting.funding_holds")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(holds, 0);
    eventually("the resolution delivered", WITHIN, || async {
        (count_jobs(&app.pool, "deliver_funding_review", "done").await == 1).then_some(())
    })
    .await;
    let delivered = app.sims.deliveries();
    let sent = &delivered.funding_resolutions[&hold.funding_check_id];
    assert_eq!(sent.outcome, "decline");
    assert_eq!(
        sent.adverse_action.as_ref().unwrap().reasons[0].reason_codes,
        vec!["PROPERTY_TAX_DELINQUENT"]
    );
}

/// An approval an underwriter gave to a REFER funds CLEAR when the re-run refers only
/// for what they accepted; a refresh after the review leaves nothing approved; a HOLD
/// replaced by a later check can no longer be resolved.
#[tokio::test]
async fn reviewed_approvals_refreshes_and_superseded_holds() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let referred = client
        .evaluate_application(evaluate_request("refer", "fund-reviewed"))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(referred.decision(), Decision::Refer);
    client
        .review_application(as_reviewer(
            proto::ReviewApplicationRequest {
                application_id: referred.application_id.clone(),
                outcome: proto::ReviewOutcome::Approve as i32,
                note: "The applicant is the sole trustee.".into(),
                ..Default::default()
            },
            "uw.alice@example.com",
        ))
        .await
        .unwrap();
    let check = prepared(&app, &referred.application_id).await;
    assert_eq!(check.verdict(), FundingVerdict::Clear, "{check:#?}");
    assert_eq!(check.reason_codes, vec!["OWNER_IS_ENTITY"]);

    // A refresh decides again, and nobody reviewed the new REFER.
    client
        .refresh_application(proto::RefreshApplicationRequest {
            application_id: referred.application_id.clone(),
        })
        .await
        .unwrap();
    let err = client
        .prepare_funding(request(&referred.application_id))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("referred, awaiting an underwriter"),
        "{}",
        err.message()
    );

    // Two HOLDs in a row: the first is superseded.
    let report = approved(&app, "fund-superseded").await;
    app.sims
        .record_property_event(&approved_property(), PropertyEvent::TaxDelinquent);
    let first = prepared(&app, &report.application_id).await;
    let second = prepared(&app, &report.application_id).await;
    assert_eq!(first.verdict(), FundingVerdict::Hold);
    assert_eq!(second.verdict(), FundingVerdict::Hold);
    let holds: Vec<String> =
        sqlx::query_scalar("SELECT funding_check_id::text FROM reporting.funding_holds")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(holds, vec![second.funding_check_id.clone()]);
    let err = client
        .review_funding(as_reviewer(
            proto::ReviewFundingRequest {
                funding_check_id: first.funding_check_id,
                outcome: proto::FundingReviewOutcome::Clear as i32,
                note: "paid".into(),
            },
            "uw.alice@example.com",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("replaced by a later"),
        "{}",
        err.message()
    );
}

/// Rails can queue the re-verification instead of waiting for it: the call answers at
/// once, a worker runs the check and Rails receives it through the callback.
#[tokio::test]
async fn a_queued_funding_check_reaches_rails() {
    let app = TestApp::spawn().await;
    let report = approved(&app, "fund-queued").await;
    let mut r = request(&report.application_id);
    r.get_mut().queue = true;
    let answer = app
        .client()
        .await
        .prepare_funding(r)
        .await
        .unwrap()
        .into_inner();
    assert!(answer.queued);
    assert!(answer.funding_check.is_none());
    eventually("the queued check delivered", WITHIN, || async {
        (count_jobs(&app.pool, "deliver_funding", "done").await == 1).then_some(())
    })
    .await;
    assert_eq!(count_jobs(&app.pool, "prepare_funding", "done").await, 1);
    let delivered = app.sims.deliveries();
    let sent = delivered.funding_checks.values().next().unwrap();
    assert_eq!(sent.check.verdict, "clear");
    assert_eq!(sent.check.application_id.to_string(), report.application_id);

    // Not approved: refused at once, nothing queued.
    let declined = app
        .client()
        .await
        .evaluate_application(evaluate_request("decline", "fund-queued-declined"))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    let mut r = request(&declined.application_id);
    r.get_mut().queue = true;
    let err = app.client().await.prepare_funding(r).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(count_jobs(&app.pool, "prepare_funding", "queued").await, 0);
}
