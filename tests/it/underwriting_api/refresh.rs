//! RefreshApplication: the checks run again with fresh data.

use std::time::Duration;

use dossier_devkit::harness::{TestApp, assert_every_decision_replays, evaluate_request};
use dossier_service::proto::{self, Decision};
use tonic::Code;

/// A refresh re-runs the checks with fresh data; the earlier run stays in history.
#[tokio::test]
async fn refresh_reruns_with_fresh_data() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let first = client
        .evaluate_application(evaluate_request("approve", "fresh-1"))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(first.run_count, 1);
    let before = app
        .sims
        .stats(dossier_devkit::sim::Upstream::PropertyRecords)
        .total();
    let mut request = tonic::Request::new(proto::RefreshApplicationRequest {
        application_id: first.application_id.clone(),
    });
    request.set_timeout(Duration::from_secs(30));
    let refreshed = client
        .refresh_application(request)
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(refreshed.run_count, 2);
    assert_eq!(refreshed.decision(), Decision::Approved);
    assert_eq!(
        app.sims
            .stats(dossier_devkit::sim::Upstream::PropertyRecords)
            .total(),
        before + 1,
        "fresh data, not the cache"
    );
    let property = refreshed
        .checks
        .iter()
        .find(|c| c.kind() == proto::CheckKind::PropertyTax)
        .unwrap();
    assert!(!property.cached);
    let decisions: i64 = sqlx::query_scalar("SELECT count(*) FROM decisions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(decisions, 2, "the earlier decision stays in history");

    let err = client
        .refresh_application(proto::RefreshApplicationRequest {
            application_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_every_decision_replays(&app).await;
}
