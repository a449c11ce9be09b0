use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A new random app secret (256 bits), shown to the operator once.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("gs_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// What the store keeps of a secret. Secrets are random, so a plain SHA-256 is enough:
/// nothing short of the secret itself produces the hash.
pub fn hash_secret(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
