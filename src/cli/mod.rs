//! The `dossier` command line: subcommands beside the server.

pub mod dev;
pub mod evaluate;
pub mod fleet;
pub mod jobs;
pub mod policy;
pub mod report;
pub mod seed;
