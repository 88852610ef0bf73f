//! The audit trail of upstream calls.

use dossier_devkit::harness::{TestApp, evaluate_request};

#[tokio::test]
async fn every_upstream_call_is_audited() {
    let mut app = TestApp::spawn().await;
    let mut client = app.client().await;
    let report = client
        .evaluate_application(evaluate_request("approve", "audit-1"))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    app.stop().await.unwrap(); // flushes the audit writer
    let rows: Vec<(String, String, Option<i32>, String)> = sqlx::query_as(
        // The decision's delivery to Rails is audited too, but it is asynchronous (it
        // may or may not have run before the stop); tests/outbox.rs covers it.
        "SELECT upstream, endpoint, http_status, outcome FROM upstream_calls
         WHERE application_id = $1 AND endpoint <> 'POST /api/v1/underwriting_decisions'
         ORDER BY upstream, endpoint",
    )
    .bind(report.application_id.parse::<uuid::Uuid>().unwrap())
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let upstreams: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        upstreams.into_iter().collect::<Vec<_>>(),
        vec![
            "identity",
            "licensing",
            "property_records",
            "registry",
            "valuation"
        ]
    );
    // Two applicants: identity, bankruptcy and income each twice.
    assert_eq!(rows.iter().filter(|r| r.0 == "identity").count(), 6);
    assert!(
        rows.iter().all(|r| r.2 == Some(200) && r.3 == "ok"),
        "{rows:?}"
    );
    let sim_total: u64 = dossier_devkit::sim::Upstream::HTTP
        .iter()
        .map(|u| app.sims.stats(*u).total())
        .sum::<u64>()
        - app
            .sims
            .stats(dossier_devkit::sim::Upstream::Rails)
            .count("POST /api/v1/underwriting_decisions");
    assert_eq!(
        sim_total as usize,
        rows.len(),
        "one audit row per real request"
    );
}
