//! The one mapping from domain errors to gRPC statuses.

use tonic::{Code, Status};

use crate::logic::Error;

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let code = match &err {
            Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::NotFound(_) => Code::NotFound,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::PermissionDenied(_) => Code::PermissionDenied,
            Error::Unauthenticated(_) => Code::Unauthenticated,
            Error::ResourceExhausted(_) => Code::ResourceExhausted,
            Error::TooFast { retry_after, .. } => {
                // The wait in the message (WebSocket clients see only that) and in
                // metadata, for clients that retry by themselves.
                let mut metadata = tonic::metadata::MetadataMap::new();
                let millis = retry_after.as_millis().max(1).to_string();
                metadata.insert("retry-after-ms", millis.parse().expect("digits are valid metadata"));
                return Status::with_metadata(Code::ResourceExhausted, err.to_string(), metadata);
            }
            Error::FailedPrecondition(_) => Code::FailedPrecondition,
            Error::Unavailable(_) => Code::Unavailable,
            Error::Internal(cause) => {
                // The cause stays in the log; callers learn only that it was not their fault.
                tracing::error!(cause = %cause, "internal error");
                return Status::internal("internal error");
            }
        };
        Status::new(code, err.to_string())
    }
}
