//! Live rooms in the registry: which connect nodes have sessions in a room (and how
//! many), the room's message count, and its last few messages for new joiners. Nothing
//! here is durable: a node's entry expires unless it reports again, and a room nobody
//! is in or sends to is forgotten after its idle time.

use async_trait::async_trait;
use bytes::Bytes;

use super::RouteError;
use crate::model::AppId;

/// How long a room remembers a sender's `client_msg_id`: a send repeated within it (its
/// answer was lost) gets the first one's seq, and reaches nobody twice.
pub const REPEAT_WINDOW_MS: i64 = 5 * 60 * 1000;

/// A message to number in a room.
#[derive(Debug, Clone, Copy)]
pub struct Numbering<'a> {
    /// Counted messages the room takes a second at most; 0: not counted.
    pub per_second: u32,
    /// The sender (empty for the business) and the client's id, when it gave one.
    pub once: Option<(&'a str, &'a str)>,
    pub sent_at_ms: i64,
}

/// What numbering a message to a room gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// A new message: its seq, and the nodes to push it to.
    New { seq: u64, nodes: Vec<String> },
    /// The same sender's message of the same `client_msg_id`, numbered before: its seq
    /// and time. It was pushed then; nothing is pushed now.
    Repeat { seq: u64, sent_at_ms: i64 },
}

impl Published {
    pub fn seq(&self) -> u64 {
        match self {
            Self::New { seq, .. } | Self::Repeat { seq, .. } => *seq,
        }
    }
}

/// A repeat's key within its room: ids hold no spaces.
pub(super) fn once_key((sender, client_msg_id): (&str, &str)) -> String {
    format!("{sender} {client_msg_id}")
}

/// A numbered message as Redis remembers it for repeats: `seq|sent at (ms)`.
pub(super) fn decode_numbered(value: &str) -> Option<Published> {
    let (seq, sent_at_ms) = value.split_once('|')?;
    Some(Published::Repeat { seq: seq.parse().ok()?, sent_at_ms: sent_at_ms.parse().ok()? })
}

/// A room as the registry knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomState {
    /// Sessions in it, as the nodes last reported them.
    pub members: u64,
    pub last_seq: u64,
    pub nodes: Vec<String>,
}

/// One room's count of sessions on the reporting node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomCount {
    pub app: AppId,
    pub room: String,
    pub members: u64,
}

#[async_trait]
pub trait RoomRegistry: Send + Sync + 'static {
    /// Marks `node` as having sessions in the rooms (each with its count) for another
    /// `ttl`; a count of 0 keeps the node in the room until its entry expires, which is
    /// harmless (a push finds nobody) and spares a race with a join. A node calls this
    /// before answering the first join of a room, and every `rooms.report_ms` for the
    /// rooms whose counts changed (every room at least every third of `ttl`).
    async fn report_rooms(&self, node: &str, rooms: &[RoomCount]) -> Result<(), RouteError>;
    /// Takes the room's next seq and lists its nodes, or finds the message numbered
    /// already (see `Numbering::once`); `None` when the room already took `per_second`
    /// counted messages in this second.
    async fn publish(&self, app: AppId, room: &str, message: Numbering<'_>) -> Result<Option<Published>, RouteError>;
    /// Keeps a message (its encoded frame) among the room's last `keep`.
    async fn remember(&self, app: AppId, room: &str, seq: u64, frame: &Bytes, keep: usize) -> Result<(), RouteError>;
    /// The room's kept messages, oldest first, with their seqs.
    async fn replay(&self, app: AppId, room: &str) -> Result<Vec<(u64, Bytes)>, RouteError>;
    async fn room(&self, app: AppId, room: &str) -> Result<RoomState, RouteError>;
    /// Forgets the room; returns the nodes that had sessions in it.
    async fn close_room(&self, app: AppId, room: &str) -> Result<Vec<String>, RouteError>;
}

/// A node's entry in a room: `members|expires at (ms)`.
pub(super) fn encode_count(members: u64, expires_at_ms: i64) -> String {
    format!("{members}|{expires_at_ms}")
}

/// A node's member count, unless its entry expired by `now_ms`.
pub(super) fn decode_count(value: &str, now_ms: i64) -> Option<u64> {
    let (members, expires) = value.split_once('|')?;
    (expires.parse::<i64>().ok()? > now_ms).then(|| members.parse().ok()).flatten()
}

/// A kept message as stored: its seq (8 bytes, big-endian), then the frame.
pub(super) fn encode_kept(seq: u64, frame: &[u8]) -> Vec<u8> {
    let mut kept = Vec::with_capacity(8 + frame.len());
    kept.extend_from_slice(&seq.to_be_bytes());
    kept.extend_from_slice(frame);
    kept
}

pub(super) fn decode_kept(kept: &[u8]) -> Option<(u64, Bytes)> {
    let (seq, frame) = kept.split_at_checked(8)?;
    Some((u64::from_be_bytes(seq.try_into().ok()?), Bytes::copy_from_slice(frame)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_kept_messages_read_back() {
        assert_eq!(decode_count(&encode_count(7, 1_000), 999), Some(7));
        assert_eq!(decode_count(&encode_count(7, 1_000), 1_000), None, "expired");
        assert_eq!(decode_count("junk", 0), None);
        assert_eq!(decode_kept(&encode_kept(42, b"frame")), Some((42, Bytes::from_static(b"frame"))));
        assert_eq!(decode_kept(b"short"), None);
    }
}
