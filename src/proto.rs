//! Code generated from `proto/` by `build.rs`.

/// Serialized descriptors of every gim proto file.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/gim_descriptor.bin"));

/// The descriptors public reflection serves: all but the cluster's internal API
/// (`gim.connect.v1`).
pub const PUBLIC_FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/gim_public_descriptor.bin"));

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
