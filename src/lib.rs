//! Dossier: the underwriting data gateway of a PACE lender.
//!
//! See `docs/architecture.md` for how the modules fit together.

pub mod checks;
pub mod domain;
pub mod policy;
pub mod store;
pub mod sim;
pub mod upstream;
