//! dossier-core's integration tests: the crate's public API only, no I/O but reading
//! fixtures.

mod replay;
