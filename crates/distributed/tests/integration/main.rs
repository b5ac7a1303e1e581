//! Integration tests of flotilla-distributed: workers on loopback TCP (port 0).

mod explain;
mod lifecycle;
mod results;
mod session;
mod tpch;
mod worker;
