//! What operators see of a running Dossier: the metrics a real server exports after real
//! work, scraped from its admin port. The dashboards and alerting rules built on them
//! are checked by `.ci/check-observability` against a real Prometheus.

mod metrics;
