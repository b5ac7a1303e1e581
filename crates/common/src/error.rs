//! The Flotilla error type.
//!
//! Which kind to use:
//! - [`ErrorKind::InvalidArgument`]: the user's input is wrong (bad SQL, a bad configuration
//!   value, an unknown source kind). Fixing the input fixes the error.
//! - [`ErrorKind::NotFound`]: something the input names does not exist (a table, a file).
//! - [`ErrorKind::Unavailable`]: a database, a file system or a peer could not be reached; trying
//!   again later may work.
//! - [`ErrorKind::Internal`]: a broken invariant inside Flotilla: a bug.
//!
//! Errors from DataFusion are classified by [`Error::from`] so that a plan error stays an
//! invalid-argument error when it crosses an edge.

use datafusion::error::DataFusionError;
use std::fmt;

/// The result type of Flotilla's own APIs.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] is; decides exit codes and gRPC status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request or configuration is malformed.
    InvalidArgument,
    /// A named object (table, schema, file, source) does not exist.
    NotFound,
    /// An object to be created exists already.
    AlreadyExists,
    /// Credentials are missing or wrong.
    Unauthenticated,
    /// Credentials are valid but do not allow the operation.
    PermissionDenied,
    /// A memory or disk budget was exceeded.
    ResourceExhausted,
    /// A remote system (database, worker, file system) could not be reached.
    Unavailable,
    /// The operation was cancelled by the client.
    Cancelled,
    /// The operation ran past its deadline (a statement timeout).
    TimedOut,
    /// The operation is valid but not supported (yet).
    Unsupported,
    /// A bug in Flotilla.
    Internal,
}

impl ErrorKind {
    /// The gRPC status code that reports this kind of error to a remote client.
    pub fn grpc_code(self) -> tonic::Code {
        match self {
            ErrorKind::InvalidArgument => tonic::Code::InvalidArgument,
            ErrorKind::NotFound => tonic::Code::NotFound,
            ErrorKind::AlreadyExists => tonic::Code::AlreadyExists,
            ErrorKind::Unauthenticated => tonic::Code::Unauthenticated,
            ErrorKind::PermissionDenied => tonic::Code::PermissionDenied,
            ErrorKind::ResourceExhausted => tonic::Code::ResourceExhausted,
            ErrorKind::Unavailable => tonic::Code::Unavailable,
            ErrorKind::Cancelled => tonic::Code::Cancelled,
            ErrorKind::TimedOut => tonic::Code::DeadlineExceeded,
            ErrorKind::Unsupported => tonic::Code::Unimplemented,
            ErrorKind::Internal => tonic::Code::Internal,
        }
    }

    /// The kind of error a gRPC status from a remote node or endpoint reports (the inverse of
    /// [`ErrorKind::grpc_code`]; codes without a kind of their own are internal errors).
    pub fn from_grpc_code(code: tonic::Code) -> Self {
        match code {
            tonic::Code::InvalidArgument
            | tonic::Code::OutOfRange
            | tonic::Code::FailedPrecondition => ErrorKind::InvalidArgument,
            tonic::Code::NotFound => ErrorKind::NotFound,
            tonic::Code::AlreadyExists => ErrorKind::AlreadyExists,
            tonic::Code::Unauthenticated => ErrorKind::Unauthenticated,
            tonic::Code::PermissionDenied => ErrorKind::PermissionDenied,
            tonic::Code::ResourceExhausted => ErrorKind::ResourceExhausted,
            tonic::Code::Unavailable => ErrorKind::Unavailable,
            tonic::Code::DeadlineExceeded => ErrorKind::TimedOut,
            tonic::Code::Cancelled | tonic::Code::Aborted => ErrorKind::Cancelled,
            tonic::Code::Unimplemented => ErrorKind::Unsupported,
            tonic::Code::Ok
            | tonic::Code::Unknown
            | tonic::Code::Internal
            | tonic::Code::DataLoss => ErrorKind::Internal,
        }
    }
}

/// An error with a kind, a message for people, optionally the source it concerns, and the
/// error it came from ([`std::error::Error::source`]).
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    /// The configured source (database) the error came from, if any.
    source_name: Option<String>,
    /// The error this one was made from (DataFusion's, an I/O error, a driver's).
    cause: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    /// An error of `kind` with a message written for the person who will read it.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source_name: None,
            cause: None,
        }
    }

    /// Keeps the error this one was made from, for [`std::error::Error::source`] (the message
    /// stays this error's own).
    pub fn caused_by(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.cause = Some(Box::new(cause));
        self
    }

    /// Shorthand for [`ErrorKind::InvalidArgument`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    /// Shorthand for [`ErrorKind::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// Shorthand for [`ErrorKind::Unavailable`].
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// Shorthand for [`ErrorKind::Internal`].
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// Names the source this error concerns; shown in front of the message.
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source_name = Some(source.into());
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the source name.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The source this error concerns, if any.
    pub fn source_name(&self) -> Option<&str> {
        self.source_name.as_deref()
    }

    /// Converts into a DataFusion error that keeps the message readable.
    pub fn into_datafusion(self) -> DataFusionError {
        match self.kind {
            ErrorKind::InvalidArgument | ErrorKind::NotFound => {
                DataFusionError::Plan(self.to_string())
            }
            ErrorKind::Unsupported => DataFusionError::NotImplemented(self.to_string()),
            ErrorKind::Internal => DataFusionError::Internal(self.to_string()),
            _ => DataFusionError::External(Box::new(self)),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source_name {
            Some(source) => write!(f, "source '{source}': {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|cause| cause as &(dyn std::error::Error + 'static))
    }
}

impl From<DataFusionError> for Error {
    fn from(e: DataFusionError) -> Self {
        // One of ours that travelled through DataFusion comes back as it was.
        let e = match e {
            DataFusionError::External(inner) => match inner.downcast::<Error>() {
                Ok(ours) => return *ours,
                Err(other) => DataFusionError::External(other),
            },
            other => other,
        };
        let kind = classify(&e);
        // `DataFusionError`'s Display prefixes the variant ("Error during planning: ...");
        // that prefix is useful to people, so keep it.
        Error::new(kind, e.to_string()).caused_by(e)
    }
}

impl From<Error> for tonic::Status {
    /// The status a remote client sees: the code of the error's kind and its message for people
    /// (never a Debug dump).
    fn from(e: Error) -> Self {
        tonic::Status::new(e.kind().grpc_code(), e.to_string())
    }
}

impl From<tonic::Status> for Error {
    /// A status from a gRPC call (a remote node's answer, or a Flight service method called in
    /// process): its code's kind and its message.
    fn from(status: tonic::Status) -> Self {
        Error::new(
            ErrorKind::from_grpc_code(status.code()),
            status.message().to_string(),
        )
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        let kind = match e.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            _ => ErrorKind::Unavailable,
        };
        Error::new(kind, e.to_string()).caused_by(e)
    }
}

/// The kind of error `e` is (what it would become as an [`Error`]), without taking it.
pub fn kind_of(e: &DataFusionError) -> ErrorKind {
    classify(e)
}

fn classify(e: &DataFusionError) -> ErrorKind {
    match e {
        // A column that is not there (or is ambiguous) is a mistake in the statement, not a
        // missing object: whatever its text says.
        DataFusionError::SchemaError(..) => ErrorKind::InvalidArgument,
        // DataFusion's planner reports an unknown table or function as a plan error with text
        // only ("table 'x' not found").
        DataFusionError::SQL(..) | DataFusionError::Plan(_) => {
            if e.to_string().contains("not found") {
                ErrorKind::NotFound
            } else {
                ErrorKind::InvalidArgument
            }
        }
        // SQL `EXECUTE`/`DEALLOCATE` of a name never prepared, `PREPARE` of one in use:
        // DataFusion reports them as execution errors, but the statement is what is wrong.
        DataFusionError::Execution(message) if message.starts_with("Prepared statement '") => {
            if message.contains("does not exist") {
                ErrorKind::NotFound
            } else {
                ErrorKind::InvalidArgument
            }
        }
        DataFusionError::NotImplemented(_) => ErrorKind::Unsupported,
        DataFusionError::ResourcesExhausted(_) => ErrorKind::ResourceExhausted,
        DataFusionError::Configuration(_) => ErrorKind::InvalidArgument,
        DataFusionError::IoError(_) => ErrorKind::Unavailable,
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            classify(inner)
        }
        DataFusionError::Shared(inner) => classify(inner),
        DataFusionError::External(inner) => match inner.downcast_ref::<Error>() {
            Some(ours) => ours.kind(),
            None => ErrorKind::Internal,
        },
        // Variants behind DataFusion features (parquet, object_store) and run-time failures
        // that carry no more precise kind.
        _ => ErrorKind::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_errors_are_invalid_arguments_and_keep_their_text() {
        let e: Error = DataFusionError::Plan("bad column".into()).into();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("bad column"));
        assert_eq!(e.kind().grpc_code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn an_error_keeps_what_it_was_made_from_and_unknown_columns_are_invalid_by_type() {
        use datafusion::common::{Column, SchemaError};
        use std::error::Error as _;
        let unknown = DataFusionError::SchemaError(
            Box::new(SchemaError::FieldNotFound {
                field: Box::new(Column::from_name("nope")),
                valid_fields: vec![],
            }),
            Box::new(None),
        );
        let e: Error = unknown.into();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        let cause = e.source().expect("the DataFusion error");
        assert!(cause.downcast_ref::<DataFusionError>().is_some());
        assert!(cause.to_string().contains("nope"), "{cause}");

        let io: Error = std::io::Error::new(std::io::ErrorKind::NotFound, "no file").into();
        assert_eq!(io.kind(), ErrorKind::NotFound);
        assert!(
            io.source()
                .unwrap()
                .downcast_ref::<std::io::Error>()
                .is_some()
        );
        assert!(Error::invalid("plain").source().is_none());
    }

    #[test]
    fn unknown_prepared_statements_are_not_found() {
        let e = DataFusionError::Execution("Prepared statement 'p' does not exist".into());
        assert_eq!(kind_of(&e), ErrorKind::NotFound);
        let e = DataFusionError::Execution("Prepared statement 'p' already exists".into());
        assert_eq!(kind_of(&e), ErrorKind::InvalidArgument);
        let e = DataFusionError::Execution("division by zero".into());
        assert_eq!(kind_of(&e), ErrorKind::Internal);
    }

    #[test]
    fn our_errors_survive_a_trip_through_datafusion() {
        let ours = Error::unavailable("connection refused").with_source("pg");
        let e: Error = ours.into_datafusion().into();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert_eq!(e.to_string(), "source 'pg': connection refused");
    }

    #[test]
    fn every_kind_survives_a_round_trip_through_its_grpc_code() {
        use ErrorKind::*;
        for kind in [
            InvalidArgument,
            NotFound,
            AlreadyExists,
            Unauthenticated,
            PermissionDenied,
            ResourceExhausted,
            Unavailable,
            Cancelled,
            TimedOut,
            Unsupported,
            Internal,
        ] {
            assert_eq!(ErrorKind::from_grpc_code(kind.grpc_code()), kind);
        }
    }

    #[test]
    fn statuses_carry_the_kind_and_the_message() {
        let status: tonic::Status = Error::not_found("table t does not exist").into();
        assert_eq!(status.code(), tonic::Code::NotFound);
        assert_eq!(status.message(), "table t does not exist");
    }
}
