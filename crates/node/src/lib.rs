//! The Flotilla node: configuration, session wiring, and the commands of the `flotilla` binary.
//!
//! ```text
//!  flotilla.toml ──▶ config::Config ──▶ context::build_context ──▶ DataFusion SessionContext
//!                                          │  one catalog per source (config/sources.rs):
//!                                          │    sqlite, postgres, mysql, influxdb, flightsql
//!                                          │      → flotilla-connectors-<kind>
//!                                          │    parquet / csv → DataFusion listing tables
//!                                          ▼
//!                 run::run_sql (CLI `sql`, REPL, `demo`) ──▶ output::Printer
//!                 serve::serve (CLI `serve`) ──▶ flotilla-flightsql, one session per client
//!                                                └─▶ http: /metrics, /healthz, /readyz,
//!                                                    the web console (console.rs)
//! ```
//!
//! The binary (`crates/flotilla/src/main.rs`) is a thin layer of argument parsing over these
//! modules and the benchmarks of `flotilla-bench`; the `demo` and `datagen` modules hold the two
//! commands that create data.

pub mod config;
mod console;
pub mod context;
pub mod datagen;
pub mod demo;
pub mod files;
pub mod http;
pub mod logs;
pub mod output;
pub mod progress;
pub mod repl;
pub mod run;
pub mod serve;

pub use config::{Config, SourceConfig};
pub use context::build_context;
