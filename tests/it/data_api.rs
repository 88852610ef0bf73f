//! DataService over a real socket: profiles from the simulated vendors, validation,
//! and every way a vendor can misbehave turned into a typed gRPC error.

use std::time::Duration;

use dossier_devkit::harness::{TestApp, evaluate_request};
use dossier_devkit::sim::{Behaviour, Fault, Upstream};
use dossier_service::proto::data_service_client::DataServiceClient;
use dossier_service::proto::{self, CacheOutcome, CheckKind, CheckOutcome, Decision};
use dossier_upstream::property_records::PropertyQuery;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

/// examples/approve.json's property.
fn approve_address() -> proto::Address {
    address("1200 Harbor Blvd")
}

fn address(line1: &str) -> proto::Address {
    proto::Address {
        line1: line1.into(),
        line2: String::new(),
        city: "Costa Mesa".into(),
        state: "CA".into(),
        postal_code: "92626".into(),
    }
}

fn with_deadline<T>(message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.set_timeout(Duration::from_secs(10));
    r
}

/// A property look-up that skips caches, so every call reaches the vendor.
fn property(address: proto::Address) -> tonic::Request<proto::GetPropertyProfileRequest> {
    with_deadline(proto::GetPropertyProfileRequest {
        address: Some(address),
        apn: String::new(),
        force_refresh: true,
    })
}

fn person(ssn: &str) -> tonic::Request<proto::GetPersonProfileRequest> {
    with_deadline(proto::GetPersonProfileRequest {
        first_name: "Maria".into(),
        middle_name: String::new(),
        last_name: "Lopez".into(),
        ssn: ssn.into(),
        date_of_birth: Some(proto::Date {
            year: 1980,
            month: 6,
            day: 1,
        }),
        address: Some(approve_address()),
        force_refresh: false,
        purpose: proto::LookupPurpose::Underwriting as i32,
    })
}

fn company(name: &str, licence: &str) -> tonic::Request<proto::GetCompanyProfileRequest> {
    with_deadline(proto::GetCompanyProfileRequest {
        business_name: name.into(),
        license_number: licence.into(),
        license_state: "CA".into(),
        force_refresh: false,
    })
}

async fn client_for(app: &TestApp) -> DataServiceClient<Channel> {
    DataServiceClient::new(app.channel().await)
}

fn violated_fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .expect("a google.rpc.BadRequest")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect()
}

/// A property profile carries the county's owners, a valuation, and where each came from.
#[tokio::test]
async fn property_profile_has_owners_valuation_and_sources() {
    let app = TestApp::spawn().await;
    let mut client = client_for(&app).await;
    let first_look_up = with_deadline(proto::GetPropertyProfileRequest {
        address: Some(approve_address()),
        ..Default::default()
    });
    let response = client
        .get_property_profile(first_look_up)
        .await
        .unwrap()
        .into_inner();
    let profile = response.profile.unwrap();

    let a = approve_address();
    let county = dossier_devkit::sim::property_records::record_for(&PropertyQuery {
        line1: a.line1.clone(),
        city: a.city.clone(),
        state: a.state.clone(),
        postal_code: a.postal_code.clone(),
        apn: String::new(),
    })
    .unwrap();
    assert_eq!(profile.owners, county.owners);
    assert_eq!(profile.apn, county.apn);
    assert_eq!(profile.assessed_value_cents, county.assessed_value_cents);
    let avm =
        dossier_devkit::sim::valuation::estimate_for(&a.line1, &a.city, &a.state, &a.postal_code)
            .unwrap();
    let valuation = profile.valuation.expect("a valuation");
    assert_eq!(
        (valuation.value_cents, valuation.confidence),
        (avm.value_cents, avm.confidence as i32)
    );

    let sources: Vec<(&str, CacheOutcome)> = response
        .sources
        .iter()
        .map(|s| (s.upstream.as_str(), s.cache()))
        .collect();
    assert_eq!(
        sources,
        vec![
            ("property_records", CacheOutcome::Fetched),
            ("valuation", CacheOutcome::Fetched)
        ]
    );
    assert!(
        response.sources.iter().all(|s| s.fetched_time.is_some()),
        "{:?}",
        response.sources
    );
}

/// An unknown property is NOT_FOUND; a bad address names every bad field and costs no
/// vendor call.
#[tokio::test]
async fn unknown_property_is_not_found_and_bad_addresses_are_refused_field_by_field() {
    let app = TestApp::spawn().await;
    let mut client = client_for(&app).await;
    let err = client
        .get_property_profile(property(address("1 Unknown Way")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");

    app.sims.reset_stats(Upstream::PropertyRecords);
    let bad = proto::Address {
        state: "ZZ".into(),
        city: String::new(),
        ..approve_address()
    };
    let err = client
        .get_property_profile(property(bad))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(violated_fields(&err), vec!["address.city", "address.state"]);
    assert_eq!(
        app.sims.stats(Upstream::PropertyRecords).total(),
        0,
        "a refused request reaches no vendor"
    );

    let err = client
        .get_property_profile(with_deadline(proto::GetPropertyProfileRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), vec!["address"]);
}

/// A person profile reports bankruptcies; a malformed SSN is refused without echoing it.
#[tokio::test]
async fn person_profile_reports_bankruptcies_and_never_echoes_an_ssn() {
    let app = TestApp::spawn().await;
    let mut client = client_for(&app).await;
    let response = client
        .get_person_profile(person("123-45-2222"))
        .await
        .unwrap()
        .into_inner();
    let profile = response.profile.clone().unwrap();
    assert_eq!(profile.bankruptcies.len(), 1, "{profile:?}");
    let filing = &profile.bankruptcies[0];
    assert_eq!(
        (filing.chapter, filing.disposition.as_str()),
        (7, "DISCHARGED")
    );
    assert!(filing.filed_time.is_some() && filing.closed_time.is_some());
    let sources: Vec<&str> = response
        .sources
        .iter()
        .map(|s| s.upstream.as_str())
        .collect();
    assert_eq!(sources, vec!["identity", "identity", "sanctions"]);
    assert!(
        !format!("{response:?}").contains("2222"),
        "the answer does not echo the SSN"
    );

    app.sims.reset_stats(Upstream::Identity);
    let err = client
        .get_person_profile(person("987-65-432"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(violated_fields(&err), vec!["ssn"]);
    let details = format!("{:?}", err.get_details_bad_request());
    for echoed in ["987-65-432", "98765432"] {
        assert!(
            !err.message().contains(echoed),
            "message echoes the SSN: {}",
            err.message()
        );
        assert!(!details.contains(echoed), "details echo the SSN: {details}");
    }
    assert_eq!(
        app.sims.stats(Upstream::Identity).total(),
        0,
        "a refused request reaches no vendor"
    );
}

/// A company profile shows an expired licence and a dissolved registration.
#[tokio::test]
async fn company_profile_shows_licence_and_registration_status() {
    let app = TestApp::spawn().await;
    let mut client = client_for(&app).await;
    let expired = client
        .get_company_profile(company("Sunny Solar Inc", "123499"))
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap();
    assert_eq!(expired.license_status, "EXPIRED");
    assert_eq!(expired.registration_status, "ACTIVE");

    let dissolved = client
        .get_company_profile(company("Acme Dissolved Solar LLC", "123456"))
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap();
    assert_eq!(dissolved.registration_status, "DISSOLVED");
    assert_eq!(dissolved.license_status, "ACTIVE");
    assert_eq!(dissolved.jurisdiction, "CA");
}

/// Every broken vendor answer becomes UNAVAILABLE naming the vendor, and the service
/// answers normally as soon as the vendor recovers.
#[tokio::test]
async fn broken_vendor_answers_become_unavailable_and_the_service_recovers() {
    let app = TestApp::spawn().await;
    let mut client = client_for(&app).await;
    let faults = [
        Fault::MalformedJson,
        Fault::HtmlError,
        Fault::TruncatedBody,
        Fault::ErrorIn200,
        Fault::ConnectionReset,
    ];
    for (i, fault) in faults.into_iter().enumerate() {
        // A fresh address each time, so no cached answer can hide the fault.
        let addr = address(&format!("{} Fault Test Ave", 100 + i));
        app.sims
            .set_behaviour(Upstream::PropertyRecords, Behaviour::with_fault(fault));
        let err = client
            .get_property_profile(property(addr.clone()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{fault:?}: {err:?}");
        assert!(
            err.message().contains("property_records"),
            "{fault:?}: {}",
            err.message()
        );

        app.sims
            .set_behaviour(Upstream::PropertyRecords, Behaviour::default());
        let ok = client.get_property_profile(property(addr)).await;
        assert!(ok.is_ok(), "after {fault:?} the next call succeeds: {ok:?}");
    }
}

/// A vendor that stalls mid-answer is cut off at the upstream timeout: DEADLINE_EXCEEDED,
/// and the service keeps answering.
#[tokio::test]
async fn a_stalled_vendor_is_cut_off_at_the_upstream_timeout() {
    let app =
        TestApp::spawn_with(|a| a.upstreams.upstream_timeout = Some(Duration::from_millis(500)))
            .await;
    let mut client = client_for(&app).await;
    app.sims.set_behaviour(
        Upstream::PropertyRecords,
        Behaviour::with_fault(Fault::StalledBody),
    );
    let err = client
        .get_property_profile(property(approve_address()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(
        err.message().contains("property_records"),
        "{}",
        err.message()
    );

    app.sims
        .set_behaviour(Upstream::PropertyRecords, Behaviour::default());
    let ok = client
        .get_property_profile(property(approve_address()))
        .await;
    assert!(ok.is_ok(), "after a stall the next call succeeds: {ok:?}");
}

/// Over the vendor's quota, callers get RESOURCE_EXHAUSTED with a RetryInfo telling them
/// when to come back.
#[tokio::test]
async fn over_the_vendor_quota_callers_are_told_when_to_retry() {
    let app = TestApp::spawn().await;
    let mut client = client_for(&app).await;
    app.sims.set_behaviour(
        Upstream::PropertyRecords,
        Behaviour {
            quota_per_second: Some(0.001),
            ..Behaviour::default()
        },
    );
    client
        .get_property_profile(property(approve_address()))
        .await
        .expect("the first call is within the quota");
    // Another property, so there is no earlier answer to fall back on.
    let err = client
        .get_property_profile(property(address("9 Quota Ct")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message().contains("property_records"),
        "{}",
        err.message()
    );
    let retry = err
        .get_details_retry_info()
        .expect("a google.rpc.RetryInfo")
        .retry_delay
        .expect("a retry delay");
    // One request per 1000 s: the next token is at most 1000 s away.
    assert!(
        retry > Duration::ZERO && retry <= Duration::from_secs(1000),
        "{retry:?}"
    );
}

/// During underwriting a broken vendor makes its checks UNAVAILABLE with a reason code,
/// the application is REFERred to an underwriter, and the audit trail says what broke.
#[tokio::test]
async fn broken_vendor_answers_make_underwriting_refer_and_are_audited() {
    let mut app =
        TestApp::spawn_with(|a| a.upstreams.upstream_timeout = Some(Duration::from_secs(1))).await;
    let mut client = app.client().await;
    let mut data = client_for(&app).await;
    // (fault, reason code on the property checks, audit outcome)
    let table = [
        (Fault::MalformedJson, "UPSTREAM_BAD_RESPONSE", "malformed"),
        (Fault::HtmlError, "UPSTREAM_ERROR", "http_status"),
        (Fault::TruncatedBody, "UPSTREAM_BAD_RESPONSE", "body"),
        (Fault::ErrorIn200, "UPSTREAM_BAD_RESPONSE", "error_body"),
        (Fault::ConnectionReset, "UPSTREAM_ERROR", "connect"),
        (Fault::StalledBody, "UPSTREAM_TIMEOUT", "timeout"),
    ];
    let property_kinds = [
        CheckKind::PropertyOwnership,
        CheckKind::PropertyEligibility,
        CheckKind::PropertyTax,
        CheckKind::Mortgage,
        CheckKind::InvoluntaryLiens,
        CheckKind::AssessmentLimit,
    ];
    let mut applications = Vec::new();
    for (fault, reason, outcome) in table {
        app.sims
            .set_behaviour(Upstream::PropertyRecords, Behaviour::with_fault(fault));
        let report = client
            .evaluate_application(evaluate_request("approve", &format!("fault-{fault:?}")))
            .await
            .unwrap()
            .into_inner()
            .report
            .unwrap();
        assert_eq!(report.decision(), Decision::Refer, "{fault:?}: {report:#?}");
        for kind in property_kinds {
            let check = report
                .checks
                .iter()
                .find(|c| c.kind() == kind)
                .unwrap_or_else(|| panic!("{fault:?}: no {kind:?} check"));
            assert_eq!(
                check.outcome(),
                CheckOutcome::Unavailable,
                "{fault:?} {kind:?}"
            );
            assert_eq!(check.reason_codes, vec![reason], "{fault:?} {kind:?}");
            assert!(
                check.message.contains("property_records"),
                "{fault:?} {kind:?}: {}",
                check.message
            );
        }
        let valuation = report
            .checks
            .iter()
            .find(|c| c.kind() == CheckKind::Valuation)
            .unwrap();
        assert_eq!(
            valuation.outcome(),
            CheckOutcome::Pass,
            "{fault:?}: other vendors still answer"
        );
        applications.push((
            fault,
            outcome,
            report.application_id.parse::<uuid::Uuid>().unwrap(),
        ));

        // One good answer (for another address, so the example's stays uncached) between
        // faults: each fault is judged on its own, not behind an open circuit breaker.
        app.sims
            .set_behaviour(Upstream::PropertyRecords, Behaviour::default());
        data.get_property_profile(property(address("77 Recovery Rd")))
            .await
            .expect("the vendor answers again");
    }

    app.stop().await.unwrap(); // flushes the batched audit writer
    for (fault, outcome, id) in applications {
        let outcomes: Vec<String> = sqlx::query_scalar("SELECT outcome FROM upstream_calls WHERE upstream = 'property_records' AND application_id = $1")
            .bind(id)
            .fetch_all(&app.pool)
            .await
            .unwrap();
        assert!(
            !outcomes.is_empty(),
            "{fault:?}: the failed call is audited"
        );
        assert!(
            outcomes.iter().all(|o| o == outcome),
            "{fault:?}: audited as {outcomes:?}, expected {outcome}"
        );
    }
}

/// Operators see upstream outcomes, breaker state and RPCs on the admin port.
#[tokio::test]
async fn metrics_are_served_on_the_admin_port() {
    let app = TestApp::spawn().await;
    let mut client = DataServiceClient::new(app.channel().await);
    let request = proto::GetPropertyProfileRequest {
        address: Some(proto::Address {
            line1: "9 Metrics Way".into(),
            city: "Fresno".into(),
            state: "CA".into(),
            postal_code: "93701".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    client.get_property_profile(request.clone()).await.unwrap();
    client.get_property_profile(request).await.unwrap();
    let body = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://{}/metrics", app.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for expected in [
        r#"dossier_upstream_requests_total{upstream="property_records",outcome="fetched"}"#,
        r#"dossier_upstream_requests_total{upstream="property_records",outcome="l1_hit"}"#,
        r#"dossier_upstream_breaker_state{upstream="property_records"}"#,
        r#"dossier_upstream_request_duration_seconds_bucket{upstream="property_records""#,
        r#"dossier_rpc_requests_total{method="/dossier.v1.DataService/GetPropertyProfile",code="Ok"}"#,
    ] {
        assert!(body.contains(expected), "missing {expected} in:\n{body}");
    }
}
