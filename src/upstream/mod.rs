//! Clients for every upstream Dossier protects: the vendors and the Rails backend.
//!
//! Each upstream lives in its own file with its wire types (the JSON it speaks) and its
//! client. The simulators in `sim/` serve the same wire types.

pub mod identity;
pub mod licensing;
pub mod property_records;
pub mod rails;
pub mod registry;
pub mod valuation;
