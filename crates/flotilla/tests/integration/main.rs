//! Integration tests of the `flotilla` crate and binary.

mod cli;
mod common;
mod datagen;
mod distributed;
mod federation;
mod flightsql;
mod influxdb;
mod mixed;
mod netns;
mod operations;
mod pgwire;
mod statistics;
