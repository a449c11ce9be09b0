//! The credentials the nodes of a cluster present to each other, derived from the token
//! secret they all share, each for one purpose so that one leaking gives away no other.

use sha2::{Digest, Sha256};

/// The gRPC metadata that carries `ClusterTokens::on_behalf`.
pub const ON_BEHALF_HEADER: &str = "x-gim-on-behalf";

/// Derived cluster credentials.
#[derive(Clone)]
pub struct ClusterTokens {
    /// Bearer token of the internal APIs (pushes to connect, session reports to logic),
    /// which only ever travels on the internal ports.
    pub internal: String,
    /// Marks a device call a connect node makes for the device (a catch-up) so that it is
    /// not counted against the device's rates. It travels on the public logic port, so it
    /// grants nothing else.
    pub on_behalf: String,
}

impl std::fmt::Debug for ClusterTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterTokens(<redacted>)")
    }
}

fn derive(purpose: &[u8], token_secret: &[u8]) -> String {
    let digest = Sha256::new().chain_update(purpose).chain_update(token_secret).finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl ClusterTokens {
    pub fn derive(token_secret: &[u8]) -> Self {
        Self {
            internal: derive(b"gim internal api v1|", token_secret),
            on_behalf: derive(b"gim on behalf of a device v1|", token_secret),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_purpose_has_a_token_of_its_own() {
        let tokens = ClusterTokens::derive(b"0123456789abcdef0123456789abcdef");
        assert_ne!(tokens.internal, tokens.on_behalf);
        assert_eq!(tokens.internal, ClusterTokens::derive(b"0123456789abcdef0123456789abcdef").internal);
        assert_ne!(tokens.internal, ClusterTokens::derive(b"another secret of thirty-two b!!").internal);
        assert_eq!(format!("{tokens:?}"), "ClusterTokens(<redacted>)");
    }
}
