//! Generates the Rust code for `proto/` at build time, with `protox` as the
//! protobuf compiler (no system `protoc` needed), `tonic-prost-build` for the
//! messages and gRPC services, and `pbjson-build` for the proto3 JSON mapping
//! that the node's JSON gateway speaks.

use std::{
    env, fs,
    path::{Path, PathBuf},
};

use prost::Message;

/// Every `.proto` file under `proto/`, sorted so the output is stable.
fn proto_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            proto_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    let mut protos = Vec::new();
    proto_files(Path::new("proto"), &mut protos)?;
    protos.sort();
    let fds = protox::compile(&protos, ["proto"])?;
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
        // grpc-gateway ignores fields it does not know, and so must we: a
        // newer client may send fields this node has never heard of.
        .ignore_unknown_fields()
        .build(&[".xmtp"])?;
    Ok(())
}
