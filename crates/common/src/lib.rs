//! Shared vocabulary of the Flotilla crates.
//!
//! This crate sits at the bottom of the workspace graph (see `docs/architecture.md`): every other
//! Flotilla crate may use it, it uses none of them. It owns:
//!
//! - [`Error`] and [`ErrorKind`]: what went wrong, classified so that every edge of the system
//!   (CLI exit codes, gRPC status codes, messages to clients) can react to the *kind* of failure
//!   instead of parsing text. The mapping to gRPC codes lives here, in one exhaustive `match`.
//! - [`metrics`]: the node's Prometheus metrics, written by the crates that do the work.
//! - [`source_kind`]: what a connector crate provides so `flotilla.toml` can name its sources.

pub mod activity;
pub mod error;
pub mod flight;
pub mod grpc;
pub mod memory;
pub mod metrics;
pub mod options;
pub mod source_kind;
pub mod spans;

pub use error::{Error, ErrorKind, Result};
