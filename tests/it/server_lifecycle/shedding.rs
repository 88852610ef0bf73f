//! Load shedding: past its limit of calls in flight a server answers at once with
//! UNAVAILABLE and a RetryInfo, keeps answering health, and serves again as soon as a
//! call ends.

use std::time::Duration;

use dossier_devkit::harness::{TestApp, eventually};
use dossier_devkit::sim::{Behaviour, Fault, Upstream};
use dossier_service::proto::{self, data_service_client::DataServiceClient};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_types::StatusExt as _;

fn property_look_up(line1: &str) -> tonic::Request<proto::GetPropertyProfileRequest> {
    let mut request = tonic::Request::new(proto::GetPropertyProfileRequest {
        address: Some(proto::Address {
            line1: line1.into(),
            line2: String::new(),
            city: "Costa Mesa".into(),
            state: "CA".into(),
            postal_code: "92626".into(),
        }),
        apn: String::new(),
        force_refresh: true,
    });
    request.set_timeout(Duration::from_secs(30));
    request
}

#[tokio::test]
async fn a_saturated_server_sheds_calls_at_once_and_keeps_answering_health() {
    let app = TestApp::spawn_with(|a| a.max_calls_in_flight = 1).await;
    // The one call in flight hangs on a vendor that stalls mid-body.
    app.sims.set_behaviour(
        Upstream::PropertyRecords,
        Behaviour::with_fault(Fault::StalledBody),
    );
    let channel = app.channel().await;
    let held = tokio::spawn({
        let channel = channel.clone();
        async move {
            DataServiceClient::new(channel)
                .get_property_profile(property_look_up("1200 Harbor Blvd"))
                .await
        }
    });
    eventually(
        "the first call to reach the stalling vendor",
        Duration::from_secs(10),
        || async { (app.sims.stats(Upstream::PropertyRecords).total() > 0).then_some(()) },
    )
    .await;

    // The next call is shed at once, with a delay to retry after, and counted.
    let err = DataServiceClient::new(channel.clone())
        .get_property_profile(property_look_up("1201 Harbor Blvd"))
        .await
        .expect_err("a second call past the limit of one");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.get_details_retry_info().is_some(), "{err:?}");
    assert!(err.message().contains("calls in flight"), "{err:?}");
    assert!(app.metrics().await.contains("dossier_rpc_shed_total"));
    // Health is never shed.
    let health = HealthClient::new(channel.clone())
        .check(HealthCheckRequest::default())
        .await
        .expect("health answers while the server is saturated")
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);

    // Once the call in flight ends (its caller gives up), calls are served again.
    held.abort();
    let _ = held.await;
    app.sims
        .set_behaviour(Upstream::PropertyRecords, Behaviour::default());
    eventually(
        "a call to be served once the one in flight has ended",
        Duration::from_secs(30),
        || async {
            DataServiceClient::new(channel.clone())
                .get_property_profile(property_look_up("1200 Harbor Blvd"))
                .await
                .ok()
        },
    )
    .await;
}
