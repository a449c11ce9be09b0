//! WebSocket close codes and reasons, and which of logic's errors close a session with
//! which: matches without a catch-all, so a new kind of error must be placed here.
//! docs/protocol.md lists the codes for client authors.

use tokio_tungstenite::tungstenite::protocol::{CloseFrame, frame::coding::CloseCode};

use crate::logic::Error;

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

/// How a session that cannot open is closed: a refused token is 4001 (get a new one);
/// anything else is 1013 (logic busy or out of reach: reconnect after a backoff).
pub(super) fn for_refused_session(err: &Error) -> super::session::Exit {
    use super::session::Exit;
    match err {
        Error::Unauthenticated(message)
        | Error::InvalidArgument(message)
        | Error::NotFound(message)
        | Error::PermissionDenied(message) => Exit::Close(UNAUTHENTICATED, message.clone()),
        Error::Conflict(_)
        | Error::FailedPrecondition(_)
        | Error::LimitReached(_)
        | Error::TooFast { .. }
        | Error::Unavailable(_)
        | Error::Internal(_) => {
            tracing::warn!(error = %err, "checking a device token failed");
            Exit::Close(TRY_AGAIN_LATER, "the service is busy; reconnect in a moment".into())
        }
    }
}

/// Whether a call's error ends the session (after its response): only a token that no
/// longer holds.
pub(super) fn for_failed_call(err: &Error) -> Option<(u16, String)> {
    match err {
        Error::Unauthenticated(message) => Some((UNAUTHENTICATED, message.clone())),
        Error::InvalidArgument(_)
        | Error::NotFound(_)
        | Error::Conflict(_)
        | Error::PermissionDenied(_)
        | Error::FailedPrecondition(_)
        | Error::LimitReached(_)
        | Error::TooFast { .. }
        | Error::Unavailable(_)
        | Error::Internal(_) => None,
    }
}

/// How a session whose catch-up failed is closed: 4001 if its token no longer holds,
/// 1011 otherwise (reconnect and sync).
pub(super) fn for_failed_catch_up(err: &Error) -> (u16, String) {
    match for_failed_call(err) {
        Some(close) => close,
        None => {
            tracing::warn!(error = %err, "catching up a session failed");
            (INTERNAL, "could not catch up; reconnect and sync".into())
        }
    }
}
