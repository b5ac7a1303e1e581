//! The `distributed.*` session options, in one place: what they mean, their defaults, and how
//! `SET` parses them. Coordinators read them when planning; workers get them with every task.

use datafusion::common::{Result, plan_err};
use datafusion::config::{ConfigEntry, ConfigExtension, ExtensionOptions};
use std::any::Any;

/// `distributed.*` session options.
#[derive(Debug, Clone, PartialEq)]
pub struct DistributedOptions {
    /// `distributed.enabled`: cut plans into stages run on the workers. `false` runs every
    /// query where it was planned.
    pub enabled: bool,
    /// `distributed.bytes_per_task`: a leaf stage gets one task per this many bytes of input
    /// (by the leaves' statistics), up to the number of workers.
    pub bytes_per_task: usize,
    /// `distributed.min_bytes`: a query whose leaves hold fewer bytes runs where it was planned.
    pub min_bytes: usize,
    /// `distributed.broadcast_bytes`: in a query that distributes, a hash join whose smaller
    /// side is estimated under this many bytes collects that side in every task (broadcast)
    /// instead of shuffling both sides. DataFusion's own threshold
    /// (`datafusion.optimizer.hash_join_single_partition_threshold`) applies when larger.
    pub broadcast_bytes: usize,
    /// `distributed.compression`: how exchanges compress Arrow IPC (`none`, `lz4`, `zstd`).
    pub compression: Compression,
    /// `distributed.results_from_workers`: a Flight SQL client reads the rows of a query whose
    /// last stage only gathers from the workers that compute them (one endpoint per task),
    /// not through the node it asked. `false` when clients cannot reach the workers.
    pub results_from_workers: bool,
    /// `distributed.retry`: what happens when a worker dies during a query (`none`: the query
    /// fails, naming it; `query`: it runs again on the live nodes, see [`Retry`]).
    pub retry: Retry,
    /// `distributed.max_attempts`: how many times a query runs at most (the first run
    /// included) when workers die under it.
    pub max_attempts: usize,
}

/// What a query does when a worker dies under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Retry {
    /// The query fails with an error naming the node.
    None,
    /// The query is planned again over the nodes still alive and runs again — as long as no
    /// row has left the node yet (after that the query fails: its caller has part of the rows).
    #[default]
    Query,
}

impl Retry {
    pub fn name(self) -> &'static str {
        match self {
            Retry::None => "none",
            Retry::Query => "query",
        }
    }
}

impl std::str::FromStr for Retry {
    type Err = datafusion::error::DataFusionError;

    fn from_str(value: &str) -> Result<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "none" | "off" | "false" => Ok(Retry::None),
            "query" | "on" | "true" => Ok(Retry::Query),
            other => plan_err!("distributed.retry must be none or query, not '{other}'"),
        }
    }
}

/// Compression of the Arrow IPC that stages send each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Plain IPC: least CPU; right when nodes share a machine or a fast network.
    #[default]
    None,
    /// LZ4 frames: cheap, about halves typical columns.
    Lz4,
    /// Zstandard: smaller than LZ4 for more CPU; for slow links.
    Zstd,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// The Arrow IPC compression it stands for.
    pub fn ipc(self) -> Option<arrow_ipc::CompressionType> {
        match self {
            Compression::None => None,
            Compression::Lz4 => Some(arrow_ipc::CompressionType::LZ4_FRAME),
            Compression::Zstd => Some(arrow_ipc::CompressionType::ZSTD),
        }
    }
}

impl std::str::FromStr for Compression {
    type Err = datafusion::error::DataFusionError;

    fn from_str(value: &str) -> Result<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "none" | "" => Ok(Compression::None),
            "lz4" | "lz4_frame" => Ok(Compression::Lz4),
            "zstd" => Ok(Compression::Zstd),
            other => plan_err!("distributed.compression must be none, lz4 or zstd, not '{other}'"),
        }
    }
}

impl Default for DistributedOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            bytes_per_task: 64 << 20,
            min_bytes: 16 << 20,
            broadcast_bytes: 128 << 20,
            compression: Compression::None,
            results_from_workers: true,
            retry: Retry::Query,
            max_attempts: 3,
        }
    }
}

const ENABLED: &str = "enabled";
const BYTES_PER_TASK: &str = "bytes_per_task";
const MIN_BYTES: &str = "min_bytes";
const BROADCAST_BYTES: &str = "broadcast_bytes";
pub(crate) const COMPRESSION: &str = "compression";
const RESULTS_FROM_WORKERS: &str = "results_from_workers";
const RETRY: &str = "retry";
const MAX_ATTEMPTS: &str = "max_attempts";

fn byte_count(key: &str, value: &str) -> Result<usize> {
    flotilla_common::options::count(&format!("distributed.{key}"), value, "a byte count")
}

impl ExtensionOptions for DistributedOptions {
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
            ENABLED => {
                self.enabled =
                    flotilla_common::options::boolean(&format!("distributed.{key}"), value)?;
            }
            BYTES_PER_TASK => self.bytes_per_task = byte_count(key, value)?.max(1),
            MIN_BYTES => self.min_bytes = byte_count(key, value)?,
            BROADCAST_BYTES => self.broadcast_bytes = byte_count(key, value)?,
            COMPRESSION => self.compression = value.parse()?,
            RESULTS_FROM_WORKERS => {
                self.results_from_workers =
                    flotilla_common::options::boolean(&format!("distributed.{key}"), value)?;
            }
            RETRY => self.retry = value.parse()?,
            MAX_ATTEMPTS => {
                self.max_attempts = flotilla_common::options::count(
                    &format!("distributed.{key}"),
                    value,
                    "a number of attempts",
                )?
                .max(1);
            }
            _ => {
                return plan_err!(
                    "unknown option 'distributed.{key}' (known: distributed.{ENABLED}, \
                     distributed.{BYTES_PER_TASK}, distributed.{MIN_BYTES}, \
                     distributed.{BROADCAST_BYTES}, distributed.{COMPRESSION}, \
                     distributed.{RESULTS_FROM_WORKERS}, distributed.{RETRY}, \
                     distributed.{MAX_ATTEMPTS})"
                );
            }
        }
        Ok(())
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        vec![
            ConfigEntry {
                key: format!("distributed.{ENABLED}"),
                value: Some(self.enabled.to_string()),
                description: "Cut plans into stages run on the workers.",
            },
            ConfigEntry {
                key: format!("distributed.{BYTES_PER_TASK}"),
                value: Some(self.bytes_per_task.to_string()),
                description: "One task per this many bytes of a stage's input, up to the \
                              number of workers.",
            },
            ConfigEntry {
                key: format!("distributed.{MIN_BYTES}"),
                value: Some(self.min_bytes.to_string()),
                description: "Queries reading fewer bytes run where they were planned.",
            },
            ConfigEntry {
                key: format!("distributed.{BROADCAST_BYTES}"),
                value: Some(self.broadcast_bytes.to_string()),
                description: "In distributed queries, hash joins collect (broadcast) a side \
                              estimated under this many bytes instead of shuffling both.",
            },
            ConfigEntry {
                key: format!("distributed.{COMPRESSION}"),
                value: Some(self.compression.name().to_string()),
                description: "Compression of the Arrow IPC exchanged between stages: none, \
                              lz4 or zstd.",
            },
            ConfigEntry {
                key: format!("distributed.{RESULTS_FROM_WORKERS}"),
                value: Some(self.results_from_workers.to_string()),
                description: "Flight SQL clients read a query's rows from the workers that \
                              compute them when its last stage only gathers (false: through \
                              the node they asked).",
            },
            ConfigEntry {
                key: format!("distributed.{RETRY}"),
                value: Some(self.retry.name().to_string()),
                description: "When a worker dies during a query: none (the query fails) or \
                              query (it runs again on the live nodes, unless rows were \
                              already returned).",
            },
            ConfigEntry {
                key: format!("distributed.{MAX_ATTEMPTS}"),
                value: Some(self.max_attempts.to_string()),
                description: "Runs of a query at most when workers die under it.",
            },
        ]
    }
}

impl ConfigExtension for DistributedOptions {
    const PREFIX: &'static str = "distributed";
}
