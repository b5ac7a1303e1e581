//! Integration tests of flotilla-distributed: workers on loopback TCP (port 0).

mod tpch;
mod worker;
