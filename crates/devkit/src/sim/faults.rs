//! Misbehaviour on demand: added latency, random 503s, a token-bucket quota answered with
//! 429, and broken responses ([`Fault`]).
//!
//! One middleware per simulator applies the current [`Behaviour`] to every request except
//! the `/_sim/*` control routes, in this order: quota (429) → latency → error rate (503) →
//! fault → the real handler.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::SimState;
use super::conn::ConnHandle;

/// How one simulator misbehaves. `Default` is a perfect upstream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Behaviour {
    /// Fixed latency added to every request, in milliseconds.
    pub latency_ms: u64,
    /// Chance (0.0–1.0) that a request is answered `503 {"error":"unavailable"}`.
    pub error_rate: f64,
    /// Token-bucket quota: this many requests per second on average, bursts of up to
    /// `max(1, quota_per_second)`. Above it: `429` with `Retry-After` and
    /// `{"error":"rate_limited"}`. `None`: unlimited. Fractions are allowed (0.01 = one
    /// request per 100 s), which makes "the second request is refused" deterministic.
    pub quota_per_second: Option<f64>,
    /// A broken response to give instead of the real one.
    pub fault: Fault,
    /// Chance (0.0–1.0) that `fault` applies to a given request; default 1.0 (always).
    pub fault_rate: f64,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            latency_ms: 0,
            error_rate: 0.0,
            quota_per_second: None,
            fault: Fault::None,
            fault_rate: 1.0,
        }
    }
}

impl Behaviour {
    /// A perfect upstream that always answers with `fault`.
    pub fn with_fault(fault: Fault) -> Self {
        Behaviour {
            fault,
            ..Behaviour::default()
        }
    }

    /// Check the values are in range.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(format!(
                "error_rate must be within 0.0–1.0, got {}",
                self.error_rate
            ));
        }
        if !(0.0..=1.0).contains(&self.fault_rate) {
            return Err(format!(
                "fault_rate must be within 0.0–1.0, got {}",
                self.fault_rate
            ));
        }
        if let Some(q) = self.quota_per_second {
            if !(q.is_finite() && q > 0.0) {
                return Err(format!("quota_per_second must be positive, got {q}"));
            }
        }
        Ok(())
    }
}

/// A broken response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// The real response.
    #[default]
    None,
    /// The real status and `Content-Type: application/json`, but a complete body that is not
    /// JSON (the real body with every `"` turned into `'`).
    MalformedJson,
    /// `502 Bad Gateway` with an HTML page, as a load balancer in front of the vendor would.
    HtmlError,
    /// The real status and a `Content-Length` of the real body, but only its first half is
    /// sent before the connection is aborted.
    TruncatedBody,
    /// `200 OK` with the body `{"error":"internal"}`.
    #[serde(rename = "error_in_200")]
    ErrorIn200,
    /// The socket is closed (with a TCP RST) without any response.
    ConnectionReset,
    /// The real status, headers and first half of the body, then nothing until the client
    /// gives up (or the simulators shut down).
    StalledBody,
}

/// The behaviour of one simulator and the state of its quota.
#[derive(Debug)]
pub(crate) struct Controls {
    inner: Mutex<ControlState>,
}

#[derive(Debug)]
struct ControlState {
    behaviour: Behaviour,
    bucket: Option<TokenBucket>,
}

impl Controls {
    pub(crate) fn new(behaviour: Behaviour) -> Self {
        Controls {
            inner: Mutex::new(ControlState {
                bucket: behaviour.quota_per_second.map(TokenBucket::new),
                behaviour,
            }),
        }
    }

    pub(crate) fn behaviour(&self) -> Behaviour {
        self.inner.lock().expect("controls lock").behaviour.clone()
    }

    /// Replace the behaviour; the quota starts afresh with a full bucket.
    pub(crate) fn set(&self, behaviour: Behaviour) {
        let mut inner = self.inner.lock().expect("controls lock");
        inner.bucket = behaviour.quota_per_second.map(TokenBucket::new);
        inner.behaviour = behaviour;
    }

    /// Take one token; `Err(wait)` when the quota is exhausted.
    fn admit(&self) -> Result<(), Duration> {
        match &mut self.inner.lock().expect("controls lock").bucket {
            Some(bucket) => bucket.try_take(Instant::now()),
            None => Ok(()),
        }
    }
}

#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: f64) -> Self {
        let capacity = rate.max(1.0);
        TokenBucket {
            rate,
            capacity,
            tokens: capacity,
            last: Instant::now(),
        }
    }

    fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

/// Middleware: apply the simulator's current [`Behaviour`].
pub(crate) async fn middleware(
    State(state): State<Arc<SimState>>,
    request: Request,
    next: Next,
) -> Response {
    if super::is_control_path(request.uri().path()) {
        return next.run(request).await;
    }
    let behaviour = state.controls.behaviour();

    if let Err(wait) = state.controls.admit() {
        state.stats.record_refused();
        // Whole seconds, rounded up: 1 for any quota of at least one request per second.
        let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
        let mut response = super::json_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        return response;
    }

    if behaviour.latency_ms > 0 {
        let mut shutdown = state.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(behaviour.latency_ms)) => {}
            // Do not hold up a shutdown.
            _ = shutdown.wait_for(|stopping| *stopping) => {}
        }
    }

    if behaviour.error_rate > 0.0 && rand::random::<f64>() < behaviour.error_rate {
        return super::json_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    }

    let applies = behaviour.fault_rate >= 1.0 || rand::random::<f64>() < behaviour.fault_rate;
    let fault = if applies {
        behaviour.fault
    } else {
        Fault::None
    };
    match fault {
        Fault::None => next.run(request).await,
        Fault::ErrorIn200 => super::json_error(StatusCode::OK, "internal"),
        Fault::HtmlError => (
            StatusCode::BAD_GATEWAY,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
             <center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n\
             </body>\r\n</html>\r\n",
        )
            .into_response(),
        Fault::ConnectionReset => {
            match request.extensions().get::<ConnectInfo<ConnHandle>>() {
                Some(ConnectInfo(conn)) => {
                    // The socket fails as hyper starts writing this response, so none of
                    // it is sent (see `conn`). The body must be an ordinary one: a failing
                    // body would make hyper drop the socket before touching it, which
                    // closes with FIN instead of RST.
                    conn.kill();
                    StatusCode::INTERNAL_SERVER_ERROR.into_response()
                }
                // Served without `SimListener`: a body that fails at once is the closest
                // thing (hyper drops the connection before flushing the head).
                None => Response::new(Body::from_stream(futures::stream::once(async {
                    Err::<Bytes, _>(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        "simulated connection reset",
                    ))
                }))),
            }
        }
        Fault::MalformedJson => {
            let (parts, body) = real_response(next.run(request).await).await;
            let mangled: Vec<u8> = body
                .iter()
                .map(|&b| if b == b'"' { b'\'' } else { b })
                .collect();
            let mut response = Response::from_parts(parts, Body::from(mangled));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Fault::TruncatedBody => {
            let (parts, body) = real_response(next.run(request).await).await;
            let half = body.slice(..body.len() / 2);
            let stream = futures::stream::once(async move { Ok::<_, io::Error>(half) }).chain(
                futures::stream::once(async {
                    // Let hyper flush the first half before the body fails.
                    tokio::task::yield_now().await;
                    Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "simulated truncated body",
                    ))
                }),
            );
            with_full_length(parts, body.len(), Body::from_stream(stream))
        }
        Fault::StalledBody => {
            let (parts, body) = real_response(next.run(request).await).await;
            let half = body.slice(..body.len() / 2);
            let mut shutdown = state.shutdown.clone();
            let stream = futures::stream::once(async move { Ok::<_, io::Error>(half) }).chain(
                futures::stream::once(async move {
                    let _ = shutdown.wait_for(|stopping| *stopping).await;
                    Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "simulator shutting down",
                    ))
                }),
            );
            with_full_length(parts, body.len(), Body::from_stream(stream))
        }
    }
}

async fn real_response(response: Response) -> (axum::http::response::Parts, Bytes) {
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    (parts, bytes)
}

/// A response announcing `len` bytes whose body will deliver fewer.
fn with_full_length(mut parts: axum::http::response::Parts, len: usize, body: Body) -> Response {
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_refuses() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(2.0);
        assert!(bucket.try_take(start).is_ok());
        assert!(bucket.try_take(start).is_ok());
        let wait = bucket.try_take(start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(bucket.try_take(start + Duration::from_millis(500)).is_ok());
    }

    #[test]
    fn fault_names() {
        let names: Vec<String> = [
            Fault::None,
            Fault::MalformedJson,
            Fault::HtmlError,
            Fault::TruncatedBody,
            Fault::ErrorIn200,
            Fault::ConnectionReset,
            Fault::StalledBody,
        ]
        .iter()
        .map(|f| {
            serde_json::to_value(f)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
        assert_eq!(
            names,
            [
                "none",
                "malformed_json",
                "html_error",
                "truncated_body",
                "error_in_200",
                "connection_reset",
                "stalled_body"
            ]
        );
    }

    #[test]
    fn behaviour_validation() {
        assert!(Behaviour::default().validate().is_ok());
        let b = Behaviour {
            error_rate: 1.5,
            ..Behaviour::default()
        };
        assert!(b.validate().is_err());
        let b = Behaviour {
            quota_per_second: Some(0.0),
            ..Behaviour::default()
        };
        assert!(b.validate().is_err());
        let b: Behaviour = serde_json::from_str(r#"{"fault":"stalled_body"}"#).unwrap();
        assert_eq!(b, Behaviour::with_fault(Fault::StalledBody));
        assert!(serde_json::from_str::<Behaviour>(r#"{"latency":5}"#).is_err());
    }
}
