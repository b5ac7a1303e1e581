//! SQLite source for Flotilla.
//!
//! A [`SqliteSource`] opens one SQLite database file read-only, discovers its tables and views
//! with their declared column types, and exposes them to DataFusion as a catalog:
//!
//! ```text
//!  flotilla.toml [sources.shop]  ──▶  SqliteSource  ──▶  catalog "shop"
//!                                                         └─ schema "main"    (SQLite's own name)
//!                                                             ├─ table orders  ──▶ SqliteTable
//!                                                             └─ ...
//! ```
//!
//! A query against a table runs as one SQL statement in SQLite: the projected columns, the
//! filters that [`filter`] can translate exactly, and the limit. The statement runs on a
//! blocking thread with a connection from a small [`pool`]; rows are decoded into Arrow batches
//! of `datafusion.execution.batch_size` rows and streamed through a bounded channel, so memory
//! stays bounded whatever the result size ([`exec`]). Dropping the stream interrupts the
//! statement.
//!
//! Declared types map to Arrow types as documented in [`types`]; a value that does not fit its
//! declared type is an execution error naming the column.
//!
//! This is the table-provider stage of the connector. The federation engine (see
//! `ARCHITECTURE.md`) will push whole sub-plans (joins, aggregates) into SQLite through the
//! `Source` contract; until then only projections, filters and limits are pushed.

pub mod exec;
pub mod filter;
pub mod pool;
mod table;
pub mod types;

pub use table::{SqliteSource, SqliteTable};
