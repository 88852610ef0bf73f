//! One log line and one metric per RPC, whatever way it ends: answered, failed,
//! refused, cut off by the caller's deadline or cancelled by the caller.
//!
//! The status of a gRPC call is not known when the handler returns: a success (and
//! every stream) carries `grpc-status` in the trailers, after the last message, and a
//! call may never end at all from the server's point of view (the client resets the
//! stream, tonic's deadline drops the handler). So the record of a call travels with
//! it: first inside the response future, then inside the response body, and it is
//! written exactly once, when the trailers pass, when the body ends, or when whichever
//! holds it is dropped unfinished.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body::{Body, Frame, SizeHint};

use super::{MAX_CALL_DURATION, method_label, parse_grpc_timeout};
use crate::identity::Caller;

/// Per-RPC log fields a handler can fill in (today: the application id). Put in the
/// request extensions by [`RpcLogLayer`], read back when the RPC ends.
#[derive(Debug, Clone, Default)]
pub struct RpcLog(Arc<Mutex<Option<String>>>);

impl RpcLog {
    pub fn set_application(&self, id: String) {
        *self.0.lock().expect("RpcLog lock poisoned") = Some(id);
    }

    fn application(&self) -> Option<String> {
        self.0.lock().expect("RpcLog lock poisoned").clone()
    }
}

/// Logs one structured line per RPC (method, gRPC status, latency to the end of the
/// stream, application id, caller) and counts it in `dossier_rpc_requests_total` and
/// `dossier_rpc_duration_seconds`. Only these fields: requests carry SSNs and dates of
/// birth and are never logged.
#[derive(Debug, Clone, Copy, Default)]
pub struct RpcLogLayer;

impl<S> tower::Layer<S> for RpcLogLayer {
    type Service = RpcLogService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RpcLogService { inner }
    }
}

#[derive(Debug, Clone)]
pub struct RpcLogService<S> {
    inner: S,
}

impl<S, B, RB> tower::Service<http::Request<B>> for RpcLogService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
    B: Send + 'static,
    RB: Body + Unpin,
{
    type Response = http::Response<ObservedBody<RB>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let log = RpcLog::default();
        request.extensions_mut().insert(log.clone());
        let method = method_label(request.uri().path());
        let caller = Caller::of(&request);
        let span = crate::telemetry::rpc_span(method, &caller, request.headers());
        let mut record = CallRecord {
            method,
            caller,
            log,
            started: Instant::now(),
            client_timeout: request
                .headers()
                .get("grpc-timeout")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_grpc_timeout),
            span: span.clone(),
            done: false,
        };
        let future = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        Box::pin(tracing::Instrument::instrument(
            async move {
                match future.await {
                    Ok(response) => {
                        let (mut parts, body) = response.into_parts();
                        // An error comes back "trailers-only": its grpc-status is in the
                        // headers and the body is empty.
                        let mut code = status_in(&parts.headers);
                        if code == Some(tonic::Code::Internal) && is_decode_failure(&parts.headers)
                        {
                            code = Some(tonic::Code::InvalidArgument);
                            as_invalid_request(&mut parts.headers);
                        }
                        Ok(http::Response::from_parts(
                            parts,
                            ObservedBody {
                                inner: body,
                                headers_code: code,
                                record: Some(record),
                            },
                        ))
                    }
                    Err(e) => {
                        record.transport_error(&e);
                        Err(e)
                    }
                }
            },
            span,
        ))
    }
}

/// What is known about a call until it ends. Written once: by [`CallRecord::finish`],
/// or, dropped unfinished, as the caller's cancellation or deadline.
struct CallRecord {
    method: &'static str,
    caller: Caller,
    log: RpcLog,
    started: Instant,
    /// The deadline the caller sent (grpc-timeout), uncapped: it tells a call cut off
    /// by its deadline from one the caller abandoned.
    client_timeout: Option<Duration>,
    span: tracing::Span,
    done: bool,
}

impl CallRecord {
    fn finish(&mut self, code: tonic::Code) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let latency = self.started.elapsed();
        let latency_ms = latency.as_secs_f64() * 1000.0;
        let code_name = code_name(code);
        metrics::counter!("dossier_rpc_requests_total", "method" => self.method, "code" => code_name)
            .increment(1);
        metrics::histogram!("dossier_rpc_duration_seconds", "method" => self.method, "code" => code_name)
            .record(latency.as_secs_f64());
        let application_id = self.log.application();
        let (method, caller) = (self.method, &self.caller);
        let _entered = self.span.enter();
        crate::telemetry::record_status(&self.span, code);
        match code {
            tonic::Code::Internal | tonic::Code::Unknown | tonic::Code::DataLoss => {
                tracing::error!(target: "dossier::rpc", method, code = code_name, latency_ms, application_id, %caller, "rpc")
            }
            tonic::Code::InvalidArgument => {
                tracing::warn!(target: "dossier::rpc", method, code = code_name, latency_ms, application_id, %caller, "rpc")
            }
            _ => {
                tracing::info!(target: "dossier::rpc", method, code = code_name, latency_ms, application_id, %caller, "rpc")
            }
        }
    }

    /// The connection failed under the call (hyper's error, not a gRPC status).
    fn transport_error(&mut self, error: &dyn std::fmt::Display) {
        let latency_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        let (method, caller) = (self.method, &self.caller);
        {
            let _entered = self.span.enter();
            tracing::warn!(target: "dossier::rpc", method, error = %error, latency_ms, %caller, "rpc transport error");
        }
        // Counted as the caller saw it: the call did not complete.
        self.finish_quietly(tonic::Code::Unavailable);
    }

    /// Counts the call without a second log line.
    fn finish_quietly(&mut self, code: tonic::Code) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let code_name = code_name(code);
        metrics::counter!("dossier_rpc_requests_total", "method" => self.method, "code" => code_name)
            .increment(1);
        metrics::histogram!("dossier_rpc_duration_seconds", "method" => self.method, "code" => code_name)
            .record(self.started.elapsed().as_secs_f64());
    }

    /// The code of a call that ended without a status: dropped before its answer or
    /// mid-stream. Past the caller's deadline (or, before the answer, past the server's
    /// cap on it, where tonic answers DEADLINE_EXCEEDED itself) it is the deadline;
    /// otherwise the caller went away.
    fn abandoned_code(&self, answered: bool) -> tonic::Code {
        let elapsed = self.started.elapsed();
        let deadline = match (self.client_timeout, answered) {
            (Some(t), false) => Some(t.min(MAX_CALL_DURATION)),
            (None, false) => Some(MAX_CALL_DURATION),
            // A stream's answer has begun: only the caller's own deadline bounds it.
            (t, true) => t,
        };
        match deadline {
            Some(d) if elapsed >= d => tonic::Code::DeadlineExceeded,
            _ => tonic::Code::Cancelled,
        }
    }
}

impl Drop for CallRecord {
    fn drop(&mut self) {
        if !self.done {
            // Dropped here, still inside the response future: no answer was sent.
            let code = self.abandoned_code(false);
            self.finish(code);
        }
    }
}

/// The response body with the call's record: the status is read from the trailers as
/// they pass, and the call ends when the body does.
pub struct ObservedBody<B> {
    inner: B,
    headers_code: Option<tonic::Code>,
    record: Option<CallRecord>,
}

impl<B> ObservedBody<B> {
    fn end(&mut self, code: tonic::Code) {
        if let Some(mut record) = self.record.take() {
            record.finish(code);
        }
    }
}

impl<B: Body + Unpin> Body for ObservedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let code = status_in(trailers).unwrap_or(tonic::Code::Unknown);
                    self.end(code);
                }
            }
            // The body failed while streaming: the client sees the stream reset.
            Poll::Ready(Some(Err(_))) => self.end(tonic::Code::Internal),
            Poll::Ready(None) => {
                // Trailers-only (the status was in the headers), or a body that ended
                // without any status, which a gRPC client reports as UNKNOWN... unless
                // tonic had put it in the headers.
                let code = self.headers_code.unwrap_or(tonic::Code::Unknown);
                self.end(code);
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for ObservedBody<B> {
    fn drop(&mut self) {
        if let Some(mut record) = self.record.take() {
            // A trailers-only answer that hyper sent without polling the (empty) body.
            let code = match self.headers_code {
                Some(code) => code,
                None => record.abandoned_code(true),
            };
            record.finish(code);
        }
    }
}

fn status_in(headers: &http::HeaderMap) -> Option<tonic::Code> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(tonic::Code::from)
}

/// The `code` label and log field: tonic's names (`Ok`, `DeadlineExceeded`, …), fixed
/// strings so the label set is bounded.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "Ok",
        Cancelled => "Cancelled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

/// tonic-prost answers a request that is not protobuf of the method's type with
/// INTERNAL "failed to decode Protobuf message: …" (the gRPC spec's code for a parse
/// error). On the server that is the caller's mistake, not Dossier's: it must not page
/// anyone or fill the error log, so it becomes INVALID_ARGUMENT.
fn is_decode_failure(headers: &http::HeaderMap) -> bool {
    // grpc-message is percent-encoded on the wire (spaces as %20).
    headers.get("grpc-message").is_some_and(|m| {
        let m = m.as_bytes();
        m.starts_with(b"failed%20to%20decode%20Protobuf%20message")
            || m.starts_with(b"failed to decode Protobuf message")
    })
}

fn as_invalid_request(headers: &mut http::HeaderMap) {
    headers.insert(
        "grpc-status",
        http::HeaderValue::from(tonic::Code::InvalidArgument as i32),
    );
    headers.insert(
        "grpc-message",
        http::HeaderValue::from_static(
            "the%20request%20message%20does%20not%20decode%20as%20protobuf%20of%20this%20method%27s%20request%20type",
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(client_timeout: Option<Duration>, started_ago: Duration) -> CallRecord {
        CallRecord {
            method: "unknown",
            caller: Caller::Anonymous,
            log: RpcLog::default(),
            started: Instant::now() - started_ago,
            client_timeout,
            span: tracing::Span::none(),
            // Not counted when dropped at the end of the test.
            done: true,
        }
    }

    #[test]
    fn an_abandoned_call_is_the_deadline_once_it_has_passed_else_a_cancellation() {
        let s = Duration::from_secs;
        // Before the answer: the caller's deadline, capped by the server's.
        assert_eq!(
            record(Some(s(1)), s(2)).abandoned_code(false),
            tonic::Code::DeadlineExceeded
        );
        assert_eq!(
            record(Some(s(10)), s(2)).abandoned_code(false),
            tonic::Code::Cancelled
        );
        assert_eq!(
            record(Some(s(3600)), MAX_CALL_DURATION).abandoned_code(false),
            tonic::Code::DeadlineExceeded
        );
        assert_eq!(
            record(None, MAX_CALL_DURATION).abandoned_code(false),
            tonic::Code::DeadlineExceeded
        );
        // Mid-stream: only the caller's deadline; a stream may outlive the server's cap.
        assert_eq!(
            record(None, MAX_CALL_DURATION * 2).abandoned_code(true),
            tonic::Code::Cancelled
        );
        assert_eq!(
            record(Some(s(1)), s(2)).abandoned_code(true),
            tonic::Code::DeadlineExceeded
        );
    }

    #[test]
    fn code_labels_are_tonics_names() {
        for code in [
            tonic::Code::Ok,
            tonic::Code::DeadlineExceeded,
            tonic::Code::Unavailable,
            tonic::Code::Unauthenticated,
        ] {
            assert_eq!(code_name(code), format!("{code:?}"));
        }
    }
}
