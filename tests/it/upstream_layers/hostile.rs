//! A hostile or broken upstream: redirects are not followed (requests carry SSNs and
//! credentials), oversized bodies are not read, and both become typed errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::response::IntoResponse;
use dossier_devkit::sim::Upstream;
use dossier_upstream::UpstreamError;

use super::{Rig, ctx};

/// Serves `app` on a free loopback port.
async fn serve(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn redirects_are_not_followed_and_huge_bodies_are_not_read() {
    // Where a redirect would send the request: it must never be called.
    let stolen = Arc::new(AtomicUsize::new(0));
    let trap = {
        let stolen = stolen.clone();
        serve(axum::Router::new().fallback(move || {
            stolen.fetch_add(1, Ordering::SeqCst);
            async { "{}" }
        }))
        .await
    };
    let vendor = serve(
        axum::Router::new()
            .route(
                "/redirect/{*rest}",
                axum::routing::get(move || async move {
                    (
                        axum::http::StatusCode::TEMPORARY_REDIRECT,
                        [("location", format!("http://{trap}/steal"))],
                    )
                        .into_response()
                }),
            )
            .route(
                "/huge/{*rest}",
                axum::routing::get(|| async {
                    // 5 MB of a JSON string, past the 4 MiB cap.
                    format!("\"{}\"", "9".repeat(5 * 1024 * 1024))
                }),
            ),
    )
    .await;
    for (prefix, expect) in [("redirect", "HTTP 307"), ("huge", "larger than")] {
        let rig = Rig::new(move |name, p| {
            if name == Upstream::Licensing {
                p.base_url = Some(format!("http://{vendor}/{prefix}"));
                p.retry.max_attempts = 1;
            }
        })
        .await;
        let err = rig
            .upstreams
            .licensing
            .license("CA", "111111", &ctx())
            .await
            .expect_err(prefix);
        let text = err.to_string();
        assert!(text.contains(expect), "{prefix}: {text}");
        match (prefix, &err) {
            ("redirect", UpstreamError::Status { status: 307, .. }) => {}
            ("huge", UpstreamError::Body { .. }) => {}
            _ => panic!("{prefix}: unexpected error {err:?}"),
        }
    }
    assert_eq!(stolen.load(Ordering::SeqCst), 0, "a redirect was followed");
}
