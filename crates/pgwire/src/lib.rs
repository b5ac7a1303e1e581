//! The PostgreSQL wire protocol of a Flotilla node, for the tools that speak it (psql, psycopg,
//! JDBC, DBeaver, Grafana …): the same sessions and sources as Flight SQL.
//!
//! ```text
//!  client ──TCP──▶ pgwire (framing, startup, extended-protocol state)
//!                    ├ TLS when the node has a certificate (`[server] tls_cert`)
//!                    ├ login.rs: the user's password checked against [[server.users]]
//!                    │           (SCRAM-SHA-256, -PLUS over TLS), then a session from the
//!                    │           node's SessionProvider, kept with the connection
//!                    ├ limits.rs: cancel requests, the statement timeout, the memory limit
//!                    ├ catalog.rs: pg_catalog (built once per node) in every session's
//!                    │             default catalog, for psql's \d commands and tools;
//!                    │             information_schema.rs: information_schema.columns with
//!                    │             PostgreSQL's type names
//!                    └ query.rs: simple query  — each statement planned and run in turn
//!                                extended query — Parse plans once (parameter types inferred),
//!                                Bind fills `$n` (params.rs), Execute runs and streams rows
//!                    rows ──▶ arrow-pg encodes each Arrow column as PostgreSQL text or binary
//!                             (dates and decimals sent as text formatted a column at a time
//!                             first, query.rs)
//! ```
//!
//! A statement runs through [`flotilla_federation::execute_logical_plan`], so `CREATE TABLE … AS`
//! into a source reaches its database, as over Flight SQL. Errors carry a SQLSTATE derived from
//! the error's kind (`errors.rs`); a bad message ends that connection only.
//!
//! A statement stops on the client's cancel request and at the session's
//! `flotilla.statement_timeout`, and holds at most `flotilla.query_memory_limit` (`limits.rs`).
//!
//! A statement that runs a query takes a turn of the node's `[server] max_concurrent_queries`
//! (the same turns as Flight SQL's, [`PgServer::with_admission`]), waiting in its queue.

mod catalog;
mod errors;
mod information_schema;
mod limits;
mod login;
mod params;
mod query;
mod settings;

use flotilla_common::Result;
use flotilla_flightsql::{SessionProvider, User};
use limits::Cancels;
use login::Login;
use pgwire::api::PgWireServerHandlers;
use query::Queries;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Serves the PostgreSQL protocol over a node's sessions.
pub struct PgServer {
    login: Login,
    cancels: Arc<Cancels>,
    tls: Option<pgwire::tokio::TlsAcceptor>,
}

struct Handlers {
    login: Arc<Login>,
    queries: Arc<Queries>,
    cancels: Arc<Cancels>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl pgwire::api::query::SimpleQueryHandler> {
        Arc::clone(&self.queries)
    }

    fn extended_query_handler(&self) -> Arc<impl pgwire::api::query::ExtendedQueryHandler> {
        Arc::clone(&self.queries)
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        Arc::clone(&self.login)
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        Arc::clone(&self.cancels)
    }
}

impl PgServer {
    /// A server whose connections get sessions from `sessions`; with `users`, a connection must
    /// log in as one of them (none: anyone may connect, as over Flight SQL).
    pub fn new(sessions: Arc<dyn SessionProvider>, users: Vec<User>) -> Self {
        let cancels = Arc::new(Cancels::default());
        Self {
            login: Login::new(sessions, users, Arc::clone(&cancels)),
            cancels,
            tls: None,
        }
    }

    /// Takes turns for queries from `admission`, the node's (shared with its Flight SQL port);
    /// without, a port of its own has no limit.
    pub fn with_admission(mut self, admission: Arc<flotilla_flightsql::Admission>) -> Self {
        self.login.admission = admission;
        self
    }

    /// Serves TLS (clients' `sslmode=require` and up) with the certificate chain and private
    /// key in `chain` and `key` (PEM), and offers SCRAM-SHA-256-PLUS bound to the chain. A
    /// client that does not ask for TLS is still served in the clear, as PostgreSQL does
    /// without `hostssl` rules.
    ///
    /// # Errors
    /// When the PEM holds no certificate or no usable private key.
    pub fn with_tls(mut self, chain: &[u8], key: &[u8]) -> Result<Self> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            flotilla_common::Error::invalid(format!("server TLS for pg_listen: {what}: {e}"))
        };
        let certificates = CertificateDer::pem_slice_iter(chain)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| bad("the certificate file", &e))?;
        if certificates.is_empty() {
            return Err(bad("the certificate file", &"no certificate in it"));
        }
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| bad("the key file", &e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad("TLS versions", &e))?
            .with_no_client_auth()
            .with_single_cert(certificates, key)
            .map_err(|e| bad("the certificate and key", &e))?;
        // libpq 17's direct TLS (`sslnegotiation=direct`) requires the protocol named.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        self.tls = Some(pgwire::tokio::TlsAcceptor::from(Arc::new(config)));
        self.login.set_certificate(chain.to_vec());
        Ok(self)
    }

    /// Serves connections from `listener` until `shutdown` completes; each connection runs on
    /// its own task, so a slow or broken client holds up no other.
    ///
    /// # Errors
    /// None today; the signature leaves room for failures of the port itself.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<()> {
        let handlers = Arc::new(Handlers {
            login: Arc::new(self.login),
            queries: Arc::new(Queries),
            cancels: self.cancels,
        });
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                accepted = listener.accept() => {
                    let Ok((socket, _)) = accepted else {
                        // Out of file descriptors or the like: wait, then accept again.
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    };
                    let handlers = Arc::clone(&handlers);
                    let tls = self.tls.clone();
                    tokio::spawn(async move {
                        // A connection's failure (bad bytes, a client gone) is its own.
                        let _ = pgwire::tokio::process_socket(socket, tls, handlers).await;
                    });
                }
            }
        }
    }
}
