//! Integration tests of the PostgreSQL source against a real PostgreSQL server started by the
//! test kit.

mod common;
mod failures;
mod joins;
mod tpch;
mod types;
mod writes;
