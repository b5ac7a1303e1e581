//! Integration tests of the InfluxDB source against a real influxd started by the test kit.

mod scans;
mod writes;
