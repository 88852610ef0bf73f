//! Faults, as a client sees them and as bytes on the wire.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::*;

#[tokio::test]
async fn fault_error_in_200_and_html_error() {
    let (sims, client) = start().await;
    sims.set_behaviour(
        Upstream::Licensing,
        Behaviour::with_fault(Fault::ErrorIn200),
    );
    let (status, body) = get_json(&client, licence_url(&sims, "654321")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"error": "internal"}));

    sims.set_behaviour(Upstream::Licensing, Behaviour::with_fault(Fault::HtmlError));
    let response = client
        .get(licence_url(&sims, "654321"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(response.text().await.unwrap().contains("<html>"));
    sims.shutdown().await;
}

#[tokio::test]
async fn fault_malformed_json() {
    let (sims, client) = start().await;
    sims.set_behaviour(
        Upstream::Licensing,
        Behaviour::with_fault(Fault::MalformedJson),
    );
    let response = client
        .get(licence_url(&sims, "654321"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body = response.bytes().await.unwrap();
    let real = serde_json::to_vec(&licensing::license_for("CA", "654321").unwrap()).unwrap();
    assert_eq!(body.len(), real.len(), "complete body");
    assert!(serde_json::from_slice::<Value>(&body).is_err());
    sims.shutdown().await;
}

#[tokio::test]
async fn fault_truncated_body() {
    let (sims, client) = start().await;
    sims.set_behaviour(
        Upstream::Licensing,
        Behaviour::with_fault(Fault::TruncatedBody),
    );
    let response = client
        .get(licence_url(&sims, "654321"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let real = serde_json::to_vec(&licensing::license_for("CA", "654321").unwrap()).unwrap();
    assert_eq!(response.content_length(), Some(real.len() as u64));
    assert!(response.bytes().await.is_err(), "the body ends early");

    // The simulator still serves later requests.
    sims.set_behaviour(Upstream::Licensing, Behaviour::default());
    let (status, _) = get_json(&client, licence_url(&sims, "654321")).await;
    assert_eq!(status, StatusCode::OK);
    sims.shutdown().await;
}

#[tokio::test]
async fn fault_connection_reset() {
    let (sims, client) = start().await;
    sims.set_behaviour(
        Upstream::Licensing,
        Behaviour::with_fault(Fault::ConnectionReset),
    );
    let error = client
        .get(licence_url(&sims, "654321"))
        .send()
        .await
        .expect_err("no response at all");
    assert!(!error.is_status() && !error.is_timeout(), "{error:?}");
    assert_eq!(sims.stats(Upstream::Licensing).total(), 1);

    sims.set_behaviour(Upstream::Licensing, Behaviour::default());
    let (status, _) = get_json(&client, licence_url(&sims, "654321")).await;
    assert_eq!(status, StatusCode::OK);
    sims.shutdown().await;
}

#[tokio::test]
async fn fault_stalled_body_stalls_until_shutdown() {
    let (sims, client) = start().await;
    sims.set_behaviour(
        Upstream::Licensing,
        Behaviour::with_fault(Fault::StalledBody),
    );
    let mut response = client
        .get(licence_url(&sims, "654321"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let real = serde_json::to_vec(&licensing::license_for("CA", "654321").unwrap()).unwrap();
    assert_eq!(response.content_length(), Some(real.len() as u64));
    let first = response.chunk().await.unwrap().unwrap();
    assert_eq!(&first[..], &real[..real.len() / 2]);
    // Nothing more comes: a client would time out here.
    let more = tokio::time::timeout(Duration::from_millis(200), response.chunk()).await;
    assert!(more.is_err(), "the body stalls");

    // Shutting down releases the stalled connection instead of waiting for it.
    sims.shutdown().await;
    assert!(response.chunk().await.is_err());
}

/// Send a raw HTTP/1.1 GET and read until the server closes: (bytes received, how it ended).
async fn raw_get(addr: std::net::SocketAddr, path: &str) -> (Vec<u8>, std::io::Result<usize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: sim\r\nconnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let end = socket.read_to_end(&mut received).await;
    (received, end)
}

#[tokio::test]
async fn connection_reset_sends_no_byte_and_resets() {
    let (sims, _) = start().await;
    sims.set_behaviour(
        Upstream::Licensing,
        Behaviour::with_fault(Fault::ConnectionReset),
    );
    let (received, end) = raw_get(sims.addr(Upstream::Licensing), "/v1/licenses/CA/654321").await;
    assert!(received.is_empty(), "no response bytes");
    assert_eq!(end.unwrap_err().kind(), std::io::ErrorKind::ConnectionReset);
    sims.shutdown().await;
}

#[tokio::test]
async fn truncated_body_sends_head_and_half_the_body() {
    let (sims, _) = start().await;
    sims.set_behaviour(
        Upstream::Licensing,
        Behaviour::with_fault(Fault::TruncatedBody),
    );
    let (received, _) = raw_get(sims.addr(Upstream::Licensing), "/v1/licenses/CA/654321").await;
    let text = String::from_utf8(received).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete head");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    let real = serde_json::to_string(&licensing::license_for("CA", "654321").unwrap()).unwrap();
    assert!(
        head.contains(&format!("content-length: {}", real.len())),
        "{head}"
    );
    assert_eq!(body, &real[..real.len() / 2]);
    sims.shutdown().await;
}
