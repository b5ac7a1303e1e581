//! The Flight SQL server, driven by the Rust Flight SQL client over real TCP connections.
//! (Python ADBC and pyarrow clients are driven from the `flotilla` crate's tests, against the
//! `flotilla serve` binary.)

mod common;
mod limits;
mod metadata;
mod queries;
mod robustness;
mod sessions;
mod statements;
