//! Every metric Dossier exports, with its type and help text: registered with the
//! recorder at start, so each series is scraped with its `# HELP` and `# TYPE` lines
//! (`promtool check metrics` wants both). docs/metrics.md documents the same list; a
//! test below checks the two against each other and against the code that records.

/// What kind of series a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric: its name, kind and `# HELP` text.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

const fn m(name: &'static str, kind: Kind, help: &'static str) -> Metric {
    Metric { name, kind, help }
}

use Kind::{Counter, Gauge, Histogram};

/// Every metric, grouped as docs/metrics.md groups them.
pub const METRICS: &[Metric] = &[
    // RPCs (api/).
    m(
        "dossier_rpc_requests_total",
        Counter,
        "RPCs answered, by gRPC method and status code.",
    ),
    m(
        "dossier_rpc_duration_seconds",
        Histogram,
        "Duration of RPCs, by gRPC method and status code (docs/metrics.md says from when to when).",
    ),
    m(
        "dossier_rpc_shed_total",
        Counter,
        "Calls refused at once with UNAVAILABLE: this pod saturated or cut off from PostgreSQL.",
    ),
    m(
        "dossier_watch_streams_refused_total",
        Counter,
        "WatchReport streams refused because this process or the caller had too many open.",
    ),
    m(
        "dossier_authz_denied_total",
        Counter,
        "Calls the access policy refused, by method and reason.",
    ),
    m(
        "dossier_tls_handshake_failures_total",
        Counter,
        "TLS handshakes that failed on the gRPC port, by reason.",
    ),
    m(
        "dossier_tls_reloads_total",
        Counter,
        "Rotations of the TLS files seen, by result.",
    ),
    // Upstreams (dossier-upstream).
    m(
        "dossier_upstream_requests_total",
        Counter,
        "Questions to an upstream, by how they were answered (cache outcome, fetched, stale, error, rate limited).",
    ),
    m(
        "dossier_upstream_request_duration_seconds",
        Histogram,
        "Duration of each try sent to an upstream, retries counted separately.",
    ),
    m(
        "dossier_upstream_rate_limit_wait_seconds",
        Histogram,
        "Time a try waited for a rate-limit permit, by upstream and limiter (pod or fleet).",
    ),
    m(
        "dossier_upstream_breaker_state",
        Gauge,
        "Circuit breaker of an upstream in this pod: 0 closed, 1 half-open, 2 open.",
    ),
    m(
        "dossier_rails_batch_size",
        Histogram,
        "Application ids per batch request sent to Rails.",
    ),
    // Underwriting.
    m(
        "dossier_decisions_total",
        Counter,
        "Decisions recorded by this pod, by decision.",
    ),
    m(
        "dossier_funding_checks_total",
        Counter,
        "Funding checks (PrepareFunding) recorded by this pod, by verdict.",
    ),
    m(
        "dossier_funding_reviews_total",
        Counter,
        "Underwriters' resolutions of funding HOLDs recorded by this pod, by outcome.",
    ),
    m(
        "dossier_vendor_cost_cents_total",
        Counter,
        "Vendor cost of the decisions this pod recorded, in cents: spent on answers fetched, and avoided by frugal evaluations.",
    ),
    m(
        "dossier_sanctions_alerts_total",
        Counter,
        "Sanctions monitoring alerts raised by this pod's monitoring jobs.",
    ),
    m(
        "dossier_reviews_total",
        Counter,
        "Underwriter reviews of referred applications recorded by this pod, by outcome.",
    ),
    m(
        "dossier_decisions_delivered_total",
        Counter,
        "Decisions and reviews Rails acknowledged, counted by the pod that delivered them.",
    ),
    // The fleet's queue, outbox and review queue (fleet_metrics, from PostgreSQL).
    m(
        "dossier_queue_jobs",
        Gauge,
        "Unfinished jobs of the fleet, by kind and state (every pod reports the same value).",
    ),
    m(
        "dossier_queue_oldest_ready_age_seconds",
        Gauge,
        "Seconds the longest-waiting claimable job of a kind has waited for a worker (fleet-wide; 0 when none).",
    ),
    m(
        "dossier_queue_oldest_lease_age_seconds",
        Gauge,
        "Seconds the longest-held running job of a kind has been held by its worker, at least (fleet-wide; 0 when none).",
    ),
    m(
        "dossier_delivery_lag_seconds",
        Gauge,
        "Age of the oldest decision or review not yet delivered to Rails, by job kind (fleet-wide; 0 when none).",
    ),
    m(
        "dossier_review_queue_applications",
        Gauge,
        "Referred applications awaiting an underwriter (fleet-wide).",
    ),
    m(
        "dossier_review_queue_oldest_age_seconds",
        Gauge,
        "Seconds since the oldest referral awaiting an underwriter was decided (fleet-wide; 0 when none).",
    ),
    m(
        "dossier_fleet_sample_timestamp_seconds",
        Gauge,
        "When this pod last read the fleet-wide figures from PostgreSQL (Unix time).",
    ),
    // This pod.
    m(
        "dossier_db_pool_connections",
        Gauge,
        "Connections of this pod's PostgreSQL pool, by state (idle, in_use).",
    ),
    m(
        "dossier_db_pool_max_connections",
        Gauge,
        "Most connections this pod's PostgreSQL pool may open.",
    ),
    m(
        "dossier_db_pool_acquire_probe_seconds",
        Histogram,
        "Time a probe, once a second, waited for a pooled PostgreSQL connection.",
    ),
    m(
        "dossier_db_connections_mended_total",
        Counter,
        "Pooled connections found inside a transaction and rolled back (a bug; never expected).",
    ),
    m(
        "dossier_retention_purged_rows_total",
        Counter,
        "Rows this pod deleted because they were past their retention, by table (upstream_calls, jobs).",
    ),
    m(
        "dossier_sanctions_list_loaded_timestamp_seconds",
        Gauge,
        "When the sanctions list this pod screens with was loaded (Unix time; 0 when none is).",
    ),
    m(
        "dossier_build_info",
        Gauge,
        "Always 1; the labels say which build this pod runs.",
    ),
    m(
        "dossier_policy_info",
        Gauge,
        "Always 1; the labels say which underwriting policy this pod decides with.",
    ),
];

/// Registers every metric's help text with the installed recorder.
pub fn describe() {
    for metric in METRICS {
        match metric.kind {
            Counter => metrics::describe_counter!(metric.name, metric.help),
            Gauge => metrics::describe_gauge!(metric.name, metric.help),
            Histogram => metrics::describe_histogram!(metric.name, metric.help),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;

    fn root() -> &'static Path {
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
    }

    fn catalogue() -> BTreeSet<&'static str> {
        METRICS.iter().map(|m| m.name).collect()
    }

    /// `dossier_…` names recorded with the metrics macros in the crates' sources.
    fn recorded_in(dir: &Path, found: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).expect("a source directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                recorded_in(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("a source file");
                for macro_name in ["counter!(", "gauge!(", "histogram!("] {
                    for (at, _) in text.match_indices(macro_name) {
                        let rest = text[at + macro_name.len()..].trim_start();
                        if let Some(name) = rest.strip_prefix('"').and_then(|r| r.split('"').next())
                            && name.starts_with("dossier_")
                        {
                            found.insert(name.to_owned());
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_recorded_metric_is_in_the_catalogue_and_every_entry_is_recorded() {
        let mut recorded = BTreeSet::new();
        recorded_in(&root().join("crates"), &mut recorded);
        let catalogue: BTreeSet<String> = catalogue().into_iter().map(String::from).collect();
        let undescribed: Vec<_> = recorded.difference(&catalogue).collect();
        let unrecorded: Vec<_> = catalogue.difference(&recorded).collect();
        assert!(
            undescribed.is_empty(),
            "recorded but not in METRICS: {undescribed:?}"
        );
        assert!(
            unrecorded.is_empty(),
            "in METRICS but recorded nowhere: {unrecorded:?}"
        );
    }

    #[test]
    fn docs_metrics_md_documents_every_metric_with_its_type() {
        let doc = std::fs::read_to_string(root().join("docs/metrics.md")).expect("docs/metrics.md");
        let mut documented = BTreeSet::new();
        for line in doc.lines().filter(|l| l.starts_with("| `dossier_")) {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let name = cells[1].trim_matches('`');
            let metric = METRICS.iter().find(|m| m.name == name);
            let metric = metric.unwrap_or_else(|| {
                panic!("docs/metrics.md documents {name}, which is not in METRICS")
            });
            assert_eq!(
                cells[2],
                metric.kind.as_str(),
                "the type of {name} in docs/metrics.md"
            );
            documented.insert(metric.name);
        }
        let missing: Vec<_> = catalogue().difference(&documented).copied().collect();
        assert!(
            missing.is_empty(),
            "not in docs/metrics.md's tables: {missing:?}"
        );
    }

    #[test]
    fn names_follow_the_prometheus_conventions() {
        for m in METRICS {
            assert!(
                m.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{}",
                m.name
            );
            assert_eq!(
                m.kind == Counter,
                m.name.ends_with("_total"),
                "{}: only counters end in _total",
                m.name
            );
            assert!(!m.help.is_empty());
        }
    }
}
