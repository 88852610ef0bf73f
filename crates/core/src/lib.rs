//! Dossier's pure core: what an application is ([`domain`]), what Dossier knows about it
//! ([`evidence`]), how each fact is judged (`checks`, [`judge`]) and how the results
//! become a decision ([`policy`]).
//!
//! Nothing here does I/O: no async runtime, database, HTTP or gRPC dependency (CI
//! checks the dependency tree). The same functions run when an application is
//! evaluated and when a stored decision is replayed, and they are tested by tables.

pub mod adverse_action;
mod checks;
pub mod domain;
pub mod evidence;
pub mod funding;
pub mod intake;
pub mod judge;
pub mod plan;
pub mod policy;
pub mod reason;
pub mod rescope;
#[cfg(test)]
mod test_fixtures;
