//! Signing as the Standard Webhooks specification says: HMAC-SHA256 over
//! `{webhook-id}.{webhook-timestamp}.{body}` with the key that follows `whsec_` in the
//! secret (base64), sent as `webhook-signature: v1,<base64>`. Any of the specification's
//! libraries verifies it; `docs/webhooks.md` shows it in a few lines.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::Sha256;

const PREFIX: &str = "whsec_";
/// Keys shorter than this are refused (the specification asks for 24 to 64 bytes).
const MIN_KEY_BYTES: usize = 24;
const MAX_KEY_BYTES: usize = 64;

/// A new secret: `whsec_` and 32 random bytes in base64.
pub fn generate_secret() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    format!("{PREFIX}{}", STANDARD.encode(key))
}

/// The key of a secret, if it is one: `whsec_` and the base64 of 24 to 64 bytes.
pub fn key_of(secret: &str) -> Result<Vec<u8>, String> {
    let encoded = secret.strip_prefix(PREFIX).ok_or("a webhook secret starts with whsec_")?;
    let key = STANDARD.decode(encoded).map_err(|_| "a webhook secret is whsec_ and base64")?;
    if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&key.len()) {
        return Err(format!("a webhook secret's key is {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes"));
    }
    Ok(key)
}

/// The `webhook-signature` header's value for one attempt.
pub fn sign(key: &[u8], webhook_id: &str, timestamp_secs: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(webhook_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header signed with each of `keys`: the specification lets a
/// header carry several space-separated signatures, and a receiver accepts the request if
/// one of them verifies with its secret (how a rotated secret overlaps the previous one).
pub fn sign_with_each(keys: &[Vec<u8>], webhook_id: &str, timestamp_secs: i64, body: &[u8]) -> String {
    let signatures: Vec<String> = keys.iter().map(|key| sign(key, webhook_id, timestamp_secs, body)).collect();
    signatures.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's own example (standard-webhooks, spec/standard-webhooks.md).
    #[test]
    fn signs_the_specification_example() {
        let key = key_of("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let signature = sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn signs_with_each_key_in_one_header() {
        const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let (old, new) =
            (key_of("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap(), key_of(&generate_secret()).unwrap());
        let body = br#"{"test": 2432232314}"#;
        let header = sign_with_each(&[new.clone(), old.clone()], ID, 1614265330, body);
        let expected = format!("{} v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", sign(&new, ID, 1614265330, body));
        assert_eq!(header, expected);
        assert_eq!(sign_with_each(std::slice::from_ref(&old), ID, 1614265330, body), sign(&old, ID, 1614265330, body));
    }

    #[test]
    fn refuses_secrets_that_are_not_whsec_keys() {
        assert!(key_of("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(key_of("whsec_c2hvcnQ=").is_err());
        assert!(key_of("whsec_not base64!").is_err());
        assert_eq!(key_of(&generate_secret()).unwrap().len(), 32);
    }
}
