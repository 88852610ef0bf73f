//! SubmitApplication: idempotency, the worker's decision watched as it happens, and
//! invalid requests refused field by field.

use dossier_devkit::harness::{TestApp, assert_every_decision_replays, example_application};
use dossier_service::proto::{
    self, ApplicationStatus, Decision, submit_application_request::Source,
};
use futures::StreamExt;
use tonic::Code;
use tonic_types::StatusExt;

fn submit(key: &str, app: proto::Application) -> tonic::Request<proto::SubmitApplicationRequest> {
    tonic::Request::new(proto::SubmitApplicationRequest {
        idempotency_key: key.into(),
        source: Some(Source::Application(app)),
    })
}

#[tokio::test]
async fn submit_is_idempotent_by_key_and_refuses_a_changed_payload() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let first = client
        .submit_application(submit("key-1", example_application("approve")))
        .await
        .unwrap()
        .into_inner();
    assert!(!first.replayed);
    assert_eq!(first.status(), ApplicationStatus::Pending);
    let again = client
        .submit_application(submit("key-1", example_application("approve")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.application_id, first.application_id);
    assert!(again.replayed);

    let mut changed = example_application("approve");
    changed.financing.as_mut().unwrap().amount_cents += 1;
    let err = client
        .submit_application(submit("key-1", changed))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    // The conflict names the key, never the application it belongs to (which may be
    // another caller's).
    assert!(!err.message().contains(&first.application_id), "{err:?}");
    assert!(err.message().contains("key-1"), "{err:?}");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM applications")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn a_submitted_application_is_decided_by_a_worker_and_watchable() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let accepted = client
        .submit_application(submit("watch-1", example_application("decline")))
        .await
        .unwrap()
        .into_inner();
    let mut stream = client
        .watch_report(proto::WatchReportRequest {
            application_id: accepted.application_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut checks = 0;
    let decided = loop {
        let event = stream
            .next()
            .await
            .expect("stream ends only after the decision")
            .unwrap();
        match event.event.unwrap() {
            proto::watch_report_response::Event::Check(_) => checks += 1,
            proto::watch_report_response::Event::Decided(report) => break report,
        }
    };
    assert!(
        stream.next().await.is_none(),
        "the stream ends after the decision"
    );
    assert_eq!(decided.decision(), Decision::Declined);
    assert_eq!(checks, decided.checks.len());
    // Replay: watching a decided application gives its history, then the decision.
    let replay: Vec<_> = client
        .watch_report(proto::WatchReportRequest {
            application_id: accepted.application_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .collect()
        .await;
    let runs: Vec<(String, Option<bool>)> =
        sqlx::query_as("SELECT reason, complete FROM evaluation_runs")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(replay.len(), checks + 1, "runs: {runs:?}");
    // The job is done, exactly one decision was made.
    let (jobs_done, decisions): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM jobs WHERE kind = 'evaluate' AND state = 'done'), (SELECT count(*) FROM decisions)",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((jobs_done, decisions), (1, 1));
    assert_every_decision_replays(&app).await;
}

#[tokio::test]
async fn invalid_requests_get_a_field_violation_per_bad_field_and_write_nothing() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let mut a = example_application("approve");
    a.applicants[0].ssn = "12-345-678".into();
    a.applicants[1].first_name.clear();
    let addr = a.property.as_mut().unwrap().address.as_mut().unwrap();
    addr.state = "ZZ".into();
    addr.line1.clear();
    a.financing = Some(proto::Financing {
        amount_cents: 0,
        term_years: 45,
    });
    let err = client
        .submit_application(submit("bad-1", a))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let fields: Vec<String> = err
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(
        fields,
        vec![
            "application.applicants[0].ssn",
            "application.applicants[1].first_name",
            "application.property.address.line1",
            "application.property.address.state",
            "application.financing.amount_cents",
            "application.financing.term_years",
        ]
    );
    assert!(
        !err.message().contains("12-345-678"),
        "the SSN is never echoed"
    );

    let no_applicant = proto::Application {
        applicants: vec![],
        ..example_application("approve")
    };
    let err = client
        .submit_application(submit("", no_applicant))
        .await
        .unwrap_err();
    let fields: Vec<String> = err
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(fields, vec!["idempotency_key", "application.applicants"]);

    let none = client
        .submit_application(proto::SubmitApplicationRequest {
            idempotency_key: "k".into(),
            source: None,
        })
        .await
        .unwrap_err();
    assert_eq!(none.code(), Code::InvalidArgument);

    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM applications")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 0, "a refused request writes nothing");
}
