//! Integration tests of the SQLite source against real SQLite files.

mod constructs;
mod errors;
mod scan;
