//! Generates the Rust code for `proto/` at build time, with `protox` as the
//! protobuf compiler (no system `protoc` needed), `tonic-prost-build` for the
//! messages and gRPC services, and `pbjson-build` for the proto3 JSON mapping
//! that the node's JSON gateway speaks.

use std::{env, fs, path::PathBuf};

use prost::Message;

const PROTOS: &[&str] = &[
    "proto/xmtp/message_api/v1/message_api.proto",
    "proto/xmtp/message_contents/content.proto",
    "proto/xmtp/v3/message_contents/association.proto",
    "proto/xmtp/v3/message_contents/bundle.proto",
    "proto/xmtp/key_api/v1/key_api.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    let fds = protox::compile(PROTOS, ["proto"])?;
    let descriptor_path = out_dir.join("xmtp_descriptor.bin");
    fs::write(&descriptor_path, fds.encode_to_vec())?;

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .file_descriptor_set_path(&descriptor_path)
        .skip_protoc_run()
        .compile_fds(fds)?;

    let descriptors = fs::read(&descriptor_path)?;
    pbjson_build::Builder::new()
        .register_descriptors(&descriptors)?
        .build(&[".xmtp"])?;
    Ok(())
}
