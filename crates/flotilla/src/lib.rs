//! The Flotilla node: configuration, session wiring and the `flotilla` command line.
//!
//! ```text
//!  flotilla.toml ──▶ config::Config ──▶ context::build_context ──▶ DataFusion SessionContext
//!                                          │  one catalog per source:
//!                                          │    sqlite  → flotilla-connectors-sqlite
//!                                          │    parquet / csv → DataFusion listing tables
//!                                          ▼
//!                 run::run_sql (CLI `sql`, REPL, `demo`) ──▶ output::Printer
//!                 serve::serve (CLI `serve`) ──▶ flotilla-flightsql, one session per client
//!                                                └─▶ http: /metrics, /healthz, /readyz,
//!                                                    the web console (console.rs)
//! ```
//!
//! The binary (`src/main.rs`) is a thin layer of argument parsing over these modules; the
//! `demo` and `datagen` modules hold the two commands that create data.

pub mod bench;
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
