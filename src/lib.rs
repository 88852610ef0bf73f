//! Dossier: the underwriting data gateway of a PACE lender.
//!
//! A request enters through `api` (tonic handlers), becomes `domain` values, is
//! underwritten by `underwriting` (which asks `upstream` for data, judges it with the
//! pure `checks` and decides with `policy`), and is persisted by `store`. `jobs` runs
//! durable background work; `sim` holds the upstream simulators; `devdb` starts a
//! private PostgreSQL for `dossier dev` and the tests. See docs/architecture.md.

pub mod api;
pub mod bench;
pub mod checks;
pub mod cli;
pub mod cli_support;
pub mod config;
pub mod devdb;
pub mod domain;
pub mod fleet;
pub mod jobs;
pub mod policy;
pub mod proto;
pub mod server;
pub mod sim;
pub mod store;
pub mod telemetry;
pub mod underwriting;
pub mod upstream;
