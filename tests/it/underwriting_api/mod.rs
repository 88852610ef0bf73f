//! UnderwritingService over a real socket, against real PostgreSQL and the simulators.

use std::time::Duration;

use dossier_devkit::harness::{
    TestApp, assert_every_decision_replays, evaluate_request, example, example_application,
};
use dossier_service::proto::{
    self, ApplicationStatus, CheckOutcome, Decision, submit_application_request::Source,
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
    assert_eq!(tax.upstream, "property_records");
    assert!(tax.fetched_time.is_some());
    assert_every_decision_replays(&app).await;
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
    assert!(err.message().contains(&first.application_id));
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
    let mut slow = app.sims.behaviour(dossier_devkit::sim::Upstream::Identity);
    slow.latency_ms = 60_000;
    app.sims
        .set_behaviour(dossier_devkit::sim::Upstream::Identity, slow);
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
    let sim_total: u64 = dossier_devkit::sim::Upstream::ALL
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
    assert_eq!(person.upstream, "sanctions");
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

/// An underwriter settles a REFER once; the override sits beside the rules' decision.
#[tokio::test]
async fn review_settles_a_refer_once_and_is_kept_beside_the_decision() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let referred = client
        .evaluate_application(evaluate_request("refer", "rev-1"))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(referred.decision(), Decision::Refer);
    let queued = |id: String| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM reporting.review_queue WHERE application_id = $1::uuid",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(
        queued(referred.application_id.clone()).await,
        1,
        "a REFER waits in the review queue"
    );
    let review =
        |id: &str, outcome: proto::ReviewOutcome, reviewer: &str| proto::ReviewApplicationRequest {
            application_id: id.to_owned(),
            outcome: outcome as i32,
            note: "Trust documents show the applicant is the sole trustee.".into(),
            reviewer: reviewer.to_owned(),
        };
    let bad = client
        .review_application(review(
            &referred.application_id,
            proto::ReviewOutcome::Unspecified,
            "",
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let fields: Vec<String> = bad
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(fields, vec!["outcome", "reviewer"]);

    let reviewed = client
        .review_application(review(
            &referred.application_id,
            proto::ReviewOutcome::Approve,
            "uw.alice@example.com",
        ))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(
        reviewed.decision(),
        Decision::Refer,
        "the automated decision is kept"
    );
    assert_eq!(reviewed.final_decision(), Decision::Approved);
    assert_eq!(
        queued(referred.application_id.clone()).await,
        0,
        "a reviewed application leaves the queue"
    );
    let r = reviewed.review.as_ref().unwrap();
    assert_eq!(
        (r.outcome(), r.reviewer.as_str()),
        (proto::ReviewOutcome::Approve, "uw.alice@example.com")
    );

    let again = client
        .review_application(review(
            &referred.application_id,
            proto::ReviewOutcome::Decline,
            "uw.bob@example.com",
        ))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");

    let approved = client
        .evaluate_application(evaluate_request("approve", "rev-2"))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    let err = client
        .review_application(review(
            &approved.application_id,
            proto::ReviewOutcome::Decline,
            "uw.bob@example.com",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("APPROVED"), "{}", err.message());

    let missing = client
        .review_application(review(
            &uuid::Uuid::new_v4().to_string(),
            proto::ReviewOutcome::Approve,
            "uw",
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert_every_decision_replays(&app).await;
}

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
