//! Integration tests of the MySQL source against a real MariaDB server started by the test kit
//! (with Debian's default case-insensitive collation).

mod common;
mod failures;
mod joins;
mod tpch;
mod types;
mod writes;
