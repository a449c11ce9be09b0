use crate::store::StoreError;

/// What a use case reports to its caller. Client errors carry a message that says what
/// to fix; `Internal` hides its cause from callers (it is logged where it is mapped).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    ResourceExhausted(String),
    /// A caller past one of its rates (`[rates]`): it may try again after `retry_after`.
    #[error("too many {what}; retry in {} ms", retry_after.as_millis().max(1))]
    TooFast { what: String, retry_after: std::time::Duration },
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }

    pub fn not_found(msg: impl Into<String>) -> Self {
        Error::NotFound(msg.into())
    }
}

/// Store errors that a use case did not map to something more precise.
impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => Error::NotFound("not found".into()),
            StoreError::Conflict => Error::AlreadyExists("already exists".into()),
            StoreError::LimitReached => Error::ResourceExhausted("limit reached".into()),
            other => Error::Internal(other.to_string()),
        }
    }
}
