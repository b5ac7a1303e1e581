//! MySQL, MariaDB and TiDB as a Flotilla source.
//!
//! ```text
//!  flotilla.toml [sources.my] kind = "mysql" ──▶ MysqlSource ──▶ catalog "my"
//!     url = "mysql://user:pw@host:3306/db"        │ schemas/tables/describe: information_schema
//!                                                 │ execute: prepared statement, binary rows
//!                                                 ▼          decoded into Arrow builders
//!                                             mysql_async pool (sessions: UTC, strict quoting)
//! ```
//!
//! - `config`: [`MysqlConfig`], the keys of a `kind = "mysql"` table in flotilla.toml.
//! - [`source`]: discovery, identity (host:port, database, user), the flavor (MySQL, MariaDB or
//!   TiDB, detected from `VERSION()` on first contact unless configured).
//! - [`dialect`]: the capability model; text is compared byte-wise whatever the column's
//!   collation (MySQL's default collations ignore case and trailing spaces, DataFusion does not).
//! - [`types`]: type mapping and decoding. `exec`: streaming with `KILL QUERY` on drop.
//! - `pool`: connections within a timeout, driver errors classified by the server's code.
//! - `write`: `INSERT INTO` / `CREATE TABLE … AS` as batched multi-row prepared `INSERT`s in one
//!   transaction (a created table is dropped again if the insert fails).

mod config;
pub mod dialect;
mod exec;
mod pool;
pub mod source;
pub mod types;
mod write;

pub use config::MysqlConfig;
pub use dialect::{Flavor, MysqlDialect};
pub use flotilla_federation::UnsupportedTypes;
pub use source::{MysqlOptions, MysqlSource, check_url};
pub use types::ZeroDates;
