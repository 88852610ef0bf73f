//! Compiles proto/ at build time with protox (a pure-Rust protobuf compiler), so no
//! system `protoc` is needed, and writes the descriptor set that server reflection serves.

use std::{env, path::PathBuf};

const PROTO_ROOT: &str = "../../proto";
const PROTOS: &[&str] = &[
    "../../proto/dossier/v1/common.proto",
    "../../proto/dossier/v1/application.proto",
    "../../proto/dossier/v1/report.proto",
    "../../proto/dossier/v1/underwriting_service.proto",
    "../../proto/dossier/v1/data_service.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // tonic-prost-build 0.14 no longer emits rerun-if-changed itself.
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }

    let descriptors = protox::compile(PROTOS, [PROTO_ROOT])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("dossier_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
