//! Flotilla's benchmarks, run by `flotilla bench …`. Each runs Flotilla beside the baseline its
//! issue names, in the same run, and prints both with their ratio; none is part of the tests.
//!
//! | module | command | measures |
//! | --- | --- | --- |
//! | [`federation`] | `bench federation` | TPC-H over one database source: pushed, pulled, chosen by cost, and the database alone |
//! | [`tpch`] | `bench tpch` | TPC-H on one node and on a local cluster, with answers checked |
//! | [`flightsql`] | `bench flightsql` | Flight SQL and the PostgreSQL protocol: bulk rows/s, `SELECT 1` latency, against peers |
//! | [`influxdb`] | `bench federation --source influxdb` | an aggregate pushed to InfluxDB as InfluxQL, against InfluxDB itself and against no pushdown |
//!
//! `load` generates TPC-H data and loads it into PostgreSQL or MariaDB when a benchmark needs it.
//! The Python scripts beside the modules drive real clients (ADBC, psycopg) and are compiled in.

pub mod federation;
pub mod flightsql;
pub mod influxdb;
mod load;
pub mod tpch;

pub use federation::{BenchSource, federation};
