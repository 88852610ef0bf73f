//! Developer tooling, never in the production build: the upstream simulators
//! ([`sim`]), a private PostgreSQL ([`devdb`]), a local fleet of `dossier serve`
//! processes ([`fleet`]), network namespaces and a latency proxy for partition tests
//! ([`netns`]), the benchmark ([`bench`]), the developer subcommands
//! ([`cli`]), a throw-away identity provider for reviewers ([`dev_idp`]), an OTLP
//! trace receiver ([`otlp_receiver`]) and the one
//! [`harness`] that tests, the bench, `seed` and `policy check`
//! start servers with.

mod bench;
pub mod cli;
pub mod dev_idp;
pub mod devdb;
pub mod fleet;
pub mod harness;
pub mod netns;
pub mod otlp_receiver;
pub mod pki;
mod rails_request;
pub mod sample_sanctions;
pub mod sim;
