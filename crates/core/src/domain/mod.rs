//! Plain domain types: what an application is, what a check concluded, what was decided.
//! No I/O here; the service's `api/convert.rs` maps these to and from protobuf, the
//! store to rows.

mod application;
mod notice;
mod report;
mod upstream;

pub use application::*;
pub use notice::*;
pub use report::*;
pub use upstream::*;
