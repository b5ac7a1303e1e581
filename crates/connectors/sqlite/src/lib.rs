//! SQLite source for Flotilla.
//!
//! [`SqliteSource`] implements the federation engine's `Source` contract for one SQLite
//! database file, opened read-only:
//!
//! ```text
//!  flotilla.toml [sources.shop] ──▶ SqliteSource ──▶ catalog "shop" (flotilla_federation::catalog_of)
//!                                                       └─ schema "main" (SQLite's own name)
//!                                                           └─ table orders (FederatedTable)
//!  pushed sub-plan ──▶ SQL in the SqliteDialect ──▶ SqliteSource::execute ──▶ Arrow batches
//! ```
//!
//! - `config`: [`SqliteConfig`], the keys of a `kind = "sqlite"` table in flotilla.toml.
//! - [`dialect`]: what SQLite can run exactly as DataFusion would, and how to write it.
//! - [`types`]: declared types → Arrow types, and decoding of SQLite values.
//! - [`pool`]: read-only connections, one per running statement.
//! - `exec`: statements run on a blocking thread; rows are decoded into batches of
//!   `datafusion.execution.batch_size` rows and streamed through a channel of two batches, so
//!   memory stays bounded whatever the result size. Dropping the stream interrupts the
//!   statement.

mod config;
pub mod dialect;
mod exec;
pub mod pool;
mod source;
pub mod types;

pub use config::SqliteConfig;
pub use dialect::SqliteDialect;
pub use source::SqliteSource;
