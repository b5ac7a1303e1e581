//! Test kit for Flotilla: real database servers, TPC-H data and result comparison.
//!
//! Used only as a dev-dependency. Everything here talks to real things:
//!
//! - [`postgres()`], [`mariadb()`] and [`influxdb()`] start a throwaway PostgreSQL / MariaDB /
//!   InfluxDB 1.x server from the installed Debian binaries, on 127.0.0.1 with a port chosen at
//!   run time and data in a temp dir, once per test binary (the first test that asks starts it). A missing binary fails the
//!   test with a message naming `scripts/setup.sh`; nothing is skipped.
//! - The servers, and every temp dir the kit makes, are removed when the test binary exits —
//!   also after a panic or a kill — by a small [`reaper`] process that outlives the test binary
//!   just long enough to clean up.
//! - [`Postgres::load_tpch`] and [`MariaDb::load_tpch`] load TPC-H at a scale with each server's
//!   bulk path (`COPY` and `LOAD DATA LOCAL INFILE`), once per scale.
//! - [`compare`] checks two results row for row; [`plans`] holds the TPC-H references and plan
//!   checks the connector tests share.
//! - [`clients::python`] is the Python with the ADBC and pyarrow Flight SQL clients.
//! - [`writes`] holds the write checks (copies, type round-trips, atomicity) every writable
//!   connector runs.
//! - [`tls::test_pki`] makes a CA and a server certificate for TLS tests.
//! - [`influx_data`] generates time series for InfluxDB (line protocol) with an Arrow twin.
//! - [`fuzz`] makes seeded random tables and queries for differential tests.

pub mod clients;
pub mod compare;
pub mod fuzz;
pub mod influx_data;
mod influxdb;
mod mariadb;
pub mod netns;
pub mod plans;
mod postgres;
pub mod reaper;
mod server;
pub mod tls;
mod tpch;
pub mod writes;

pub use compare::{
    Decimals, assert_columns, assert_same_rows, assert_same_rows_with, compare_batches,
    compare_batches_with, query_is_ordered,
};
pub use influxdb::{INFLUX_ADMIN, InfluxDb, influxdb};
pub use mariadb::{MariaDb, mariadb, try_mariadb};
pub use postgres::{Postgres, postgres, try_postgres};
pub use tpch::{TPCH_SF001_ROWS, tpch_csv_dir, tpch_schema_name};

/// What to run to install the server binaries the kit needs.
pub const SETUP_HINT: &str =
    "run `scripts/setup.sh` (as root) to install PostgreSQL, MariaDB and InfluxDB";
