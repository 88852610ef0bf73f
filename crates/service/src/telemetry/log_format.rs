//! The log line: one flat JSON object per line, with the fields docs/log-schema.json
//! describes and docs/observability.md explains. Written here rather than with
//! tracing-subscriber's JSON format because that one nests span fields under `span` /
//! `spans` and knows nothing of trace ids; a log pipeline needs the call's method,
//! application and trace id on every line at the top level, under names that do not
//! change.

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};
use tracing::dispatcher::WeakDispatch;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Record};
use tracing::{Dispatch, Event, Id, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Span fields copied onto every line logged inside the span (innermost wins): what a
/// reader filters on. Other span fields (OpenTelemetry attributes) stay in the trace.
const CONTEXT_FIELDS: &[&str] = &[
    "method",
    "caller",
    "application_id",
    "upstream",
    "job_kind",
    "job_id",
];

/// Keys every line has, written first; an event field of the same name is renamed
/// `field.<name>` rather than allowed to overwrite them.
const RESERVED: &[&str] = &[
    "timestamp",
    "level",
    "target",
    "message",
    "trace_id",
    "span_id",
];

/// The context fields of one span, kept in its extensions by [`ContextFieldsLayer`].
#[derive(Default)]
struct ContextFields(Map<String, Value>);

/// Keeps each span's [`CONTEXT_FIELDS`] as JSON values, so formatting a line copies
/// them instead of parsing text; and hands the subscriber to [`JsonLines`], which needs
/// it to ask the OpenTelemetry layer for trace ids (while an event is being written,
/// `tracing::dispatcher::get_default` answers "no subscriber": it does not re-enter).
pub struct ContextFieldsLayer {
    subscriber: SharedSubscriber,
}

/// The subscriber both halves share, set once it is registered.
type SharedSubscriber = Arc<OnceLock<WeakDispatch>>;

/// The layer and the formatter of one subscriber.
pub fn pair() -> (ContextFieldsLayer, JsonLines) {
    let subscriber = SharedSubscriber::default();
    (
        ContextFieldsLayer {
            subscriber: subscriber.clone(),
        },
        JsonLines { subscriber },
    )
}

impl<S> tracing_subscriber::Layer<S> for ContextFieldsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.subscriber.set(subscriber.downgrade());
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = ContextFields::default();
        attrs.record(&mut Collect {
            into: &mut fields.0,
            only: Some(CONTEXT_FIELDS),
        });
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<ContextFields>() {
            values.record(&mut Collect {
                into: &mut fields.0,
                only: Some(CONTEXT_FIELDS),
            });
        }
    }
}

/// The formatter of [`super::init`]'s log lines.
pub struct JsonLines {
    subscriber: SharedSubscriber,
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                .into(),
        );
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());

        let mut fields = Map::new();
        event.record(&mut Collect {
            into: &mut fields,
            only: None,
        });
        let message = fields.remove("message").unwrap_or_else(|| "".into());
        line.insert("message".into(), message);

        if let Some(scope) = ctx.event_scope() {
            let mut trace = None;
            for span in scope.from_root() {
                if let Some(context) = span.extensions().get::<ContextFields>() {
                    for (k, v) in &context.0 {
                        line.insert(k.clone(), v.clone());
                    }
                }
                // The innermost span with a trace: scope runs root → leaf.
                if let Some(ids) = self.trace_ids(&span.id()) {
                    trace = Some(ids);
                }
            }
            if let Some((trace_id, span_id)) = trace {
                line.insert("trace_id".into(), trace_id.into());
                line.insert("span_id".into(), span_id.into());
            }
        }
        for (k, v) in fields {
            if RESERVED.contains(&k.as_str()) {
                line.insert(format!("field.{k}"), v);
            } else {
                line.insert(k, v);
            }
        }
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

impl JsonLines {
    /// The trace and span id (lower-case hex) of a span the OpenTelemetry layer knows.
    fn trace_ids(&self, id: &Id) -> Option<(String, String)> {
        use opentelemetry::trace::TraceContextExt as _;
        let dispatch = self.subscriber.get()?.upgrade()?;
        let context = tracing_opentelemetry::get_otel_context(id, &dispatch)?;
        let span = context.span();
        let sc = span.span_context();
        sc.is_valid()
            .then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
    }
}

/// Records fields as JSON values: numbers as numbers, the rest as strings.
struct Collect<'a> {
    into: &'a mut Map<String, Value>,
    only: Option<&'static [&'static str]>,
}

impl Collect<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        if self.only.is_none_or(|only| only.contains(&field.name())) {
            self.into.insert(field.name().to_owned(), value);
        }
    }
}

impl Visit for Collect<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tracing_subscriber::layer::SubscriberExt as _;

    /// docs/log-schema.json names every job kind a line's `job_kind` can hold: a new
    /// kind must be added there (log pipelines validate against it).
    #[test]
    fn the_log_schema_lists_every_job_kind() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../../../docs/log-schema.json")).unwrap();
        let listed: Vec<&str> = schema["properties"]["job_kind"]["enum"]
            .as_array()
            .expect("job_kind is an enum in docs/log-schema.json")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        let known: Vec<&str> = dossier_store::jobs::JobKind::ALL
            .iter()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(listed, known);
    }

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The lines `emit` logs, through the formatter and, with a tracer, the
    /// OpenTelemetry layer.
    fn lines(emit: impl FnOnce()) -> Vec<Value> {
        use opentelemetry::trace::TracerProvider as _;
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let (context, format) = pair();
        let subscriber = tracing_subscriber::registry()
            .with(context)
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
            .with(
                tracing_subscriber::fmt::layer()
                    .event_format(format)
                    .with_writer(move || writer.clone()),
            );
        tracing::subscriber::with_default(subscriber, emit);
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect()
    }

    #[test]
    fn a_line_is_flat_with_its_spans_context_and_trace() {
        let got = lines(|| {
            let call = tracing::info_span!("rpc", method = "/a.B/C", otel.kind = "server");
            let _call = call.enter();
            let job = tracing::info_span!("job", application_id = "app-1", job_id = 7_i64);
            let _job = job.enter();
            tracing::warn!(
                error = "boom",
                latency_ms = 1.5,
                level = "mine",
                "it failed"
            );
        });
        assert_eq!(got.len(), 1);
        let line = got[0].as_object().unwrap();
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["message"], "it failed");
        assert_eq!(line["method"], "/a.B/C");
        assert_eq!(line["application_id"], "app-1");
        assert_eq!(line["job_id"], 7);
        assert_eq!(line["latency_ms"], 1.5);
        assert_eq!(line["error"], "boom");
        // An event field cannot overwrite a field every line has.
        assert_eq!(line["field.level"], "mine");
        // Span attributes that are not context stay out of the line.
        assert!(!line.contains_key("otel.kind"));
        assert_eq!(line["trace_id"].as_str().unwrap().len(), 32);
        assert_eq!(line["span_id"].as_str().unwrap().len(), 16);
        assert!(line.values().all(|v| !v.is_object() && !v.is_array()));
        let ts = line["timestamp"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok() && ts.ends_with('Z'));
    }

    #[test]
    fn a_line_outside_any_span_has_no_trace() {
        let got = lines(|| tracing::info!(answer = 42_u64, "plain"));
        assert_eq!(got[0]["answer"], 42);
        assert!(got[0].get("trace_id").is_none());
    }

    #[test]
    fn the_inner_span_wins_and_every_line_of_one_span_shares_its_trace() {
        let got = lines(|| {
            let outer = tracing::info_span!("outer", upstream = "rails");
            let _o = outer.enter();
            tracing::info!("first");
            let inner = tracing::info_span!("inner", upstream = "identity");
            let _i = inner.enter();
            tracing::info!("second");
        });
        assert_eq!(got[0]["upstream"], "rails");
        assert_eq!(got[1]["upstream"], "identity");
        assert_eq!(got[0]["trace_id"], got[1]["trace_id"]);
        assert_ne!(got[0]["span_id"], got[1]["span_id"]);
    }
}
