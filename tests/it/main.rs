//! Dossier's integration tests, one binary: each module runs the real parts (a
//! PostgreSQL database per test, gRPC over a real socket, the simulators over HTTP, and
//! for `fleet`, `partitions`, `simulate` and parts of `server_lifecycle` the real
//! `dossier` binary). The shared harness is `dossier_devkit::harness`.

mod cancellation;
mod data_api;
mod fleet;
mod hostile_input;
mod identity;
mod observability;
mod outbox;
mod partitions;
mod reporting;
mod retention;
mod sanctions;
mod server_lifecycle;
mod simulate;
mod telemetry;
mod underwriting_api;
mod upstream_layers;
