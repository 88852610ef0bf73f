//! Personal data at rest: sealed, never in plaintext.

use dossier_devkit::harness::{TestApp, evaluate_request};

#[tokio::test]
async fn pii_is_never_stored_in_plaintext() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let report = client
        .evaluate_application(evaluate_request("approve", "pii-1"))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    // Everything the database holds about the application, as text.
    let dump: String = sqlx::query_scalar(
        "SELECT concat_ws('|',
            (SELECT string_agg(t::text, '|') FROM applications t),
            (SELECT string_agg(t::text, '|') FROM applicant_secrets t),
            (SELECT string_agg(t::text, '|') FROM check_results t),
            (SELECT string_agg(t::text, '|') FROM decisions t),
            (SELECT string_agg(t::text, '|') FROM upstream_calls t),
            (SELECT string_agg(t::text, '|') FROM upstream_cache t))",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    for secret in [
        "123456789",
        "123-45-6789",
        "1972-03-14",
        "234567890",
        "1970-11-02",
    ] {
        assert!(!dump.contains(secret), "{secret} found in the database");
    }
    // Sealed values are readable with the key and findable by keyed hash.
    let id: uuid::Uuid = report.application_id.parse().unwrap();
    let loaded = app.store.load_application(id).await.unwrap().unwrap();
    assert_eq!(loaded.applicants[0].ssn.expose(), "123456789");
    let ssn = dossier_core::domain::Ssn::parse("123-45-6789").unwrap();
    assert_eq!(app.store.find_by_ssn(&ssn).await.unwrap(), vec![id]);
    let key_id: String = sqlx::query_scalar("SELECT DISTINCT key_id FROM applicant_secrets")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(key_id, "ephemeral");
    // Personal answers in the shared cache are sealed, and still serve as cache hits.
    client
        .evaluate_application(evaluate_request("rails", "pii-rails"))
        .await
        .unwrap();
    let clear: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM upstream_cache WHERE upstream IN ('rails', 'identity') AND body IS NOT NULL",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let sealed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM upstream_cache WHERE upstream IN ('rails', 'identity') AND sealed IS NOT NULL",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(clear, 0);
    assert!(sealed >= 4, "{sealed}");
    let ssn = dossier_devkit::sim::rails::application_for("app-1001")
        .unwrap()
        .applicants[0]
        .ssn
        .clone();
    let cache_dump: String =
        sqlx::query_scalar("SELECT coalesce(string_agg(t::text, '|'), '') FROM upstream_cache t")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(
        !cache_dump.contains(&ssn),
        "a Rails SSN is in the cache in the clear"
    );
}
