//! W3C trace context (`traceparent`, `tracestate`) in HTTP headers: read from a call
//! that comes in, written on every request that goes out, and kept as a string with a
//! queued job. The context itself lives in the current `tracing` span (the
//! `tracing-opentelemetry` layer keeps it there); without that layer installed there
//! is none, and nothing is written.

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

const TRACEPARENT: &str = "traceparent";

/// The trace context a caller sent in `headers` (an empty context, so a new trace,
/// when it sent none or something that is not a W3C trace context).
pub fn extract(headers: &http::HeaderMap) -> opentelemetry::Context {
    TraceContextPropagator::new().extract(&HeaderReader(headers))
}

/// Writes the current span's trace context into outgoing request headers.
pub fn inject_current(headers: &mut http::HeaderMap) {
    let context = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut HeaderWriter(headers));
}

/// The current span's `traceparent`, to store with work queued for later.
pub fn current_traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    let mut fields = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut fields);
    fields.remove(TRACEPARENT)
}

/// The context a stored `traceparent` names (empty when it is not one).
pub fn from_traceparent(traceparent: &str) -> opentelemetry::Context {
    let fields = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    TraceContextPropagator::new().extract(&fields)
}

struct HeaderReader<'a>(&'a http::HeaderMap);

impl Extractor for HeaderReader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeaderWriter<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderWriter<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceContextExt;

    #[test]
    fn a_w3c_traceparent_is_read_and_garbage_is_a_new_trace() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            TRACEPARENT,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        let context = extract(&headers);
        let span = context.span();
        let sc = span.span_context();
        assert!(sc.is_valid() && sc.is_remote() && sc.is_sampled());
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );

        for garbage in [
            "not a traceparent",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            headers.insert(TRACEPARENT, garbage.parse().unwrap());
            assert!(
                !extract(&headers).span().span_context().is_valid(),
                "{garbage}"
            );
            assert!(!from_traceparent(garbage).span().span_context().is_valid());
        }
    }
}
