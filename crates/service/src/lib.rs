//! The Dossier service: a request enters through [`api`] (tonic handlers), becomes
//! `dossier_core::domain` values, is underwritten by [`underwriting`] (which asks
//! `dossier_upstream` for evidence, judges it with `dossier_core`'s checks and decides
//! with its policy), and is persisted by `dossier_store`. [`jobs`] runs durable
//! background work; [`server`] wires it all and runs it; [`config`] is the command
//! line and environment; [`cli`] holds the operator commands. See docs/architecture.md.

pub mod api;
pub mod cli;
pub mod config;
mod fleet_metrics;
pub mod identity;
mod jobs;
pub mod metric_catalogue;
pub mod proto;
mod retention;
pub mod server;
pub mod telemetry;
pub mod underwriting;
