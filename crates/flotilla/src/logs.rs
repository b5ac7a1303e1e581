//! The node's log: `tracing` events on standard error, as text lines for people or as one JSON
//! object per line for log collectors (`flotilla serve --log-format json`).
//!
//! What is logged, by target (set levels with `FLOTILLA_LOG`, e.g.
//! `FLOTILLA_LOG=info,flotilla::statement=debug`; default `info`):
//!
//! | target | level | event |
//! | --- | --- | --- |
//! | `flotilla::serve` | info | where the node serves, shutting down |
//! | `flotilla::query` | info | a client's query ended: its id, user, outcome, rows, bytes, seconds |
//! | `flotilla::task` | info | a stage task ended on this node: the distributed query id, stage, task, rows, seconds |
//! | `flotilla::statement` | debug | a database statement ended: source, rows, seconds, its SQL |
//!
//! A distributed query's id is in the `flotilla::task` events of every node it ran on, so the
//! lines of one query can be found on each. Events sit in spans (`query`, `task`, `statement`:
//! see docs/operations.md), which JSON lines carry as `span` and `spans`.

use clap::ValueEnum;
use flotilla_common::{Error, Result};
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One line per event: time, level, target, message and fields.
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message` and the fields.
    Json,
}

/// The environment variable holding the log levels (`tracing` directives).
pub const LEVELS_VARIABLE: &str = "FLOTILLA_LOG";

/// Sends this process's `tracing` events to standard error in `format`, at the levels of
/// `FLOTILLA_LOG` (default `info`).
///
/// # Errors
/// When `FLOTILLA_LOG` is not a list of level directives, or a logger is already set.
pub fn init(format: LogFormat) -> Result<()> {
    let filter = match std::env::var(LEVELS_VARIABLE) {
        Ok(levels) => EnvFilter::try_new(&levels).map_err(|e| {
            Error::invalid(format!(
                "{LEVELS_VARIABLE}='{levels}' is not a list of log levels \
                 (e.g. info,flotilla::statement=debug): {e}"
            ))
        })?,
        Err(_) => EnvFilter::new("info"),
    };
    let logger = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let set = match format {
        LogFormat::Text => logger.try_init(),
        LogFormat::Json => logger.json().flatten_event(true).try_init(),
    };
    set.map_err(|e| Error::invalid(format!("cannot set up the log: {e}")))
}
