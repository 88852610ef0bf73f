//! Telemetry, set up in one place: logs (JSON lines, [`log_format`], on stdout for the
//! servers and on stderr for the commands that print results, [`LogTo`]), traces
//! ([`traces`]) and metrics ([`metrics`]). docs/observability.md describes what an
//! operator gets from each.

mod log_format;
mod metrics;
mod traces;

use tracing_subscriber::filter::{EnvFilter, FilterFn, LevelFilter};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::EitherWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer as _, fmt};

pub use metrics::{metrics_handle, serve_admin};
pub use traces::{job_span, record_status, rpc_span};

/// The default log filter of the server commands.
pub const DEFAULT_LOG_FILTER: &str = "info,sqlx=warn,h2=warn,hyper=warn,tower=warn";

/// Where the log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTo {
    /// The servers': a container's stdout is what the log collector (Fluentd) reads.
    Stdout,
    /// The commands whose stdout is their result, for a person or a script to read.
    Stderr,
}

impl<'a> MakeWriter<'a> for LogTo {
    type Writer = EitherWriter<std::io::Stdout, std::io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        match self {
            LogTo::Stdout => EitherWriter::A(std::io::stdout()),
            LogTo::Stderr => EitherWriter::B(std::io::stderr()),
        }
    }
}

/// How a command logs: its filter when `DOSSIER_LOG` is unset, and where the lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Logging {
    pub default_filter: &'static str,
    pub to: LogTo,
}

impl Logging {
    /// A server: what it does, at INFO, on stdout.
    pub const SERVER: Logging = Logging {
        default_filter: DEFAULT_LOG_FILTER,
        to: LogTo::Stdout,
    };
    /// A command that prints results for a person: only its warnings, on stderr.
    pub const TOOL: Logging = Logging {
        default_filter: "warn",
        to: LogTo::Stderr,
    };
}

/// Flushes exported spans when the process ends: keep it until then, and call
/// [`Telemetry::shutdown`].
pub struct Telemetry {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans still batched. Blocks (at most the exporter's timeout).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("dossier: spans not flushed at exit: {e}");
        }
    }
}

/// Installs the global subscriber: JSON lines on `logging.to`, filtered by `DOSSIER_LOG`
/// (tracing's `EnvFilter` directives, e.g. `info,dossier_upstream=debug`;
/// `logging.default_filter` when unset), or human-readable lines with
/// `DOSSIER_LOG_FORMAT=pretty`; and the OpenTelemetry layer, whose spans are filtered on
/// their own (Dossier's spans at INFO and above, whatever the log level), so quieter
/// logs do not break traces.
pub fn init(logging: Logging) -> Telemetry {
    let filter = EnvFilter::try_from_env("DOSSIER_LOG")
        .unwrap_or_else(|_| EnvFilter::new(logging.default_filter));
    let pretty = std::env::var("DOSSIER_LOG_FORMAT").is_ok_and(|v| v == "pretty");
    let traces = traces::provider();
    let tracer = opentelemetry::trace::TracerProvider::tracer(&traces.provider, "dossier");
    let ours = FilterFn::new(|meta| {
        meta.target().starts_with("dossier")
            && if meta.is_span() {
                *meta.level() <= LevelFilter::INFO
            } else {
                *meta.level() <= LevelFilter::WARN
            }
    });
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(ours);
    let (context, format) = log_format::pair();
    let logs = if pretty {
        fmt::layer()
            .with_writer(logging.to)
            .with_filter(filter)
            .boxed()
    } else {
        fmt::layer()
            .event_format(format)
            .with_writer(logging.to)
            .with_filter(filter)
            .boxed()
    };
    let installed = tracing_subscriber::registry()
        .with(context)
        .with(otel)
        .with(logs)
        .try_init();
    if installed.is_err() {
        // Already installed (tests start several servers in one process): keep the
        // first, and its provider.
        return Telemetry { provider: None };
    }
    if let Some(e) = &traces.export_error {
        tracing::error!("{e}");
    }
    if let Some(endpoint) = &traces.exporting_to {
        tracing::info!(endpoint, "exporting traces over OTLP/gRPC");
    }
    Telemetry {
        provider: Some(traces.provider),
    }
}
