//! A small pool of PostgreSQL connections.
//!
//! Each running statement holds one connection; finished ones come back and wait idle. A
//! connection the server closed (restart, idle timeout) is noticed when it is taken and replaced
//! by a new one, so the pool recovers from a restarted server by itself.

use crate::tls::RustlsConnect;
use flotilla_common::{Error, ErrorKind};
use std::sync::Mutex;
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::{CancelToken, Client, Config, NoTls};

/// How many idle connections are kept.
const MAX_IDLE: usize = 8;

/// How long connecting may take when the configuration does not say.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub(crate) struct Pool {
    config: Config,
    /// Set when connections use TLS (see [`crate::tls`]).
    tls: Option<RustlsConnect>,
    idle: Mutex<Vec<Client>>,
}

impl Pool {
    pub(crate) fn new(mut config: Config, tls: Option<RustlsConnect>) -> Self {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("flotilla");
        }
        Pool {
            config,
            tls,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// An open connection: an idle one, or a new one.
    pub(crate) async fn get(&self) -> Result<Client, Error> {
        loop {
            let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match idle {
                Some(client) if !client.is_closed() => return Ok(client),
                Some(_) => continue,
                None => break,
            }
        }
        // The connection does the socket I/O; it ends when the client is dropped.
        let client = match &self.tls {
            Some(tls) => {
                let (client, connection) = self
                    .config
                    .connect(tls.clone())
                    .await
                    .map_err(|e| error(&e, "cannot connect"))?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                client
            }
            None => {
                let (client, connection) = self
                    .config
                    .connect(NoTls)
                    .await
                    .map_err(|e| error(&e, "cannot connect"))?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                client
            }
        };
        Ok(client)
    }

    /// Asks the server to stop the statement `token` belongs to (over a new connection, with
    /// the pool's TLS settings).
    pub(crate) async fn cancel(&self, token: CancelToken) {
        let _ = match &self.tls {
            Some(tls) => token.cancel_query(tls.clone()).await,
            None => token.cancel_query(NoTls).await,
        };
    }

    /// Returns a connection whose statement finished.
    pub(crate) fn put(&self, client: Client) {
        if client.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(client);
        }
    }

    /// How many connections wait idle.
    pub(crate) fn idle_count(&self) -> usize {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// A PostgreSQL error as a Flotilla error: the server's message and SQLSTATE, classified.
pub(crate) fn error(e: &tokio_postgres::Error, context: &str) -> Error {
    let Some(db) = e.as_db_error() else {
        // Not from the server: the connection failed or broke.
        let detail = match std::error::Error::source(e) {
            Some(inner) => format!("{e}: {inner}"),
            None => e.to_string(),
        };
        return Error::new(ErrorKind::Unavailable, format!("{context}: {detail}"));
    };
    let code = db.code();
    let kind = if *code == SqlState::UNDEFINED_TABLE
        || *code == SqlState::UNDEFINED_COLUMN
        || *code == SqlState::INVALID_SCHEMA_NAME
        || *code == SqlState::INVALID_CATALOG_NAME
    {
        ErrorKind::NotFound
    } else if *code == SqlState::INVALID_PASSWORD
        || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
    {
        ErrorKind::Unauthenticated
    } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
        ErrorKind::PermissionDenied
    } else if *code == SqlState::QUERY_CANCELED {
        ErrorKind::Cancelled
    } else if code.code().starts_with("08") || code.code().starts_with("57") {
        ErrorKind::Unavailable
    } else {
        ErrorKind::InvalidArgument
    };
    let mut message = format!("{context}: {} (SQLSTATE {})", db.message(), code.code());
    if let Some(detail) = db.detail() {
        message.push_str(&format!("; {detail}"));
    }
    Error::new(kind, message)
}
