//! The Arrow Flight SQL service of a Flotilla node.
//!
//! Any Flight SQL client (ADBC, JDBC, pyarrow, the Rust client) connects to a node and browses
//! its catalogs, runs queries and updates, and uses prepared statements. The pieces:
//!
//! - [`session`]: a client's session ([`SessionProvider`] makes its DataFusion session;
//!   [`SharedCatalogs`] shares the node's sources between sessions, giving each its own options
//!   and temporary tables), credentials and the bearer token.
//! - `layer`: admits every call into a session before a handler runs, and hands new tokens back.
//! - `clean`: the Flight service clients reach (arrow-flight's dispatch, with readable errors
//!   for undecodable requests).
//! - `service`: the Flight SQL commands. A query is planned once, in `GetFlightInfo`; its ticket
//!   names the plan, and `DoGet` streams it.
//! - `statements`: what the commands do with a statement — plan it for its tickets, run a change
//!   under the node's limits, answer `GetSchema`/`PollFlightInfo`, read bound parameters.
//! - `metered`: a query's stream counted in the node's metrics (outcome, duration, rows, bytes);
//!   `layer` counts calls and `session` open sessions.
//! - `registry`: tickets waiting for `DoGet`, queries streaming (cancellable), prepared statements.
//! - `metadata`: catalogs, schemas, tables, SqlInfo, XDBC types.
//! - `ingest`: bulk ingestion (`adbc_ingest`) into session tables or writable catalogs.
//! - `options`: Flight session options, mapped to the session's DataFusion configuration.
//! - [`password`]: users' passwords, plain or PBKDF2-hashed.
//! - [`FlightSqlServer`]: runs it all on a TCP listener with graceful shutdown.
//!
//! This crate knows nothing of databases or distribution: it serves whatever catalogs the
//! sessions it is given have.

mod clean;
pub mod fallback;
mod ingest;
mod layer;
mod limits;
mod metadata;
mod metered;
mod options;
pub mod password;
mod registry;
mod server;
mod service;
mod serving;
pub mod session;
mod statements;

pub use fallback::FlightFallback;
pub use limits::{Admission, QueryAdmission, Turn};
pub use password::Password;
pub use registry::{RegistryLimits, positional_parameters};
pub use server::FlightSqlServer;
pub use serving::{FlightOptions, with_service_options};
pub use session::{SessionLimits, SessionProvider, SharedCatalogs, User};
