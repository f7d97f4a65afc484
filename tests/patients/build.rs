//! The example's own contract, compiled with protox like Praxis's.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let descriptors = protox::compile(["example/patients/v1/patients.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .compile_fds(descriptors)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
