//! Reading reports: GetReport and WatchReport on unknown or malformed ids, ListReports
//! paging and filters.

use dossier_devkit::harness::{TestApp, assert_every_decision_replays, evaluate_request};
use dossier_service::proto::{self, Decision};
use tonic::Code;

#[tokio::test]
async fn unknown_and_malformed_ids() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let missing = uuid::Uuid::new_v4().to_string();
    let err = client
        .get_report(proto::GetReportRequest {
            application_id: missing.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains(&missing));
    let err = client
        .get_report(proto::GetReportRequest {
            application_id: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = client
        .watch_report(proto::WatchReportRequest {
            application_id: missing,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn list_reports_pages_and_filters() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    for i in 0..3 {
        client
            .evaluate_application(evaluate_request("approve", &format!("a-{i}")))
            .await
            .unwrap();
    }
    for i in 0..2 {
        client
            .evaluate_application(evaluate_request("decline", &format!("d-{i}")))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = client
            .list_reports(proto::ListReportsRequest {
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        seen.extend(page.reports.iter().map(|r| r.idempotency_key.clone()));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    assert_eq!(
        seen,
        vec!["d-1", "d-0", "a-2", "a-1", "a-0"],
        "newest first, no duplicates"
    );

    let declined = client
        .list_reports(proto::ListReportsRequest {
            decision: Decision::Declined as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(declined.reports.len(), 2);
    assert!(
        declined
            .reports
            .iter()
            .all(|r| r.reason_codes == vec!["PROPERTY_TAX_DELINQUENT"])
    );

    let first = client
        .list_reports(proto::ListReportsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let err = client
        .list_reports(proto::ListReportsRequest {
            page_size: 1,
            page_token: first.next_page_token,
            decision: Decision::Approved as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::InvalidArgument,
        "a token is bound to its filters"
    );
    let err = client
        .list_reports(proto::ListReportsRequest {
            page_token: "garbage".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let future =
        dossier_service::api::convert::timestamp(chrono::Utc::now() + chrono::Duration::hours(1));
    let none = client
        .list_reports(proto::ListReportsRequest {
            created_after: Some(future),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(none.reports.is_empty());
    assert_every_decision_replays(&app).await;
}
