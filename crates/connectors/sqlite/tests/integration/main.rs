//! Integration tests of the SQLite source against real SQLite files.

mod constructs;
mod discovery;
mod errors;
mod scan;
mod writer_fuzz;
