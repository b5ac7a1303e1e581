//! Remote Arrow Flight SQL endpoints as a Flotilla source: another Flotilla node, InfluxDB 3,
//! Dremio, or any server that speaks Flight SQL.
//!
//! - `config`: [`FlightSqlConfig`], the keys of a `kind = "flightsql"` table in flotilla.toml.
//! - `source`: [`FlightSqlSource`] — a tonic channel (HTTP/2, one connection multiplexing every
//!   call), discovery through GetDbSchemas/GetTables (Arrow schemas included), statements run
//!   with `GetFlightInfo` + `DoGet`, every endpoint of a result read at once.
//! - `dialect`: [`FlightSqlDialect`] — the SQL of DataFusion-based servers. What is pushed
//!   depends on the endpoint's GetSqlInfo: a Flotilla node takes every DataFusion function;
//!   another server only the functions it lists.
//!
//! Results arrive as Arrow, so nothing is decoded: batches are only renamed (and cast where the
//! remote chose another Arrow type for the same values) to the schema the plan expects.

mod config;
mod dialect;
mod source;

pub use config::FlightSqlConfig;
pub use dialect::FlightSqlDialect;
pub use source::{FlightSqlOptions, FlightSqlSource, check_url};
