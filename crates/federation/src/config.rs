//! Session options of the federation engine: `flotilla.federation.*`.
//!
//! A section of the `flotilla.*` options ([`flotilla_common::options::FlotillaOptions`]): it
//! answers to `federation.pushdown`, `federation.join_key_pushdown`,
//! `federation.partition_rows` and `federation.learn_costs`.

use datafusion::common::{Result, plan_err};
use datafusion::config::{ConfigEntry, ExtensionOptions};
use datafusion::prelude::SessionConfig;
use std::any::Any;
use std::fmt;
use std::str::FromStr;

/// `flotilla.federation.pushdown`: how much of a query goes into its databases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pushdown {
    /// Every sub-plan a database can run whole goes to it (the largest possible).
    All,
    /// Per sub-plan, whichever is estimated faster: running it in the database, or reading its
    /// inputs and running it here (see the `cost` module). The default: at TPC-H SF 1 it is
    /// as fast as the better of `all` and `none` summed over the 22 queries, on SQLite (5×
    /// faster than `all`) and on PostgreSQL (where it pushes what `all` pushes).
    #[default]
    Cost,
    /// Only scans go to the databases (with their columns, exact filters and limit); joins,
    /// aggregates and the rest run here.
    None,
}

impl Pushdown {
    pub fn name(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Cost => "cost",
            Self::None => "none",
        }
    }
}

impl fmt::Display for Pushdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Pushdown {
    type Err = String;

    /// `all`, `cost` or `none`; `true` and `false` (what the option took before it had three
    /// values) mean `all` and `none`.
    fn from_str(value: &str) -> std::result::Result<Self, Self::Err> {
        match value.trim().to_ascii_lowercase().as_str() {
            "all" | "true" | "on" => Ok(Self::All),
            "cost" => Ok(Self::Cost),
            "none" | "false" | "off" => Ok(Self::None),
            other => Err(format!("takes all, cost or none, not '{other}'")),
        }
    }
}

/// `pushdown = "all" | "cost" | "none"` in a source's table of flotilla.toml.
impl<'de> serde::Deserialize<'de> for Pushdown {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// `max_connections` in a source's table of flotilla.toml: how many of its statements run at
/// once on a node, from 1 to 10,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxConnections(pub usize);

impl<'de> serde::Deserialize<'de> for MaxConnections {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(deserializer)?;
        usize::try_from(n)
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .map(MaxConnections)
            .ok_or_else(|| {
                serde::de::Error::custom("expected a number of connections from 1 to 10000")
            })
    }
}

/// `flotilla.federation.*` session options.
#[derive(Debug, Clone, PartialEq)]
pub struct FederationConfig {
    /// `flotilla.federation.pushdown`: `cost` (the default), `all` or `none` (see [`Pushdown`]).
    pub pushdown: Pushdown,
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
    /// `flotilla.federation.learn_costs`: weigh push against pull with what this node learned
    /// of each source's speed from its past statements (see [`crate::learn`]); off: with the
    /// source's measured figures alone.
    pub learn_costs: bool,
}

impl Default for FederationConfig {
    fn default() -> Self {
        Self {
            pushdown: Pushdown::default(),
            join_key_pushdown: true,
            partition_rows: 500_000,
            learn_costs: true,
        }
    }
}

impl FederationConfig {
    /// The default options, pushing `pushdown`.
    pub fn pushing(pushdown: Pushdown) -> Self {
        Self {
            pushdown,
            ..Self::default()
        }
    }

    /// `config` with these options as its `flotilla.federation.*` (unless it has some already).
    pub fn add_to(self, config: SessionConfig) -> SessionConfig {
        flotilla_common::options::with_section(config, self)
    }
}

const PUSHDOWN_KEY: &str = "federation.pushdown";
const JOIN_KEY_PUSHDOWN_KEY: &str = "federation.join_key_pushdown";
const PARTITION_ROWS_KEY: &str = "federation.partition_rows";
const LEARN_COSTS_KEY: &str = "federation.learn_costs";

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
            PUSHDOWN_KEY => match value.parse() {
                Ok(pushdown) => self.pushdown = pushdown,
                Err(e) => return plan_err!("flotilla.{key} {e}"),
            },
            JOIN_KEY_PUSHDOWN_KEY => self.join_key_pushdown = boolean(key, value)?,
            LEARN_COSTS_KEY => self.learn_costs = boolean(key, value)?,
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
                     flotilla.{JOIN_KEY_PUSHDOWN_KEY}, flotilla.{PARTITION_ROWS_KEY}, \
                     flotilla.{LEARN_COSTS_KEY})"
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
                description: "How much of a query goes into its databases: all (every sub-plan \
                              a database can run), cost (per sub-plan, whichever is estimated \
                              faster) or none (scans only).",
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
            ConfigEntry {
                key: format!("flotilla.{LEARN_COSTS_KEY}"),
                value: Some(self.learn_costs.to_string()),
                description: "Weigh push against pull with how fast each source ran this \
                              node's past statements (false: with its measured figures alone).",
            },
        ]
    }
}

/// `flotilla.federation.learn_costs` in a session with `options`.
pub(crate) fn learn_costs(options: &datafusion::config::ConfigOptions) -> bool {
    flotilla_common::options::section::<FederationConfig>(options).is_none_or(|c| c.learn_costs)
}

/// `flotilla.federation.pushdown` in a session with `options`.
pub(crate) fn pushdown(options: &datafusion::config::ConfigOptions) -> Pushdown {
    flotilla_common::options::section::<FederationConfig>(options)
        .map_or(Pushdown::default(), |c| c.pushdown)
}

impl Pushdown {
    /// The mode for a part of a query in `source` when the session's is `self`: a source's own
    /// `pushdown` (in flotilla.toml) refines `cost`; a session set to `all` or `none` overrides
    /// every source.
    pub fn for_source(self, source: Option<Pushdown>) -> Pushdown {
        match self {
            Pushdown::Cost => source.unwrap_or(Pushdown::Cost),
            session => session,
        }
    }
}
