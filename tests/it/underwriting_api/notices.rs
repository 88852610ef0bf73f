//! Adverse-action notices: a declined application's report and its Rails delivery carry
//! the notice content, reasons in order, with the consumer reporting agency named when
//! its report contributed; `dossier notice` prints it.

use std::path::PathBuf;
use std::time::Duration;

use dossier_devkit::harness::{TestApp, count_jobs, eventually, example_application};
use dossier_service::proto::{self, Decision};

fn notices_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/notices.toml")
}

async fn evaluate(app: &TestApp, key: &str, application: proto::Application) -> proto::Report {
    let mut request = tonic::Request::new(proto::EvaluateApplicationRequest {
        idempotency_key: key.into(),
        source: Some(proto::evaluate_application_request::Source::Application(
            application,
        )),
    });
    request.set_timeout(Duration::from_secs(30));
    app.client()
        .await
        .evaluate_application(request)
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap()
}

/// Delinquent taxes (the property records vendor) and an open bankruptcy (the identity
/// vendor's consumer report): both reasons in check order, and the identity vendor's
/// agency named with the applicant's rights, in the report and in the Rails delivery.
#[tokio::test]
async fn a_declined_applications_notice_states_its_reasons_and_the_agency() {
    let app = TestApp::spawn_with(|a| a.notices_file = Some(notices_file())).await;
    let mut application = example_application("decline");
    // The simulator's identity vendor reports an open bankruptcy for SSNs ending 4444.
    application.applicants[0].ssn = "123-45-4444".into();
    let report = evaluate(&app, "notice-1", application).await;
    assert_eq!(report.decision(), Decision::Declined);
    assert_eq!(
        report.reason_codes,
        vec!["PROPERTY_TAX_DELINQUENT", "BANKRUPTCY_OPEN"]
    );
    let notice = report.adverse_action.expect("a decline carries its notice");
    let statements: Vec<&str> = notice
        .reasons
        .iter()
        .map(|r| r.statement.as_str())
        .collect();
    assert_eq!(
        statements,
        vec![
            "Property taxes on the property are delinquent.",
            "Bankruptcy."
        ]
    );
    assert_eq!(notice.consumer_reports.len(), 1);
    let disclosure = &notice.consumer_reports[0];
    assert_eq!(disclosure.upstream, "identity");
    assert_eq!(disclosure.used_for, vec!["bankruptcy records"]);
    assert_eq!(
        disclosure.agency.as_ref().unwrap().name,
        "Acme Consumer Data, Inc."
    );
    assert_eq!(notice.rights.len(), 3);
    assert!(notice.missing.is_empty(), "{:?}", notice.missing);

    // Rails receives the same content with the decision.
    let id: uuid::Uuid = report.application_id.parse().unwrap();
    eventually("the decline delivered", Duration::from_secs(30), || async {
        (count_jobs(&app.pool, "deliver", "done").await == 1).then_some(())
    })
    .await;
    let delivered = app.sims.deliveries();
    let mine = delivered.for_application(id);
    let sent = mine[0]
        .decision
        .adverse_action
        .as_ref()
        .expect("the delivery carries the notice");
    let sent_statements: Vec<&str> = sent.reasons.iter().map(|r| r.statement.as_str()).collect();
    assert_eq!(sent_statements, statements);
    assert_eq!(
        sent.consumer_reports[0].used_for,
        vec!["bankruptcy records"]
    );
}

/// A decline on public records alone needs no consumer-report disclosure; an approval
/// has no notice at all.
#[tokio::test]
async fn no_disclosure_without_a_consumer_report_and_no_notice_for_an_approval() {
    let app = TestApp::spawn_with(|a| a.notices_file = Some(notices_file())).await;
    let declined = evaluate(&app, "notice-2", example_application("decline")).await;
    let notice = declined.adverse_action.unwrap();
    assert_eq!(notice.reasons.len(), 1);
    assert!(notice.consumer_reports.is_empty());
    assert!(notice.rights.is_empty());
    let approved = evaluate(&app, "notice-3", example_application("approve")).await;
    assert_eq!(approved.decision(), Decision::Approved);
    assert!(approved.adverse_action.is_none());
}

/// `dossier notice ID` prints the notice as text and as an HTML page, and refuses an
/// application that was not declined, naming its decision.
#[tokio::test]
async fn dossier_notice_prints_text_and_html() {
    let app = TestApp::spawn().await;
    let mut application = example_application("decline");
    application.applicants[0].ssn = "123-45-4444".into();
    let declined = evaluate(&app, "notice-4", application).await;
    let approved = evaluate(&app, "notice-5", example_application("approve")).await;
    let notice = |id: &str, format: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_dossier"))
            .args(["notice", id, "--format", format])
            .env("DATABASE_URL", &app.db.url)
            .env("DOSSIER_NOTICES_FILE", notices_file())
            .output()
            .unwrap()
    };
    let text = notice(&declined.application_id, "text");
    assert!(
        text.status.success(),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );
    let text = String::from_utf8(text.stdout).unwrap();
    let tax = text
        .find("1. Property taxes on the property are delinquent.")
        .unwrap();
    let bankruptcy = text.find("2. Bankruptcy.").unwrap();
    assert!(tax < bankruptcy, "{text}");
    assert!(text.contains("Acme Consumer Data, Inc."), "{text}");
    let html = notice(&declined.application_id, "html");
    assert!(html.status.success());
    let html = String::from_utf8(html.stdout).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<li>Bankruptcy.</li>"));
    let refused = notice(&approved.application_id, "text");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("is approved"), "{stderr}");
}
