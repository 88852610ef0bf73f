//! The operator commands of `dossier` beside `serve`: each is `cli::<name>::{Args, run}`.
//! The developer commands (dev, fleet, simulate, seed, bench, policy check) live in
//! `dossier-devkit` and are built with the `dev` feature only.

pub mod evaluate;
pub mod health;
pub mod jobs;
pub mod keys;
pub mod migrate;
pub mod notice;
pub mod replay;
pub mod report;
pub mod sanctions;
pub mod serve;
