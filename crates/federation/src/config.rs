//! Session options of the federation engine: `flotilla.federation.*`.
//!
//! DataFusion routes `SET <prefix>.<key> = <value>` to the extension registered under the first
//! word of the key, so this extension owns the whole `flotilla` prefix and answers to
//! `federation.pushdown` and `federation.join_key_pushdown`.

use datafusion::common::{Result, plan_err};
use datafusion::config::{ConfigEntry, ConfigExtension, ExtensionOptions};
use std::any::Any;

/// `flotilla.*` session options.
#[derive(Debug, Clone, PartialEq)]
pub struct FederationConfig {
    /// `flotilla.federation.pushdown`: push sub-plans down to the sources. `false` reads every
    /// remote table whole and leaves all the work to DataFusion (for comparison and debugging).
    pub pushdown: bool,
    /// `flotilla.federation.join_key_pushdown`: when a hash join has built its (small) side, send
    /// its join keys to the other side's database as `key IN (…)` and a key range, added to
    /// that side's SQL. The keys come from DataFusion's join dynamic filter, so its bounds
    /// apply: above `datafusion.optimizer.hash_join_inlist_pushdown_max_distinct_values`
    /// distinct keys only the range is sent.
    pub join_key_pushdown: bool,
    /// `flotilla.federation.partition_rows`: a scan of a remote table estimated at more rows
    /// than this, with an integer leading primary-key column, is read as several key ranges in
    /// parallel — one per this many rows, up to `datafusion.execution.target_partitions`. 0
    /// never splits.
    pub partition_rows: usize,
}

impl Default for FederationConfig {
    fn default() -> Self {
        Self {
            pushdown: true,
            join_key_pushdown: true,
            partition_rows: 500_000,
        }
    }
}

const PUSHDOWN_KEY: &str = "federation.pushdown";
const JOIN_KEY_PUSHDOWN_KEY: &str = "federation.join_key_pushdown";
const PARTITION_ROWS_KEY: &str = "federation.partition_rows";

fn boolean(key: &str, value: &str) -> Result<bool> {
    flotilla_common::options::boolean(&format!("flotilla.{key}"), value)
}

impl ExtensionOptions for FederationConfig {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            PUSHDOWN_KEY => self.pushdown = boolean(key, value)?,
            JOIN_KEY_PUSHDOWN_KEY => self.join_key_pushdown = boolean(key, value)?,
            PARTITION_ROWS_KEY => {
                self.partition_rows = flotilla_common::options::count(
                    &format!("flotilla.{key}"),
                    value,
                    "a row count (0 to never split)",
                )?;
            }
            _ => {
                return plan_err!(
                    "unknown option 'flotilla.{key}' (known: flotilla.{PUSHDOWN_KEY}, \
                     flotilla.{JOIN_KEY_PUSHDOWN_KEY}, flotilla.{PARTITION_ROWS_KEY})"
                );
            }
        }
        Ok(())
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        vec![
            ConfigEntry {
                key: format!("flotilla.{PUSHDOWN_KEY}"),
                value: Some(self.pushdown.to_string()),
                description: "Push sub-plans down to the sources; false reads remote tables whole.",
            },
            ConfigEntry {
                key: format!("flotilla.{JOIN_KEY_PUSHDOWN_KEY}"),
                value: Some(self.join_key_pushdown.to_string()),
                description: "Send the keys of a hash join's built side to the other side's \
                              database as key IN (...) and a key range.",
            },
            ConfigEntry {
                key: format!("flotilla.{PARTITION_ROWS_KEY}"),
                value: Some(self.partition_rows.to_string()),
                description: "Read a big remote table as key ranges in parallel, one per this \
                              many rows (0: never).",
            },
        ]
    }
}

impl ConfigExtension for FederationConfig {
    const PREFIX: &'static str = "flotilla";
}
