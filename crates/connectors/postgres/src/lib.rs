//! PostgreSQL as a Flotilla source.
//!
//! ```text
//!  flotilla.toml [sources.pg] kind = "postgres" ──▶ PostgresSource ──▶ catalog "pg"
//!     url = "postgresql://user@host:5432/db"          │ schemas/tables/describe: pg_catalog
//!                                                     │ execute: prepare, then binary rows
//!                                                     ▼          decoded into Arrow builders
//!                                                 Pool of tokio-postgres connections
//! ```
//!
//! - `config`: [`PostgresConfig`], the keys of a `kind = "postgres"` table in flotilla.toml.
//! - [`source`]: discovery (schemas, tables, views, materialized views, partitioned and foreign
//!   tables; columns and `reltuples` row estimates on first use), identity (host:port, database,
//!   user — two sources with the same identity join inside PostgreSQL).
//! - [`dialect`]: the capability model for PostgreSQL.
//! - [`types`]: type mapping and binary-protocol decoding.
//! - `exec`: streaming execution with cancellation; `pool`: connections; `tls`: TLS over rustls
//!   (`sslmode` from the connection string, `tls_root_cert`).
//! - `write`: `INSERT INTO` / `CREATE TABLE … AS` through `COPY … FROM STDIN (FORMAT binary)`
//!   in one transaction.

mod config;
pub mod dialect;
mod exec;
mod pool;
pub mod source;
mod stats;
mod tls;
pub mod types;
mod write;

pub use config::PostgresConfig;
pub use dialect::PostgresDialect;
pub use flotilla_federation::UnsupportedTypes;
pub use source::{PostgresOptions, PostgresSource, check_url};
pub use types::NumericMapping;
