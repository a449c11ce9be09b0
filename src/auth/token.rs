//! Device tokens: `v1.<claims>.<signature>`, both base64url. The claims are JSON and
//! the signature is HMAC-SHA256 over the encoded claims, so any node holding the key
//! verifies a token without a database read.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::model::AppId;

/// What a token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    #[serde(rename = "a")]
    pub app_id: AppId,
    #[serde(rename = "u")]
    pub user_id: String,
    #[serde(rename = "d")]
    pub device_id: String,
    /// Expiry, Unix seconds.
    #[serde(rename = "e")]
    pub expires_at: i64,
    /// The user's and the device's token generation when the token was issued; bumping
    /// either revokes it.
    #[serde(rename = "ug")]
    pub user_generation: u64,
    #[serde(rename = "dg")]
    pub device_generation: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
}

/// The key that signs and verifies tokens.
#[derive(Clone)]
pub struct TokenKey(Hmac<Sha256>);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(<redacted>)")
    }
}

const PREFIX: &str = "v1.";

impl TokenKey {
    pub fn new(secret: &[u8]) -> Self {
        Self(Hmac::new_from_slice(secret).expect("HMAC takes keys of any length"))
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
        let mut mac = self.0.clone();
        mac.update(payload.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{PREFIX}{payload}.{signature}")
    }

    /// The claims of a token signed with this key that has not expired at `now_secs`.
    pub fn verify(&self, token: &str, now_secs: i64) -> Result<Claims, TokenError> {
        let (payload, signature) = parts(token)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Malformed)?;
        let mut mac = self.0.clone();
        mac.update(payload.as_bytes());
        mac.verify_slice(&signature).map_err(|_| TokenError::BadSignature)?;
        let claims = decode_claims(payload)?;
        if claims.expires_at <= now_secs {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

impl Claims {
    /// What a token says, with neither its signature nor its expiry checked: what a client
    /// may read to name its own state (docs/protocol.md). Only a node can tell whether the
    /// token is valid.
    pub fn read_unverified(token: &str) -> Result<Self, TokenError> {
        decode_claims(parts(token)?.0)
    }
}

/// The encoded claims and signature of a token.
fn parts(token: &str) -> Result<(&str, &str), TokenError> {
    token.strip_prefix(PREFIX).and_then(|rest| rest.split_once('.')).ok_or(TokenError::Malformed)
}

fn decode_claims(payload: &str) -> Result<Claims, TokenError> {
    let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            app_id: 7,
            user_id: "alice".into(),
            device_id: "phone".into(),
            expires_at: 2_000,
            user_generation: 1,
            device_generation: 3,
        }
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let key = TokenKey::new(b"0123456789abcdef0123456789abcdef");
        let token = key.sign(&claims());
        assert_eq!(key.verify(&token, 1_999), Ok(claims()));
        assert_eq!(key.verify(&token, 2_000), Err(TokenError::Expired));
    }

    #[test]
    fn a_token_from_another_key_or_with_edited_claims_is_refused() {
        let key = TokenKey::new(b"0123456789abcdef0123456789abcdef");
        let other = TokenKey::new(b"fedcba9876543210fedcba9876543210");
        let token = other.sign(&claims());
        assert_eq!(key.verify(&token, 0), Err(TokenError::BadSignature));

        let mut forged = claims();
        forged.user_id = "mallory".into();
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let genuine = key.sign(&claims());
        let signature = genuine.rsplit_once('.').unwrap().1;
        assert_eq!(key.verify(&format!("v1.{forged_payload}.{signature}"), 0), Err(TokenError::BadSignature));
    }

    #[test]
    fn a_client_reads_the_claims_of_any_well_formed_token() {
        let token = TokenKey::new(b"fedcba9876543210fedcba9876543210").sign(&claims());
        assert_eq!(Claims::read_unverified(&token), Ok(claims()), "whatever key signed it, expired or not");
        assert_eq!(Claims::read_unverified("v1.!!.??"), Err(TokenError::Malformed));
    }

    #[test]
    fn garbage_is_malformed() {
        let key = TokenKey::new(b"0123456789abcdef0123456789abcdef");
        for token in ["", "v1.", "v1.abc", "v2.a.b", "v1.!!.??"] {
            assert_eq!(key.verify(token, 0), Err(TokenError::Malformed), "{token}");
        }
    }
}
