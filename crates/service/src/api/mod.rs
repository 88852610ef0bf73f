//! The gRPC surface: tonic handlers that validate, convert proto ⇄ domain and map
//! errors to `Status`, plus the per-RPC log layer.

mod accesses;
pub mod convert;
pub mod data;
pub mod error;
mod page_token;
mod shed;
pub mod underwriting;
pub mod validate;
mod watch;
pub mod watch_limits;

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use prost::Message as _;

pub use shed::ShedLayer;

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

/// Every method the server serves, as `/package.Service/Method`, read once from the
/// descriptor sets it registers (Dossier's, grpc.health.v1, reflection v1 and v1alpha).
static METHODS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    let mut methods = HashSet::new();
    for set in [
        crate::proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ] {
        let set = prost_types::FileDescriptorSet::decode(set)
            .expect("a descriptor set compiled into the binary decodes");
        for file in set.file {
            for service in &file.service {
                for method in &service.method {
                    let path = format!("/{}.{}/{}", file.package(), service.name(), method.name());
                    // Leaked once, at first use: a fixed set of a few dozen strings that
                    // lives as long as the process.
                    methods.insert(&*Box::leak(path.into_boxed_str()));
                }
            }
        }
    }
    methods
});

/// Every method the server serves, as `/package.Service/Method`.
pub fn served_methods() -> &'static HashSet<&'static str> {
    &METHODS
}

/// The `method` label and log field of a request: its path when it is a method the
/// server serves, else `unknown`, so made-up paths cannot grow the metrics without
/// bound (one series per path) or fill the logs with caller-chosen strings.
pub fn method_label(path: &str) -> &'static str {
    METHODS.get(path).copied().unwrap_or("unknown")
}

/// Logs one structured line per RPC: method, gRPC status, latency, application id and
/// the caller's identity.
/// Only these fields: requests carry SSNs and dates of birth and are never logged.
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
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let method = method_label(request.uri().path());
        let caller = crate::identity::Caller::of(&request);
        let log = RpcLog::default();
        request.extensions_mut().insert(log.clone());
        let started = Instant::now();
        let future = self.inner.call(request);
        Box::pin(async move {
            let mut result = future.await;
            let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
            match &mut result {
                Ok(response) => {
                    // Errors come back "trailers-only", with grpc-status in the headers;
                    // a success carries it in the trailers, after this point.
                    let mut code = response
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<i32>().ok())
                        .map(tonic::Code::from)
                        .unwrap_or(tonic::Code::Ok);
                    if code == tonic::Code::Internal && is_decode_failure(response.headers()) {
                        code = tonic::Code::InvalidArgument;
                        as_invalid_request(response.headers_mut());
                    }
                    let application_id = log.application();
                    let code_name = format!("{code:?}");
                    metrics::counter!("dossier_rpc_requests_total", "method" => method, "code" => code_name.clone()).increment(1);
                    metrics::histogram!("dossier_rpc_duration_seconds", "method" => method, "code" => code_name).record(latency_ms / 1000.0);
                    if matches!(
                        code,
                        tonic::Code::Internal | tonic::Code::Unknown | tonic::Code::DataLoss
                    ) {
                        tracing::error!(target: "dossier::rpc", method, code = ?code, latency_ms, application_id, %caller, "rpc");
                    } else if code == tonic::Code::InvalidArgument {
                        tracing::warn!(target: "dossier::rpc", method, code = ?code, latency_ms, application_id, %caller, "rpc");
                    } else {
                        tracing::info!(target: "dossier::rpc", method, code = ?code, latency_ms, application_id, %caller, "rpc");
                    }
                }
                Err(e) => {
                    tracing::error!(target: "dossier::rpc", method, error = %e, latency_ms, %caller, "rpc transport error")
                }
            }
            result
        })
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

/// The longest a unary call may take, whatever the caller's grpc-timeout says (the
/// server also enforces it: `server.rs`). A caller asking for an hour would otherwise
/// hold a worker-sized share of the server, and of the vendors' quotas, that long.
/// EvaluateApplication needs 30 s at most.
pub const MAX_CALL_DURATION: Duration = Duration::from_secs(60);

/// The time the caller gave this call: its grpc-timeout, at most
/// [`MAX_CALL_DURATION`]; `None` when it sent none.
pub fn caller_budget<T>(request: &tonic::Request<T>) -> Option<Duration> {
    request
        .metadata()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)
        .map(|d| d.min(MAX_CALL_DURATION))
}

/// grpc-timeout is "<digits><unit>", unit one of H M S m u n.
pub fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_header() {
        assert_eq!(parse_grpc_timeout("10S"), Some(Duration::from_secs(10)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("S"), None);
        assert_eq!(parse_grpc_timeout(""), None);
        assert_eq!(parse_grpc_timeout("10x"), None);
    }

    #[test]
    fn a_callers_deadline_is_honoured_up_to_the_cap() {
        let with = |timeout: Option<&str>| {
            let mut r = tonic::Request::new(());
            if let Some(t) = timeout {
                r.metadata_mut().insert("grpc-timeout", t.parse().unwrap());
            }
            caller_budget(&r)
        };
        assert_eq!(with(Some("5S")), Some(Duration::from_secs(5)));
        assert_eq!(with(Some("1H")), Some(MAX_CALL_DURATION));
        assert_eq!(with(Some("99999999M")), Some(MAX_CALL_DURATION));
        assert_eq!(with(Some("bogus")), None);
        assert_eq!(with(None), None);
    }

    #[test]
    fn only_served_methods_become_labels() {
        for served in [
            "/dossier.v1.UnderwritingService/SubmitApplication",
            "/dossier.v1.DataService/GetPropertyProfile",
            "/grpc.health.v1.Health/Check",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ] {
            assert_eq!(method_label(served), served);
        }
        for made_up in [
            "/dossier.v1.Bogus1/Call",
            "/dossier.v1.UnderwritingService/NoSuchMethod",
            "/grpc.health.v1.Health/Check/extra",
            "/",
            "",
        ] {
            assert_eq!(method_label(made_up), "unknown", "{made_up:?}");
        }
    }
}
