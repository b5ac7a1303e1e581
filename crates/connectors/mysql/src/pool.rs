//! Connections from the source's pool, and driver errors as Flotilla errors (shared by
//! discovery, reading and writing).

use flotilla_common::{Error, ErrorKind, Result};
use mysql_async::{Conn, Pool};
use std::time::Duration;

/// How long getting a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) async fn get_connection(pool: &Pool) -> Result<Conn> {
    match tokio::time::timeout(CONNECT_TIMEOUT, pool.get_conn()).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(error(&e, "cannot connect")),
        Err(_) => Err(Error::new(
            ErrorKind::Unavailable,
            format!("cannot connect: no connection within {CONNECT_TIMEOUT:?}"),
        )),
    }
}

/// A driver error as a Flotilla error, classified by the server's error code.
pub(crate) fn error(e: &mysql_async::Error, context: &str) -> Error {
    let kind = match e {
        mysql_async::Error::Server(server) => match server.code {
            1045 | 1698 => ErrorKind::Unauthenticated,
            1044 | 1142 | 1143 => ErrorKind::PermissionDenied,
            1049 | 1146 | 1054 => ErrorKind::NotFound,
            1317 => ErrorKind::Cancelled,
            _ => ErrorKind::InvalidArgument,
        },
        _ => ErrorKind::Unavailable,
    };
    let message = match e {
        mysql_async::Error::Server(server) => {
            format!(
                "{} (error {}, SQLSTATE {})",
                server.message, server.code, server.state
            )
        }
        other => other.to_string(),
    };
    Error::new(kind, format!("{context}: {message}"))
}
