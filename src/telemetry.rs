//! Logging: structured JSON on stdout, one object per line.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `DOSSIER_LOG` filters (default `info`);
/// `DOSSIER_LOG_FORMAT=pretty` gives human-readable lines for local work.
pub fn init() {
    let filter = EnvFilter::try_from_env("DOSSIER_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,h2=warn,hyper=warn,tower=warn"));
    let pretty = std::env::var("DOSSIER_LOG_FORMAT").is_ok_and(|v| v == "pretty");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let result = if pretty {
        builder.try_init()
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init()
    };
    // Already installed (tests start several servers in one process): keep the first.
    let _ = result;
}
