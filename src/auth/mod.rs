//! Credentials without I/O: device tokens, password hashes, app secrets and the
//! credentials of a cluster's nodes.

mod cluster;
mod password;
mod secret;
mod token;

pub use cluster::{ClusterTokens, ON_BEHALF_HEADER};
pub use password::{hash_password, verify_password};
pub use secret::{generate_secret, hash_secret};
pub use token::{Claims, TokenError, TokenKey};
