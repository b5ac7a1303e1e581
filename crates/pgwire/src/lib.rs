//! The PostgreSQL wire protocol of a Flotilla node, for the tools that speak it (psql, psycopg,
//! JDBC, DBeaver, Grafana …): the same sessions and sources as Flight SQL.
//!
//! ```text
//!  client ──TCP──▶ pgwire (framing, startup, extended-protocol state)
//!                    ├ login.rs: the user's password checked against [[server.users]]
//!                    │           (cleartext password message), then a session from the
//!                    │           node's SessionProvider, kept with the connection
//!                    ├ limits.rs: cancel requests, the statement timeout, the memory limit
//!                    ├ catalog.rs: pg_catalog (built once per node) in every session's
//!                    │             default catalog, for psql's \d commands and tools
//!                    └ query.rs: simple query  — each statement planned and run in turn
//!                                extended query — Parse plans once (parameter types inferred),
//!                                Bind fills `$n` (params.rs), Execute runs and streams rows
//!                    rows ──▶ arrow-pg encodes each Arrow column as PostgreSQL text or binary
//! ```
//!
//! A statement runs through [`flotilla_federation::execute_logical_plan`], so `CREATE TABLE … AS`
//! into a source reaches its database, as over Flight SQL. Errors carry a SQLSTATE derived from
//! the error's kind (`errors.rs`); a bad message ends that connection only.
//!
//! A statement stops on the client's cancel request and at the session's
//! `flotilla.statement_timeout`, and holds at most `flotilla.query_memory_limit` (`limits.rs`).
//!
//! Not yet: TLS, SCRAM-SHA-256, and the node's `max_concurrent_queries` on this port.

mod catalog;
mod errors;
mod limits;
mod login;
mod params;
mod query;

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
    handlers: Arc<Handlers>,
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
            handlers: Arc::new(Handlers {
                login: Arc::new(Login::new(sessions, users, Arc::clone(&cancels))),
                queries: Arc::new(Queries),
                cancels,
            }),
        }
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
                    let handlers = Arc::clone(&self.handlers);
                    tokio::spawn(async move {
                        // A connection's failure (bad bytes, a client gone) is its own.
                        let _ = pgwire::tokio::process_socket(socket, None, handlers).await;
                    });
                }
            }
        }
    }
}
