//! Traces: W3C trace context in, spans for every RPC, check group, upstream question
//! and HTTP try, trace context out (to upstreams and into queued jobs), and export over
//! OTLP/gRPC when an endpoint is configured (docs/observability.md#traces).
//!
//! Configuration is OpenTelemetry's own environment, so a cluster's collector
//! settings apply unchanged: `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) turns export on, `OTEL_TRACES_SAMPLER` /
//! `OTEL_TRACES_SAMPLER_ARG` choose the sampler (default `parentbased_always_on`),
//! `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES` name the service, `OTEL_BSP_*`
//! tune the batch. Without an endpoint nothing is exported, and only calls whose
//! caller sampled them are recorded (so trace ids still reach the logs and upstreams,
//! and a caller's sampling decision is passed on unchanged).

use opentelemetry::KeyValue;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::identity::Caller;

/// The tracer provider and, when spans are exported, where to.
pub struct Traces {
    pub provider: SdkTracerProvider,
    pub exporting_to: Option<String>,
    /// Why export was configured but could not start, to log once logging is up.
    pub export_error: Option<String>,
}

/// The endpoint OTLP export goes to, if one is configured.
fn configured_endpoint() -> Option<String> {
    [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .into_iter()
    .filter_map(|name| std::env::var(name).ok())
    .find(|v| !v.trim().is_empty())
}

/// Builds the tracer provider from the OpenTelemetry environment. Needs a Tokio
/// runtime when exporting (the OTLP client is tonic's).
pub fn provider() -> Traces {
    let mut resource = Resource::builder()
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("dossier");
    }
    let builder = SdkTracerProvider::builder().with_resource(resource.build());
    let Some(endpoint) = configured_endpoint() else {
        return Traces {
            provider: builder
                .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)))
                .build(),
            exporting_to: None,
            export_error: None,
        };
    };
    // The exporter reads the endpoint (and OTEL_EXPORTER_OTLP_TIMEOUT, headers) from
    // the environment itself.
    match opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
    {
        Ok(exporter) => Traces {
            provider: builder.with_batch_exporter(exporter).build(),
            exporting_to: Some(endpoint),
            export_error: None,
        },
        Err(e) => Traces {
            provider: builder
                .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)))
                .build(),
            exporting_to: None,
            export_error: Some(format!(
                "traces are not exported: the OTLP exporter for {endpoint} could not be built ({e}); check OTEL_EXPORTER_OTLP_ENDPOINT"
            )),
        },
    }
}

/// The span of one RPC, child of the caller's trace when it sent a `traceparent`.
pub fn rpc_span(method: &'static str, caller: &Caller, headers: &http::HeaderMap) -> tracing::Span {
    let span = tracing::info_span!(
        target: "dossier::rpc",
        "rpc",
        otel.name = method,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        rpc.system = "grpc",
        rpc.grpc.status_code = tracing::field::Empty,
        method,
        caller = %caller,
    );
    adopt(&span, dossier_upstream::trace_context::extract(headers));
    span
}

/// Records a finished call's status on its span (an error status for the codes the
/// OpenTelemetry conventions count as server errors).
pub fn record_status(span: &tracing::Span, code: tonic::Code) {
    span.record("rpc.grpc.status_code", code as i64);
    if matches!(
        code,
        tonic::Code::Unknown
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Unimplemented
            | tonic::Code::Internal
            | tonic::Code::Unavailable
            | tonic::Code::DataLoss
    ) {
        span.record("otel.status_code", "error");
    }
}

/// The span of one background job, continuing the trace of the call that queued it.
pub fn job_span(
    kind: &'static str,
    job_id: i64,
    application_id: Option<uuid::Uuid>,
    trace_parent: Option<&str>,
) -> tracing::Span {
    let span = tracing::info_span!(
        target: "dossier::jobs",
        "job",
        otel.name = %format_args!("job {kind}"),
        otel.kind = "consumer",
        job_kind = kind,
        job_id,
        application_id = tracing::field::Empty,
    );
    if let Some(id) = application_id {
        span.record("application_id", tracing::field::display(id));
    }
    if let Some(trace_parent) = trace_parent {
        adopt(
            &span,
            dossier_upstream::trace_context::from_traceparent(trace_parent),
        );
    }
    span
}

/// Makes `parent` the parent of `span` when it names a trace (else `span` starts one).
fn adopt(span: &tracing::Span, parent: opentelemetry::Context) {
    if parent.span().span_context().is_valid() {
        // Fails only when no OpenTelemetry layer is installed: then there is no trace.
        let _ = span.set_parent(parent);
    }
}
