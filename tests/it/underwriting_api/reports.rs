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

/// Open WatchReport streams are capped per caller: past the cap a new one is refused
/// with RESOURCE_EXHAUSTED and a RetryInfo, and closing one makes room again.
#[tokio::test]
async fn watch_streams_are_capped_and_a_closed_one_frees_its_place() {
    use tonic_types::StatusExt as _;
    let app = TestApp::spawn_with(|a| {
        a.workers = 0; // undecided, so the streams stay open
        a.watch_streams_per_caller = 2;
    })
    .await;
    let mut client = app.client().await;
    let accepted = client
        .submit_application(proto::SubmitApplicationRequest {
            idempotency_key: "watch-cap-1".into(),
            source: Some(proto::submit_application_request::Source::Application(
                dossier_devkit::harness::example_application("approve"),
            )),
        })
        .await
        .unwrap()
        .into_inner();
    let watch = || proto::WatchReportRequest {
        application_id: accepted.application_id.clone(),
    };
    let first = client.watch_report(watch()).await.unwrap().into_inner();
    let _second = client.watch_report(watch()).await.unwrap().into_inner();
    let err = client.watch_report(watch()).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.get_details_retry_info().is_some(), "{err:?}");

    drop(first);
    dossier_devkit::harness::eventually(
        "a closed stream to free its place",
        std::time::Duration::from_secs(20),
        || {
            let mut client = client.clone();
            let request = watch();
            async move { client.watch_report(request).await.ok() }
        },
    )
    .await;
}
