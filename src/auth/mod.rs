//! Credentials without I/O: device tokens, password hashes and app secrets.

mod password;
mod secret;
mod token;

pub use password::{hash_password, verify_password};
pub use secret::{generate_secret, hash_secret};
pub use token::{Claims, TokenError, TokenKey};
