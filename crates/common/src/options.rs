//! Parsing the values of session options (`SET <key> = <value>`) the same way everywhere.

use datafusion::common::{Result, plan_err};

/// `true`/`on`/`1` or `false`/`off`/`0` (any case); the error names the option `key`.
pub fn boolean(key: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "1" => Ok(true),
        "false" | "off" | "0" => Ok(false),
        other => plan_err!("{key} takes true or false, not '{other}'"),
    }
}

/// A count such as `500000` or `500_000`; `what` says what it counts in the error.
pub fn count(key: &str, value: &str, what: &str) -> Result<usize> {
    match value.trim().replace('_', "").parse() {
        Ok(count) => Ok(count),
        Err(_) => plan_err!("{key} takes {what}, not '{value}'"),
    }
}
