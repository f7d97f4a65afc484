//! Compiles `proto/` with protox (pure Rust, no protoc needed) and keeps the encoded descriptor
//! set in OUT_DIR so every service can serve reflection from it.

use prost::Message;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [
        "praxis/directory/v1/email_domain.proto",
        "praxis/directory/v1/enterprise.proto",
        "praxis/directory/v1/person.proto",
        "praxis/directory/v1/practice.proto",
        "praxis/directory/v1/role.proto",
        "praxis/directory/v1/user.proto",
        "praxis/directory/v1/account.proto",
        "praxis/directory/v1/access.proto",
        "praxis/directory/v1/directory_sync.proto",
        "praxis/identity/v1/token.proto",
        "praxis/identity/v1/auth.proto",
        "praxis/identity/v1/sso.proto",
        "praxis/identity/v1/api_key.proto",
        "praxis/authz/v1/authz.proto",
        "praxis/audit/v1/audit.proto",
    ];
    let descriptors = protox::compile(files, [&proto_root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("praxis_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    println!("cargo:rerun-if-changed={}", proto_root.display());
    Ok(())
}
