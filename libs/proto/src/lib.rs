//! Generated code for the Praxis contracts, and the permission catalogue they share.
#![forbid(unsafe_code)]
#![allow(clippy::all, clippy::unwrap_used, clippy::expect_used)]

/// Encoded `FileDescriptorSet` of every `praxis.*` package, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/praxis_descriptor.bin"));

pub mod catalogue;
pub mod json;

pub mod directory {
    pub mod v1 {
        tonic::include_proto!("praxis.directory.v1");
    }
}

pub mod identity {
    pub mod v1 {
        tonic::include_proto!("praxis.identity.v1");
    }
}

pub mod authz {
    pub mod v1 {
        tonic::include_proto!("praxis.authz.v1");
    }
}

pub mod audit {
    pub mod v1 {
        tonic::include_proto!("praxis.audit.v1");
    }
}
