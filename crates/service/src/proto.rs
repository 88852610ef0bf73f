//! Code generated from proto/dossier/v1 by build.rs.
#![allow(clippy::all, missing_docs)]

tonic::include_proto!("dossier.v1");

/// The encoded descriptor set of every Dossier proto and its imports, served by
/// reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/dossier_descriptor.bin"));
