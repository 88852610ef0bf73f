//! Plain domain types: what an application is, what a check concluded, what was decided.
//! No I/O here; `api/convert.rs` maps these to and from protobuf, `store/` to rows.

mod application;
mod report;

pub use application::*;
pub use report::*;
