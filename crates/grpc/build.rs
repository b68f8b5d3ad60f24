//! Generates the `apache.rocketmq.v2` types and the `MessagingService` client (and the server
//! trait, for the loopback tests) from `proto/`, with the `protoc` of `protoc-bin-vendored`: a
//! fresh machine needs no system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // Bodies stay `Bytes`: the producer's body is handed over without a copy.
    config.bytes([".apache.rocketmq.v2.Message.body"]);
    let include = protoc_bin_vendored::include_path()?;
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_with_config(
            config,
            &[
                std::path::PathBuf::from("proto/apache/rocketmq/v2/definition.proto"),
                std::path::PathBuf::from("proto/apache/rocketmq/v2/service.proto"),
            ],
            &[std::path::PathBuf::from("proto"), include],
        )?;
    Ok(())
}
