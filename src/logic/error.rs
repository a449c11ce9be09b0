//! What a use case reports to its caller, as domain facts. Client errors carry a message
//! that says what to fix; `Internal` keeps its cause for the log and shows callers only
//! that the fault was gim's. Every source of errors (the store, the rules' refusals) is
//! turned into an `Error` in this one file, by matches without a catch-all: a new kind
//! of failure that nobody maps does not compile.

use std::time::Duration;

use super::rules::{friend::FriendRefusal, group::GroupRefusal, message::SendRefusal};
use crate::store::{AppendError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field breaks a rule; the message names the field and the rule.
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    /// What the call would create exists already.
    #[error("{0}")]
    Conflict(String),
    /// The caller may not do this; the message names the rule.
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    Unauthenticated(String),
    /// The state does not allow it (yet): a dismissed group, an owner leaving.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A limit is reached: devices per user, members per group.
    #[error("{0}")]
    LimitReached(String),
    /// A caller past one of its rates (`[rates]`): it may try again after `retry_after`.
    #[error("too many {what}; retry in {} ms", retry_after.as_millis().max(1))]
    TooFast { what: String, retry_after: Duration },
    /// gim cannot serve the call now (a database or Redis out of reach, the node
    /// stopping); the caller may retry, here or on another node.
    #[error("{0}")]
    Unavailable(String),
    /// A fault on gim's side. The source goes to the log, never to the caller.
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The kinds of `Error`, numbered as gRPC status codes number them: the device API
/// answers WebSocket frames with these numbers, and the gRPC API maps them to its codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum ErrorCode {
    InvalidArgument = 3,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Internal = 13,
    Unavailable = 14,
    Unauthenticated = 16,
}

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }

    pub fn not_found(msg: impl Into<String>) -> Self {
        Error::NotFound(msg.into())
    }

    /// An internal fault with its cause.
    pub fn internal(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::Internal(cause.into())
    }

    /// The one table from errors to codes.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidArgument(_) => ErrorCode::InvalidArgument,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::Conflict(_) => ErrorCode::AlreadyExists,
            Error::PermissionDenied(_) => ErrorCode::PermissionDenied,
            Error::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Error::FailedPrecondition(_) => ErrorCode::FailedPrecondition,
            Error::LimitReached(_) | Error::TooFast { .. } => ErrorCode::ResourceExhausted,
            Error::Unavailable(_) => ErrorCode::Unavailable,
            Error::Internal(_) => ErrorCode::Internal,
        }
    }

    /// What a caller is told: the message, except for internal faults, whose cause is
    /// logged here and not shown.
    pub fn public_message(&self) -> String {
        match self {
            Error::Internal(cause) => {
                tracing::error!(cause = %cause, "internal error");
                "internal error".into()
            }
            other => other.to_string(),
        }
    }
}

/// Store failures that a use case did not turn into something more precise.
impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => Error::NotFound("not found".into()),
            StoreError::Conflict => Error::Conflict("already exists".into()),
            StoreError::OutOfRange { column, value } => {
                Error::InvalidArgument(format!("{column} {value} is out of range (at most {})", i64::MAX))
            }
            StoreError::Unavailable(cause) => {
                tracing::warn!(cause = %cause, "the database is out of reach");
                Error::Unavailable("the database is out of reach; retry in a moment".into())
            }
            err @ (StoreError::Corrupt(_) | StoreError::Backend(_) | StoreError::Migrate(_)) => Error::internal(err),
        }
    }
}

/// A message the store would not take. A refusal is the rules' (which the writer
/// reports with its reason); it reaching here means that reason was lost.
impl From<AppendError> for Error {
    fn from(err: AppendError) -> Self {
        match err {
            AppendError::UnknownUser(user) => Error::NotFound(format!("user {user} does not exist")),
            AppendError::Refused => Error::internal("a message was refused for no reason recorded"),
            AppendError::Recalled => Error::FailedPrecondition("the message was recalled".into()),
        }
    }
}

impl From<GroupRefusal> for Error {
    fn from(refusal: GroupRefusal) -> Self {
        let message = refusal.to_string();
        match refusal {
            GroupRefusal::NoGroup(_) | GroupRefusal::UnknownUsers(_) | GroupRefusal::NoJoinRequest(_) => {
                Error::NotFound(message)
            }
            GroupRefusal::Dismissed(_) | GroupRefusal::Owner => Error::FailedPrecondition(message),
            GroupRefusal::Full(_) => Error::LimitReached(message),
            GroupRefusal::ActsForUser => Error::InvalidArgument(message),
            GroupRefusal::NotMember(_)
            | GroupRefusal::NotAdmin
            | GroupRefusal::NotOwner
            | GroupRefusal::Peer
            | GroupRefusal::InviteOnly => Error::PermissionDenied(message),
        }
    }
}

impl From<SendRefusal> for Error {
    fn from(refusal: SendRefusal) -> Self {
        let message = refusal.to_string();
        match refusal {
            SendRefusal::NoGroup(_) => Error::NotFound(message),
            SendRefusal::Dismissed(_) => Error::FailedPrecondition(message),
            SendRefusal::NotMember(_)
            | SendRefusal::Muted(_)
            | SendRefusal::MutedAll
            | SendRefusal::Blocked
            | SendRefusal::FriendsOnly => Error::PermissionDenied(message),
        }
    }
}

impl From<FriendRefusal> for Error {
    fn from(refusal: FriendRefusal) -> Self {
        let message = refusal.to_string();
        match refusal {
            FriendRefusal::AlreadyFriends => Error::Conflict(message),
            FriendRefusal::Blocked => Error::PermissionDenied(message),
            FriendRefusal::Blocking(_) => Error::FailedPrecondition(message),
            FriendRefusal::NoRequest(_) | FriendRefusal::UnknownUsers(_) => Error::NotFound(message),
            FriendRefusal::TooManyFriends(..)
            | FriendRefusal::CoolingDown { .. }
            | FriendRefusal::TooManyPending(_) => Error::LimitReached(message),
        }
    }
}
