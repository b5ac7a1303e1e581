//! Integration tests of flotilla-distributed: workers on loopback TCP (port 0).

mod explain;
mod failover;
mod fuzz;
mod lifecycle;
mod membership;
mod results;
mod session;
mod shapes;
mod tpch;
mod worker;
