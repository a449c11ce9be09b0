//! gRPC plumbing that the services of `api` and of `connect` share.

use tokio::net::TcpListener;
use tonic::metadata::MetadataMap;

/// Accepted connections with TCP_NODELAY: tonic sets it only on listeners it binds
/// itself, and without it small HTTP/2 writes can wait for a delayed ACK (40 ms).
pub fn incoming(listener: TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// The token of `authorization: Bearer <token>`.
pub fn bearer(metadata: &MetadataMap) -> Option<&str> {
    metadata
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty())
}
