//! Webhooks: the events gim owes an app's backend, and how they are posted.
//!
//! A change writes its events to an outbox in its own transaction (`store`), one row per
//! endpoint that wants the kind; the `dispatcher` leases an endpoint's partitions and
//! posts their rows with `sender`, signed as the Standard Webhooks specification says
//! (`signature`).

pub mod dispatcher;
pub mod events;
pub mod sender;
pub mod signature;

use sha2::{Digest, Sha256};

use crate::model::AppId;

/// Partitions of an endpoint's outbox. A lane (one conversation, one user) always falls
/// in the same partition, and a partition is delivered by one worker at a time, in order:
/// this is how many of an endpoint's lanes can be in flight at once.
pub const PARTITIONS: u32 = 8;

/// An app's webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: u64,
    pub app: AppId,
    pub url: String,
    /// `whsec_` and the base64 of the signing key.
    pub secret: String,
    /// The secret a rotation replaced, which signs beside `secret` until
    /// `previous_secret_until_ms` so that receivers can move to the new one.
    pub previous_secret: String,
    /// 0: no previous secret signs.
    pub previous_secret_until_ms: i64,
    pub kinds: Kinds,
    pub enabled: bool,
    pub description: String,
    /// Why gim disabled it (the receiver answered 410 Gone); empty otherwise.
    pub disabled_reason: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl Endpoint {
    /// The keys an event posted at `now_ms` is signed with: the secret's, and the
    /// previous secret's while its overlap lasts.
    pub fn signing_keys(&self, now_ms: i64) -> Result<Vec<Vec<u8>>, String> {
        let mut keys = vec![signature::key_of(&self.secret)?];
        if now_ms < self.previous_secret_until_ms {
            keys.push(signature::key_of(&self.previous_secret)?);
        }
        Ok(keys)
    }

    /// Until when the previous secret signs (0: it does not any more).
    pub fn previous_secret_expires_at_ms(&self, now_ms: i64) -> i64 {
        if now_ms < self.previous_secret_until_ms { self.previous_secret_until_ms } else { 0 }
    }
}

/// An endpoint to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEndpoint {
    pub url: String,
    pub secret: String,
    pub kinds: Kinds,
    pub enabled: bool,
    pub description: String,
}

/// Changes to an endpoint; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub kinds: Option<Kinds>,
    pub enabled: Option<bool>,
    pub description: Option<String>,
}

/// The event kinds an endpoint wants: names (`message.created`), families (`group.*`)
/// or everything (`*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kinds(Vec<String>);

impl Kinds {
    /// Parses space- or comma-separated patterns, each a known kind, a known family
    /// with `.*`, or `*`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut patterns: Vec<String> = Vec::new();
        for pattern in text.split([' ', ',']).map(str::trim).filter(|p| !p.is_empty()) {
            let known = match pattern.strip_suffix(".*") {
                _ if pattern == "*" => true,
                Some(family) => events::FAMILIES.contains(&family),
                None => events::KINDS.contains(&pattern),
            };
            if !known {
                return Err(format!(
                    "unknown event kind {pattern:?}: use *, a family ({}.*) or one of {}",
                    events::FAMILIES.join(".*, "),
                    events::KINDS.join(", ")
                ));
            }
            if !patterns.iter().any(|p| p == pattern) {
                patterns.push(pattern.to_owned());
            }
        }
        if patterns.is_empty() {
            return Err("name at least one event kind (* for all)".into());
        }
        Ok(Self(patterns))
    }

    pub fn wants(&self, kind: &str) -> bool {
        self.0.iter().any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => kind.starts_with(prefix),
            None => pattern == kind,
        })
    }

    pub fn patterns(&self) -> &[String] {
        &self.0
    }

    /// The patterns as stored: space-separated.
    pub fn to_text(&self) -> String {
        self.0.join(" ")
    }
}

/// An event to write to the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    pub kind: &'static str,
    /// What the event's order is kept within: a conversation (`d:alice:bob`, `g:team`,
    /// `u:alice` for the system's), a friendship (`f:alice:bob`), a moment (`m:<post id>`)
    /// or a user (`u:alice`, for presence and devices).
    pub lane: String,
    /// The JSON body posted: `{"type", "timestamp", "data"}`.
    pub payload: String,
}

/// The partition of a lane's events. The hash must mix every bit of the lane into the
/// low bits that pick the partition (FNV-1a, used before, spread lanes named one after the
/// other over two partitions of eight), and must never change: partitions are stored with
/// the events, and a lane whose events sat in two partitions could be delivered out of
/// order. SHA-256 is both; a start that finds events filed under another hash files them
/// again (`refile_webhook_events`, a schema task).
pub fn partition_of(lane: &str) -> u32 {
    let digest = Sha256::digest(lane.as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(head) % u64::from(PARTITIONS)) as u32
}

impl OutboxEvent {
    pub fn partition(&self) -> u32 {
        partition_of(&self.lane)
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Not delivered yet: due at `next_at_ms`.
    Waiting = 0,
    Delivered = 1,
    /// Given up on; a replay makes it waiting again.
    Dead = 2,
}

impl DeliveryState {
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(Self::Waiting),
            1 => Some(Self::Delivered),
            2 => Some(Self::Dead),
            _ => None,
        }
    }
}

/// One event owed to one endpoint, and how its delivery went so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: u64,
    pub app: AppId,
    pub endpoint_id: u64,
    pub lane: String,
    pub kind: String,
    pub payload: String,
    pub created_at_ms: i64,
    /// When its retries were last started over: by a replay, or its endpoint enabled again
    /// (0: never; they run from its writing).
    pub retry_from_ms: i64,
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_at_ms: i64,
    pub last_at_ms: i64,
    /// The HTTP status of the last attempt (0: no answer).
    pub last_status: u16,
    pub last_error: String,
}

impl Delivery {
    /// The `webhook-id` header: the same on every attempt, so receivers can drop repeats.
    pub fn webhook_id(&self) -> String {
        format!("evt_{}", self.id)
    }

    /// When its retry window began: when it was written, or started over since.
    pub fn retry_window_start_ms(&self) -> i64 {
        self.created_at_ms.max(self.retry_from_ms)
    }
}

/// How one attempt ended, as the outbox records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered {
        status: u16,
    },
    /// Try again at `next_at_ms`.
    Retry {
        next_at_ms: i64,
        status: u16,
        error: String,
    },
    Dead {
        status: u16,
        error: String,
    },
}

/// Which deliveries of an endpoint to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryFilter {
    pub state: Option<DeliveryState>,
    /// Ids below this one (0: from the newest).
    pub before_id: u64,
    pub limit: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lanes named one after the other (FNV-1a put each family in 2 or 3 partitions).
    #[test]
    fn lanes_named_alike_spread_over_the_partitions() {
        let families: [fn(u32) -> String; 5] = [
            |i| format!("d:alice{i}:peer{i}"),
            |i| format!("d:a{i}:b{i}"),
            |i| format!("d:user{i}:user{}", i + 10),
            |i| format!("g:room-{i}"),
            |i| format!("u:user{i}"),
        ];
        for family in families {
            let used: std::collections::BTreeSet<u32> = (0..10).map(|i| partition_of(&family(i))).collect();
            assert!(used.len() >= 6, "{}: partitions {used:?}", family(0));
        }
        let mut counts = [0u32; PARTITIONS as usize];
        for i in 0..8000 {
            counts[partition_of(&format!("d:user{i}:peer{i}")) as usize] += 1;
        }
        assert!(counts.iter().all(|count| (900..=1100).contains(count)), "{counts:?}");
    }

    /// Partitions are stored with the events: the hash is the same on every node and in
    /// every version.
    #[test]
    fn partitions_never_change() {
        let lanes = ["d:alice:bob", "g:team", "u:alice", "f:ann:bob", "m:7401786389170176001"];
        let partitions: Vec<u32> = lanes.iter().map(|lane| partition_of(lane)).collect();
        assert_eq!(partitions, [6, 0, 0, 0, 4]);
    }
}
