//! Server reflection, v1 and v1alpha.

use std::collections::BTreeSet;

use dossier_devkit::harness::TestApp;
use prost::Message;

/// Asks a reflection service (v1 or v1alpha) for its service list and for the file
/// defining dossier.v1.UnderwritingService; yields (service names, decoded file).
macro_rules! reflect {
    ($version:ident, $channel:expr) => {{
        use tonic_reflection::pb::$version::ServerReflectionRequest;
        use tonic_reflection::pb::$version::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::$version::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::$version::server_reflection_response::MessageResponse;
        let mut client = ServerReflectionClient::new($channel);
        let ask = |m| ServerReflectionRequest {
            host: String::new(),
            message_request: Some(m),
        };
        let requests = vec![
            ask(MessageRequest::ListServices(String::new())),
            ask(MessageRequest::FileContainingSymbol(
                "dossier.v1.UnderwritingService".into(),
            )),
        ];
        let mut answers = client
            .server_reflection_info(tokio_stream::iter(requests))
            .await
            .unwrap()
            .into_inner();
        let services: BTreeSet<String> =
            match answers.message().await.unwrap().unwrap().message_response {
                Some(MessageResponse::ListServicesResponse(list)) => {
                    list.service.into_iter().map(|s| s.name).collect()
                }
                other => panic!("expected a service list, got {other:?}"),
            };
        let file = match answers.message().await.unwrap().unwrap().message_response {
            Some(MessageResponse::FileDescriptorResponse(files)) => {
                assert!(
                    !files.file_descriptor_proto.is_empty(),
                    "at least one file comes back"
                );
                prost_types::FileDescriptorProto::decode(files.file_descriptor_proto[0].as_slice())
                    .unwrap()
            }
            other => panic!("expected a file descriptor, got {other:?}"),
        };
        (services, file)
    }};
}

/// grpcurl and Postman can discover every service through reflection, v1 and v1alpha.
#[tokio::test]
async fn reflection_lists_every_service_and_describes_them() {
    let app = TestApp::spawn().await;
    let (v1_services, v1_file) = reflect!(v1, app.channel().await);
    let (v1alpha_services, v1alpha_file) = reflect!(v1alpha, app.channel().await);
    for (version, services, file) in [
        ("v1", v1_services, v1_file),
        ("v1alpha", v1alpha_services, v1alpha_file),
    ] {
        for want in [
            "dossier.v1.UnderwritingService",
            "dossier.v1.DataService",
            "grpc.health.v1.Health",
        ] {
            assert!(
                services.contains(want),
                "{version}: {want} missing from {services:?}"
            );
        }
        assert_eq!(file.package(), "dossier.v1", "{version}");
        let service = file
            .service
            .iter()
            .find(|s| s.name() == "UnderwritingService")
            .unwrap_or_else(|| panic!("{version}: {file:?}"));
        let methods: Vec<&str> = service.method.iter().map(|m| m.name()).collect();
        assert!(
            methods.contains(&"EvaluateApplication"),
            "{version}: {methods:?}"
        );
    }
}
