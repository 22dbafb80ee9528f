//! Compiles the .proto files with a vendored protoc, so no system protoc is needed.

const TO_SCHEMA: &str = "#[derive(utoipa::ToSchema)]";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure()
        .type_attribute(".apitap.v1", "#[derive(serde::Serialize)]")
        // The messages the coordinator's HTTP JSON API returns, described in its OpenAPI
        // document from these same types.
        .type_attribute(".apitap.v1.ClusterStatusResponse", TO_SCHEMA)
        .type_attribute(".apitap.v1.MemberInfo", TO_SCHEMA)
        .type_attribute(".apitap.v1.WorkerInfo", TO_SCHEMA)
        .type_attribute(".apitap.v1.PipelineInfo", TO_SCHEMA)
        .type_attribute(".apitap.v1.RunInfo", TO_SCHEMA)
        .type_attribute(".apitap.v1.ShardInfo", TO_SCHEMA)
        .type_attribute(".apitap.v1.RateLimitInfo", TO_SCHEMA)
        .type_attribute(".apitap.v1.DeadLetter", TO_SCHEMA)
        .type_attribute(".apitap.v1.BreakerInfo", TO_SCHEMA)
        .type_attribute(".apitap.v1.ElectionInfo", TO_SCHEMA)
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
