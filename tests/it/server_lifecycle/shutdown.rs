//! Graceful shutdown: calls in flight finish, and open streams (health watchers,
//! report watchers) do not hold the stop up.

use std::time::Duration;

use dossier_devkit::harness::{TestApp, evaluate_request};
use dossier_devkit::sim::{Behaviour, Upstream};
use dossier_service::proto::{ApplicationStatus, CheckKind, CheckOutcome, Decision};
use tokio::time::timeout;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::{eventually, watch_until};

/// A deploy (SIGTERM) lets a call already in flight finish with its decision, then
/// the server stops and accepts nothing new.
#[tokio::test]
async fn shutdown_finishes_in_flight_calls_then_refuses_new_connections() {
    let mut app = TestApp::spawn().await;
    app.sims.set_behaviour(
        Upstream::Identity,
        Behaviour {
            latency_ms: 1500,
            ..Behaviour::default()
        },
    );
    let mut client = app.client().await;
    let call = tokio::spawn(async move {
        client
            .evaluate_application(evaluate_request("approve", "in-flight-1"))
            .await
    });

    // The call is in flight once it has reached the (slow) identity vendor.
    eventually(
        Duration::from_secs(20),
        "the evaluation reaches the identity simulator",
        || app.sims.stats(Upstream::Identity).total() > 0,
    )
    .await;
    let server = app.begin_stop().expect("the server is running");

    let report = timeout(Duration::from_secs(30), call)
        .await
        .expect("the in-flight call ends")
        .expect("the call task does not panic")
        .expect("the in-flight call succeeds despite the shutdown")
        .into_inner()
        .report
        .unwrap();
    assert_eq!(report.status(), ApplicationStatus::Decided);
    assert_eq!(report.decision(), Decision::Approved, "{report:#?}");
    assert!(report.complete);
    let identity: Vec<_> = report
        .checks
        .iter()
        .filter(|c| c.kind() == CheckKind::Identity)
        .collect();
    assert_eq!(identity.len(), 2);
    assert!(
        identity.iter().all(|c| c.outcome() == CheckOutcome::Pass),
        "the slow answers were waited for: {identity:#?}"
    );

    timeout(Duration::from_secs(30), server)
        .await
        .expect("the server stops within its grace period")
        .expect("the server task does not panic")
        .expect("the server stops cleanly");

    let fresh = Channel::from_shared(app.endpoint())
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await;
    if let Ok(channel) = fresh {
        let err = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            tonic::Code::Unavailable,
            "a stopped server answers nothing: {err:?}"
        );
    }
}

/// A client watching health (gRPC client-side health checking) hears NOT_SERVING when
/// the server begins to stop, and its open stream does not hold the shutdown up.
#[tokio::test]
async fn health_watchers_hear_not_serving_and_do_not_hold_up_shutdown() {
    // A grace period far longer than the test's bound: waiting it out would fail the test.
    let mut app = TestApp::spawn_with(|a| a.shutdown_grace = Duration::from_secs(600)).await;
    let mut health = HealthClient::new(app.channel().await);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    watch_until(&mut watch, ServingStatus::Serving, Duration::from_secs(5)).await;

    let server = app.begin_stop().expect("the server is running");
    watch_until(
        &mut watch,
        ServingStatus::NotServing,
        Duration::from_secs(10),
    )
    .await;
    timeout(Duration::from_secs(30), server)
        .await
        .expect("the server stops although a health Watch stream is open")
        .expect("the server task does not panic")
        .expect("the server stops cleanly");
}

/// A client watching an undecided report during a deploy is told to reconnect
/// (UNAVAILABLE) instead of holding the stopping server up for its whole grace period.
#[tokio::test]
async fn report_watchers_are_told_to_reconnect_and_do_not_hold_up_shutdown() {
    // No workers: the application stays undecided, so its WatchReport stream stays open.
    let mut app = TestApp::spawn_with(|a| {
        a.workers = 0;
        a.shutdown_grace = Duration::from_secs(600);
    })
    .await;
    let mut client = app.client().await;
    let accepted = client
        .submit_application(dossier_service::proto::SubmitApplicationRequest {
            idempotency_key: "watched-1".into(),
            source: Some(
                dossier_service::proto::submit_application_request::Source::Application(
                    dossier_devkit::harness::example_application("approve"),
                ),
            ),
        })
        .await
        .unwrap()
        .into_inner();
    let mut stream = client
        .watch_report(dossier_service::proto::WatchReportRequest {
            application_id: accepted.application_id,
        })
        .await
        .unwrap()
        .into_inner();

    let server = app.begin_stop().expect("the server is running");
    let ended = timeout(Duration::from_secs(30), async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the WatchReport stream ends when the server stops");
    let err = ended.expect_err("the stream ends with a status, not as if the report were decided");
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    timeout(Duration::from_secs(30), server)
        .await
        .expect("the server stops although a WatchReport stream was open")
        .expect("the server task does not panic")
        .expect("the server stops cleanly");
}
