//! The one mapping from domain errors to gRPC statuses: the code from the error's kind
//! (`Error::code`, one table in logic), the message from the error (an internal fault's
//! cause is logged, never shown).

use tonic::{Code, Status};

use crate::logic::{Error, ErrorCode};

impl From<ErrorCode> for Code {
    fn from(code: ErrorCode) -> Self {
        match code {
            ErrorCode::InvalidArgument => Code::InvalidArgument,
            ErrorCode::NotFound => Code::NotFound,
            ErrorCode::AlreadyExists => Code::AlreadyExists,
            ErrorCode::PermissionDenied => Code::PermissionDenied,
            ErrorCode::ResourceExhausted => Code::ResourceExhausted,
            ErrorCode::FailedPrecondition => Code::FailedPrecondition,
            ErrorCode::Internal => Code::Internal,
            ErrorCode::Unavailable => Code::Unavailable,
            ErrorCode::Unauthenticated => Code::Unauthenticated,
        }
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let code = Code::from(err.code());
        let message = err.public_message();
        match err {
            // The wait is in the message (WebSocket clients see only that) and in metadata,
            // for clients that retry by themselves.
            Error::TooFast { retry_after, .. } => {
                let mut metadata = tonic::metadata::MetadataMap::new();
                let millis = retry_after.as_millis().max(1).to_string();
                metadata.insert("retry-after-ms", millis.parse().expect("digits are valid metadata"));
                Status::with_metadata(code, message, metadata)
            }
            _ => Status::new(code, message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_grpc_numbers() {
        for code in [
            ErrorCode::InvalidArgument,
            ErrorCode::NotFound,
            ErrorCode::AlreadyExists,
            ErrorCode::PermissionDenied,
            ErrorCode::ResourceExhausted,
            ErrorCode::FailedPrecondition,
            ErrorCode::Internal,
            ErrorCode::Unavailable,
            ErrorCode::Unauthenticated,
        ] {
            assert_eq!(Code::from(code) as i32, code as i32, "{code:?}");
        }
    }

    #[test]
    fn an_internal_faults_cause_is_not_shown() {
        let status = Status::from(Error::internal("the disk is on fire"));
        assert_eq!((status.code(), status.message()), (Code::Internal, "internal error"));
    }
}
