//! EvaluateApplication: the examples' decisions, Rails applications, sanctions hits,
//! and a deadline that cuts slow checks short.

use std::time::Duration;

use dossier_devkit::harness::{
    TestApp, assert_every_decision_replays, evaluate_request, example, example_application,
};
use dossier_service::proto::{self, ApplicationStatus, CheckOutcome, Decision};
use dossier_upstream::Upstream;
use tonic::Code;

#[tokio::test]
async fn examples_end_as_named_and_are_stored() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    for (name, want) in [
        ("approve", Decision::Approved),
        ("decline", Decision::Declined),
        ("refer", Decision::Refer),
    ] {
        let report = client
            .evaluate_application(evaluate_request(name, &format!("ex-{name}")))
            .await
            .unwrap()
            .into_inner()
            .report
            .unwrap();
        assert_eq!(report.decision(), want, "{name}: {report:#?}");
        assert_eq!(report.status(), ApplicationStatus::Decided);
        assert!(report.complete, "{name}");
        assert_eq!(report.policy_version, "ca-2026.11");
        // The same report is in PostgreSQL.
        let stored: String = sqlx::query_scalar("SELECT d.decision FROM decisions d JOIN applications a ON a.id = d.application_id WHERE a.idempotency_key = $1")
            .bind(format!("ex-{name}"))
            .fetch_one(&app.pool)
            .await
            .unwrap();
        assert_eq!(
            stored,
            want.as_str_name()
                .trim_start_matches("DECISION_")
                .to_lowercase()
        );
        let fetched = client
            .get_report(proto::GetReportRequest {
                application_id: report.application_id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .report
            .unwrap();
        assert_eq!(fetched.decision, report.decision);
        assert_eq!(fetched.checks.len(), report.checks.len());
    }
    let declined = client
        .evaluate_application(evaluate_request("decline", "ex-decline"))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(declined.reason_codes, vec!["PROPERTY_TAX_DELINQUENT"]);
    let tax = declined
        .checks
        .iter()
        .find(|c| c.kind() == proto::CheckKind::PropertyTax)
        .unwrap();
    assert_eq!(tax.outcome(), CheckOutcome::Fail);
    assert_eq!(tax.upstream, Upstream::PropertyRecords.as_str());
    assert!(tax.fetched_time.is_some());
    assert_every_decision_replays(&app).await;
}

#[tokio::test]
async fn applications_by_rails_id_are_fetched_from_rails() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let report = client
        .evaluate_application(evaluate_request("rails", "rails-1"))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(report.rails_application_id, "app-1001");
    assert_eq!(report.decision(), Decision::Approved, "{report:#?}");

    let mut missing = tonic::Request::new(proto::EvaluateApplicationRequest {
        idempotency_key: String::new(),
        source: Some(
            proto::evaluate_application_request::Source::RailsApplicationId("missing-7".into()),
        ),
    });
    missing.set_timeout(Duration::from_secs(10));
    let err = client.evaluate_application(missing).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(err.message().contains("missing-7"));
    assert_every_decision_replays(&app).await;
}

#[tokio::test]
async fn the_deadline_cuts_slow_checks_short_and_the_report_says_so() {
    let app = TestApp::spawn().await;
    let mut slow = app.sims.behaviour(Upstream::Identity);
    slow.latency_ms = 60_000;
    app.sims.set_behaviour(Upstream::Identity, slow);
    let mut client = app.client().await;
    let mut request = evaluate_request("approve", "slow-1");
    request.set_timeout(Duration::from_millis(1500));
    let report = client
        .evaluate_application(request)
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert!(!report.complete);
    assert_eq!(report.decision(), Decision::Refer);
    let identity: Vec<_> = report
        .checks
        .iter()
        .filter(|c| c.kind() == proto::CheckKind::Identity)
        .collect();
    assert_eq!(identity.len(), 2);
    for c in identity {
        assert_eq!(c.outcome(), CheckOutcome::Unavailable);
        assert_eq!(c.reason_codes, vec!["DEADLINE_EXCEEDED"]);
    }
    let ownership = report
        .checks
        .iter()
        .find(|c| c.kind() == proto::CheckKind::PropertyOwnership)
        .unwrap();
    assert_eq!(
        ownership.outcome(),
        CheckOutcome::Pass,
        "fast checks still answer"
    );
    assert_every_decision_replays(&app).await;
}

#[tokio::test]
async fn example_files_parse() {
    for name in ["approve", "decline", "refer", "rails"] {
        let _ = example(name);
    }
}

/// A person or company on the SDN list is declined, with the candidate shown.
#[tokio::test]
async fn sanctions_hits_decline_and_show_the_candidate() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let mut a = example_application("approve");
    a.applicants[1].first_name = "Ernesto".into();
    a.applicants[1].middle_name = "Javier".into();
    a.applicants[1].last_name = "Morales".into();
    a.contractor.as_mut().unwrap().business_name = "Golden Crescent Trading Inc".into();
    let mut request = tonic::Request::new(proto::EvaluateApplicationRequest {
        idempotency_key: "sdn-1".into(),
        source: Some(proto::evaluate_application_request::Source::Application(a)),
    });
    request.set_timeout(Duration::from_secs(30));
    let report = client
        .evaluate_application(request)
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(report.decision(), Decision::Declined);
    assert!(
        report.reason_codes.contains(&"SANCTIONS_MATCH".to_owned()),
        "{:?}",
        report.reason_codes
    );
    let person = report
        .checks
        .iter()
        .find(|c| c.kind() == proto::CheckKind::PersonSanctions && c.subject == "applicant 2")
        .unwrap();
    assert_eq!(person.outcome(), CheckOutcome::Fail);
    assert!(person.message.contains("MORALES"), "{}", person.message);
    assert_eq!(person.upstream, Upstream::Sanctions.as_str());
    let company = report
        .checks
        .iter()
        .find(|c| c.kind() == proto::CheckKind::CompanySanctions)
        .unwrap();
    assert_eq!(company.outcome(), CheckOutcome::Fail);
    // The ordinary applicant passes screening.
    let clear = report
        .checks
        .iter()
        .find(|c| c.kind() == proto::CheckKind::PersonSanctions && c.subject == "applicant 1")
        .unwrap();
    assert_eq!(clear.outcome(), CheckOutcome::Pass);
    assert_every_decision_replays(&app).await;
}

/// A request far larger than any application is refused before it is parsed, with the
/// limit named, and the connection goes on serving well-sized calls.
#[tokio::test]
async fn an_oversized_request_is_refused_and_the_channel_keeps_serving() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let mut application = example_application("approve");
    application.measures[0].description =
        "x".repeat(dossier_service::server::MAX_REQUEST_BYTES + 1);
    let mut r = tonic::Request::new(proto::EvaluateApplicationRequest {
        idempotency_key: "oversized".into(),
        source: Some(proto::evaluate_application_request::Source::Application(
            application,
        )),
    });
    r.set_timeout(Duration::from_secs(30));
    let refused = client.evaluate_application(r).await.unwrap_err();
    assert_eq!(refused.code(), Code::OutOfRange, "{refused:?}");
    assert!(
        refused
            .message()
            .contains(&dossier_service::server::MAX_REQUEST_BYTES.to_string()),
        "{refused:?}"
    );

    let decided = client
        .evaluate_application(evaluate_request("approve", "after-oversized"))
        .await
        .expect("a well-sized evaluation on the same channel")
        .into_inner();
    assert_eq!(decided.report.unwrap().decision(), Decision::Approved);
}
