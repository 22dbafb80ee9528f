//! Compiles the .proto files with a vendored protoc, so no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure()
        .type_attribute(".apitap.v1", "#[derive(serde::Serialize)]")
        .compile_protos(
            &[
                "proto/control.proto",
                "proto/worker.proto",
                "proto/raft.proto",
                "proto/access.proto",
            ],
            &["proto"],
        )?;
    Ok(())
}
