//! Webhooks: the events gim owes an app's backend, and how they are posted.
//!
//! A change writes its events to an outbox in its own transaction (`store`), one row per
//! endpoint that wants the kind; logic's dispatcher (`logic::webhooks`) leases an
//! endpoint's partitions and posts their rows with `sender`, signed as the Standard
//! Webhooks specification says (`signature`).

pub mod events;
pub mod sender;
pub mod signature;

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
    pub kinds: Kinds,
    pub enabled: bool,
    pub description: String,
    /// Why gim disabled it (the receiver answered 410 Gone); empty otherwise.
    pub disabled_reason: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
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
    /// What the event's order is kept within: `d:alice:bob`, `g:team`, `u:alice`.
    pub lane: String,
    /// The JSON body posted: `{"type", "timestamp", "data"}`.
    pub payload: String,
}

impl OutboxEvent {
    /// The partition of the lane: a stable hash (FNV-1a), the same on every node.
    pub fn partition(&self) -> u32 {
        let hash = self
            .lane
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3));
        (hash % u64::from(PARTITIONS)) as u32
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
