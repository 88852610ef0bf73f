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

/// The leak test: SSNs and dates of birth sent through every RPC that takes them
/// (inline and Rails applications, evaluation, submission, person look-ups, invalid
/// requests) appear in no table or view, no answer, no error and no metric.
#[tokio::test]
async fn known_ssns_and_birth_dates_leak_nowhere() {
    use dossier_service::proto::{self, data_service_client::DataServiceClient};
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let mut answers = String::new();
    for (example, key) in [
        ("approve", "leak-1"),
        ("decline", "leak-2"),
        ("rails", "leak-3"),
    ] {
        let report = client
            .evaluate_application(evaluate_request(example, key))
            .await
            .unwrap()
            .into_inner();
        answers.push_str(&format!("{report:?}"));
    }
    client
        .submit_application(proto::SubmitApplicationRequest {
            idempotency_key: "leak-4".into(),
            source: Some(proto::submit_application_request::Source::Application(
                dossier_devkit::harness::example_application("refer"),
            )),
        })
        .await
        .unwrap();
    let applicant = &dossier_devkit::harness::example_application("approve").applicants[0];
    let look_up = |ssn: &str| proto::GetPersonProfileRequest {
        ssn: ssn.to_owned(),
        ..dossier_devkit::harness::person_request("approve", proto::LookupPurpose::Underwriting)
    };
    let mut data = DataServiceClient::new(app.channel().await);
    answers.push_str(&format!(
        "{:?}",
        data.get_person_profile(look_up(&applicant.ssn))
            .await
            .unwrap()
    ));
    // Invalid requests carrying an SSN: the errors name the field, not the value.
    answers.push_str(&format!(
        "{:?}",
        data.get_person_profile(look_up("123-45-67890"))
            .await
            .unwrap_err()
    ));
    let mut bad = dossier_devkit::harness::example_application("approve");
    bad.applicants[0].ssn = "000-12-3456".into();
    answers.push_str(&format!(
        "{:?}",
        client
            .submit_application(proto::SubmitApplicationRequest {
                idempotency_key: "leak-5".into(),
                source: Some(proto::submit_application_request::Source::Application(bad)),
            })
            .await
            .unwrap_err()
    ));
    answers.push_str(&format!(
        "{:?}",
        client
            .list_reports(proto::ListReportsRequest::default())
            .await
            .unwrap()
    ));
    answers.push_str(&app.metrics().await);

    // Every table and view, whatever later migrations add, but the OFAC list: public
    // data holding no applicant's, whose sample entries carry made-up document numbers
    // such as 123456789.
    let relations: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', table_schema, table_name) FROM information_schema.tables
          WHERE table_schema IN ('public', 'reporting') AND table_name NOT LIKE 'sanctions%'",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(relations.len() > 15, "{relations:?}");
    let mut dumps = Vec::new();
    for relation in &relations {
        let text: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT coalesce(string_agg(t::text, '|'), '') FROM {relation} t"
        )))
        .fetch_one(&app.pool)
        .await
        .unwrap();
        dumps.push((relation, text));
    }
    let rails = dossier_devkit::sim::rails::application_for("app-1001").unwrap();
    let mut secrets: Vec<String> = vec![
        "123456789".into(),
        "123-45-6789".into(),
        "1972-03-14".into(),
        "234567890".into(),
        "1970-11-02".into(),
        "000123456".into(),
    ];
    for a in &rails.applicants {
        secrets.push(a.ssn.replace('-', ""));
        secrets.push(a.date_of_birth.to_string());
    }
    for secret in &secrets {
        for (relation, dump) in &dumps {
            assert!(
                !dump.contains(secret.as_str()),
                "{secret} found in {relation}"
            );
        }
        assert!(
            !answers.contains(secret.as_str()),
            "{secret} found in an answer, error or metric"
        );
    }
}
