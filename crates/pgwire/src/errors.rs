//! Errors as PostgreSQL reports them: an `ERROR` with a SQLSTATE code and the message.

use datafusion::error::DataFusionError;
use flotilla_common::ErrorKind;
use pgwire::error::{ErrorInfo, PgWireError};

/// An `ERROR` with SQLSTATE `code`.
pub(crate) fn user_error(code: &str, message: &str) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_string(),
        code.to_string(),
        message.to_string(),
    )))
}

/// The SQLSTATE of an error of `kind` (PostgreSQL's appendix A).
pub(crate) fn sqlstate(kind: ErrorKind) -> &'static str {
    match kind {
        // syntax_error_or_access_rule_violation
        ErrorKind::InvalidArgument => "42000",
        // undefined_object
        ErrorKind::NotFound => "42704",
        // duplicate_object
        ErrorKind::AlreadyExists => "42710",
        // invalid_password
        ErrorKind::Unauthenticated => "28P01",
        // insufficient_privilege
        ErrorKind::PermissionDenied => "42501",
        // insufficient_resources
        ErrorKind::ResourceExhausted => "53000",
        // connection_exception (a database or worker could not be reached)
        ErrorKind::Unavailable => "08000",
        // query_canceled
        ErrorKind::Cancelled => "57014",
        // query_canceled (PostgreSQL reports a statement timeout so too)
        ErrorKind::TimedOut => "57014",
        // feature_not_supported
        ErrorKind::Unsupported => "0A000",
        // internal_error
        ErrorKind::Internal => "XX000",
    }
}

/// A DataFusion error (planning or running a statement) for the client.
pub(crate) fn query_error(e: DataFusionError) -> PgWireError {
    let kind = flotilla_common::error::kind_of(&e);
    let message = flotilla_common::Error::from(e).to_string();
    user_error(sqlstate(kind), &message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_table_is_undefined_object() {
        let e = DataFusionError::Plan("table 'x.y.z' not found".into());
        let PgWireError::UserError(info) = query_error(e) else {
            panic!("not a user error");
        };
        assert_eq!(info.code, "42704");
        assert!(info.message.contains("not found"), "{}", info.message);
    }
}
