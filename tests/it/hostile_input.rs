//! Hostile input over a real socket: bytes that are not protobuf, strings that are not
//! UTF-8, megabyte strings. Each gets a clear INVALID_ARGUMENT that echoes nothing
//! large, and the server keeps serving a well-behaved client.

use bytes::{Buf, BufMut};
use dossier_devkit::harness::{TestApp, example_application};
use dossier_service::proto;
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// Sends the given bytes as the request message, ignores the response body.
#[derive(Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = ();
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<()>, tonic::Status> {
        src.advance(src.remaining());
        Ok(Some(()))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = ();
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

async fn raw_call(app: &TestApp, path: &'static str, body: Vec<u8>) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(app.channel().await);
    grpc.ready().await.unwrap();
    grpc.unary(
        tonic::Request::new(body),
        http::uri::PathAndQuery::from_static(path),
        RawCodec,
    )
    .await
    .expect_err("a malformed request is refused")
}

#[tokio::test]
async fn malformed_requests_are_the_callers_error_and_the_server_keeps_serving() {
    let app = TestApp::spawn().await;
    const GET_REPORT: &str = "/dossier.v1.UnderwritingService/GetReport";
    let cases: [(&str, Vec<u8>); 3] = [
        ("not protobuf", vec![0xff, 0xff, 0xff, 0xff]),
        // Field 1 (application_id), length 2, bytes that are not UTF-8.
        ("a string that is not UTF-8", vec![0x0a, 0x02, 0xc3, 0x28]),
        // Field 1 claims 100 bytes and the message ends after 1.
        ("a truncated field", vec![0x0a, 0x64, b'a']),
    ];
    for (what, body) in cases {
        let status = raw_call(&app, GET_REPORT, body).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        assert!(
            status.message().contains("does not decode"),
            "{what}: {status:?}"
        );
    }
    let metrics = app.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("dossier_rpc_requests_total")
                && l.contains("GetReport")
                && l.contains("InvalidArgument")),
        "malformed requests are counted as the caller's errors: {metrics}"
    );

    // A megabyte state code is refused without being echoed back.
    let mut application = example_application("approve");
    application
        .property
        .as_mut()
        .unwrap()
        .address
        .as_mut()
        .unwrap()
        .state = "Z".repeat(60_000);
    let mut client = app.client().await;
    let err = client
        .submit_application(proto::SubmitApplicationRequest {
            idempotency_key: "hostile-1".into(),
            source: Some(proto::submit_application_request::Source::Application(
                application,
            )),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().len() + err.details().len() < 4096,
        "the refusal stays small: {} + {} bytes",
        err.message().len(),
        err.details().len()
    );

    // Throughout, a well-behaved client is served.
    let ok = client
        .submit_application(proto::SubmitApplicationRequest {
            idempotency_key: "hostile-2".into(),
            source: Some(proto::submit_application_request::Source::Application(
                example_application("approve"),
            )),
        })
        .await
        .expect("the server keeps serving");
    assert!(!ok.into_inner().application_id.is_empty());
}
