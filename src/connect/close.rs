//! WebSocket close codes and reasons. docs/protocol.md lists them for client authors.

use tokio_tungstenite::tungstenite::protocol::{CloseFrame, frame::coding::CloseCode};

/// The server is shutting down: reconnect, to another node if there is one.
pub const GOING_AWAY: u16 = 1001;
/// A text frame: the protocol is binary protobuf.
pub const UNSUPPORTED_DATA: u16 = 1003;
/// A binary frame that is not a valid `ClientFrame`.
pub const INVALID_PAYLOAD: u16 = 1007;
/// A frame larger than `connect.max_frame_bytes`.
pub const TOO_BIG: u16 = 1009;
/// A fault on the server's side.
pub const INTERNAL: u16 = 1011;
/// The server is overloaded or cannot reach logic: reconnect after a backoff.
pub const TRY_AGAIN_LATER: u16 = 1013;
/// No valid token: missing, malformed, expired or revoked, or a frame before `Auth`.
pub const UNAUTHENTICATED: u16 = 4001;
/// Another session opened for this device.
pub const REPLACED: u16 = 4002;
/// The business kicked the device, or revoked its tokens.
pub const KICKED: u16 = 4003;
/// No frame within `connect.heartbeat_timeout_secs`.
pub const HEARTBEAT_TIMEOUT: u16 = 4004;
/// The device fell `connect.outbound_queue` frames behind; reconnect and sync.
pub const SLOW_CONSUMER: u16 = 4008;

/// Close reasons are limited to 123 bytes by the protocol.
const MAX_REASON: usize = 123;

/// A close frame with `reason` cut to what the protocol allows.
pub fn frame(code: u16, reason: &str) -> CloseFrame {
    let mut end = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    CloseFrame { code: CloseCode::from(code), reason: reason[..end].to_owned().into() }
}
