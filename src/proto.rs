//! Code generated from `proto/` by `build.rs`.

/// Serialized descriptors of every gim proto file, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/gim_descriptor.bin"));

#[allow(missing_docs, clippy::all)]
pub mod common {
    pub mod v1 {
        tonic::include_proto!("gim.common.v1");
    }
}

#[allow(missing_docs, clippy::all)]
pub mod logic {
    pub mod v1 {
        tonic::include_proto!("gim.logic.v1");
    }
}

#[allow(missing_docs, clippy::all)]
pub mod client {
    pub mod v1 {
        tonic::include_proto!("gim.client.v1");
    }
}

#[allow(missing_docs, clippy::all)]
pub mod connect {
    pub mod v1 {
        tonic::include_proto!("gim.connect.v1");
    }
}
