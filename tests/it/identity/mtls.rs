//! The "done when" of zero trust on the transport: an allowed SPIFFE ID succeeds,
//! another gets PERMISSION_DENIED, no certificate cannot call at all, and a certificate
//! rotated on disk reaches new handshakes while an open stream survives.

use std::time::Duration;

use dossier_devkit::harness::eventually;
use dossier_devkit::pki::TrustDomain;
use dossier_service::proto::data_service_client::DataServiceClient;
use dossier_service::proto::underwriting_service_client::UnderwritingServiceClient;
use dossier_service::proto::{self, ListReportsRequest};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::{MARKETING, MtlsApp, ORIGINATION, RAILS_SYNC, der_of, server_certificate};

fn list() -> ListReportsRequest {
    ListReportsRequest::default()
}

#[tokio::test]
async fn callers_are_admitted_by_certificate_and_authorised_by_the_policy() {
    let m = MtlsApp::spawn().await;
    let origination = m.domain.issue(ORIGINATION, &[]);
    let marketing = m.domain.issue(MARKETING, &[]);

    // An allowed SPIFFE ID calls what the policy grants it.
    let channel = m.channel(Some(&origination)).await.unwrap();
    let mut client = UnderwritingServiceClient::new(channel.clone());
    client
        .list_reports(list())
        .await
        .expect("origination may list reports");
    let submitted = client
        .submit_application(proto::SubmitApplicationRequest {
            idempotency_key: "mtls-1".into(),
            source: Some(proto::submit_application_request::Source::Application(
                dossier_devkit::harness::example_application("approve"),
            )),
        })
        .await
        .expect("origination may submit");
    assert!(!submitted.into_inner().application_id.is_empty());

    // ...and nothing else: the refusal names the method, never the policy.
    let err = DataServiceClient::new(channel.clone())
        .get_person_profile(proto::GetPersonProfileRequest::default())
        .await
        .expect_err("origination may not look people up");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(
        err.message()
            .contains("dossier.v1.DataService/GetPersonProfile"),
        "{err:?}"
    );
    assert!(!err.message().contains("origination"), "{err:?}");

    // Another SPIFFE ID of the same trust domain is refused everything but health.
    let other = m.channel(Some(&marketing)).await.unwrap();
    let err = UnderwritingServiceClient::new(other.clone())
        .list_reports(list())
        .await
        .expect_err("a workload the policy does not name is refused");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(
        err.message()
            .contains("dossier.v1.UnderwritingService/ListReports")
    );
    let status = HealthClient::new(other)
        .check(HealthCheckRequest::default())
        .await
        .expect("health answers every authenticated caller")
        .into_inner()
        .status();
    assert_eq!(status, ServingStatus::Serving);

    // No certificate, a certificate of another trust domain, or plaintext: no call
    // gets through, not even to be refused by the policy.
    let stranger = TrustDomain::new("dossier.test").issue(ORIGINATION, &[]);
    for (what, svid) in [("no certificate", None), ("a foreign CA", Some(&stranger))] {
        let outcome = match m.channel(svid).await {
            Err(_) => None,
            Ok(channel) => Some(
                UnderwritingServiceClient::new(channel)
                    .list_reports(list())
                    .await
                    .expect_err(what),
            ),
        };
        if let Some(err) = outcome {
            assert_ne!(
                err.code(),
                Code::PermissionDenied,
                "{what} reached the policy"
            );
        }
    }
    let plaintext = tonic::transport::Channel::from_shared(format!("http://{}", m.app.addr))
        .unwrap()
        .connect()
        .await;
    if let Ok(channel) = plaintext {
        UnderwritingServiceClient::new(channel)
            .list_reports(list())
            .await
            .expect_err("plaintext gRPC on the TLS port");
    }

    // The kubelet's probe port: plaintext, health only.
    let probe = tonic::transport::Channel::from_shared(format!(
        "http://{}",
        m.app.health.expect("a health port")
    ))
    .unwrap()
    .connect()
    .await
    .unwrap();
    let status = HealthClient::new(probe.clone())
        .check(HealthCheckRequest {
            service: "dossier.v1.UnderwritingService".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status();
    assert_eq!(status, ServingStatus::Serving);
    let err = UnderwritingServiceClient::new(probe)
        .list_reports(list())
        .await
        .expect_err("the probe port serves health only");
    assert_eq!(err.code(), Code::Unimplemented, "{err:?}");

    // Every refusal is counted, by method.
    let metrics = m.app.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("dossier_authz_denied_total") && l.contains("GetPersonProfile")),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_rotated_certificate_reaches_new_handshakes_while_open_streams_survive() {
    let mut m = MtlsApp::spawn().await;
    let origination = m.domain.issue(ORIGINATION, &[]);
    let first = server_certificate(m.app.addr, &m.domain.bundle_pem, &origination).await;
    assert_eq!(
        first,
        der_of(&std::fs::read_to_string(&m.files.cert).unwrap())
    );

    // A stream opened on the old certificate.
    let channel = m.channel(Some(&origination)).await.unwrap();
    let mut watch = HealthClient::new(channel.clone())
        .watch(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    let initial = watch.message().await.unwrap().unwrap();
    assert_eq!(initial.status(), ServingStatus::Serving);

    let rotated = m.domain.rotate_server_files(&m.files);
    let new = der_of(&rotated.cert_pem);
    let addr = m.app.addr;
    let bundle = m.domain.bundle_pem.clone();
    eventually(
        "new handshakes present the rotated certificate",
        Duration::from_secs(20),
        || {
            let origination = origination.clone();
            let bundle = bundle.clone();
            let new = new.clone();
            async move { (server_certificate(addr, &bundle, &origination).await == new).then_some(()) }
        },
    )
    .await;

    // The connection made before the rotation still carries calls and its stream.
    UnderwritingServiceClient::new(channel)
        .list_reports(list())
        .await
        .expect("a connection made before the rotation keeps working");
    let server = m.app.begin_stop().expect("the server is running");
    let last = tokio::time::timeout(Duration::from_secs(30), watch.message())
        .await
        .expect("the stream opened before the rotation is still open at shutdown")
        .expect("the stream is intact")
        .expect("the stream carries the shutdown's status");
    assert_eq!(last.status(), ServingStatus::NotServing);
    server.await.unwrap().unwrap();
}

/// Dossier fetches a Rails application with its own token, so naming one is a
/// capability of its own: a caller that may submit inline applications may not make
/// Dossier read Rails' applicants for it.
#[tokio::test]
async fn only_callers_allowed_to_name_rails_applications_may_submit_them() {
    let m = MtlsApp::spawn().await;
    let by_rails_id = |key: &str| proto::SubmitApplicationRequest {
        idempotency_key: key.into(),
        source: Some(proto::submit_application_request::Source::RailsApplicationId("R-100".into())),
    };
    let origination = m.domain.issue(ORIGINATION, &[]);
    let err = UnderwritingServiceClient::new(m.channel(Some(&origination)).await.unwrap())
        .submit_application(by_rails_id("rails-1"))
        .await
        .expect_err("origination may not name Rails applications");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("rails_application_id"), "{err:?}");
    let applications: i64 = sqlx::query_scalar("SELECT count(*) FROM applications")
        .fetch_one(&m.app.pool)
        .await
        .unwrap();
    assert_eq!(applications, 0, "a refused submission stores nothing");

    let sync = m.domain.issue(RAILS_SYNC, &[]);
    UnderwritingServiceClient::new(m.channel(Some(&sync)).await.unwrap())
        .submit_application(by_rails_id("rails-2"))
        .await
        .expect("the Rails sync job may");
}
