//! The stage planner: a physical optimizer rule, run after all of DataFusion's, that cuts a
//! plan into stages at its exchanges and places each stage's tasks on workers.
//!
//! - a hash `RepartitionExec` becomes a shuffle: the plan below it is a stage whose tasks hash
//!   their rows into one bucket per partition of every consumer task ([`NetworkShuffleExec`]);
//! - a node that gathers many partitions into one (`CoalescePartitionsExec`,
//!   `SortPreservingMergeExec`, a global sort or limit, `AnalyzeExec`, …) reads the stage below
//!   it from all of its tasks ([`NetworkCoalesceExec`]), and its own stage has one task;
//! - the collected side of a join (the build side of a `CollectLeft` hash join, the left side of
//!   nested-loop and cross joins) is not cut: it is small (by DataFusion's choice, with the
//!   threshold raised to `distributed.broadcast_bytes` by [`crate::BroadcastJoinSelection`]),
//!   and every task of the stage builds it itself — a broadcast by recomputation, with no
//!   network hop;
//! - every other leaf is split across the tasks of its stage ([`PartitionIsolatorExec`]).
//!
//! A stage has as many tasks as its input calls for — its leaves' bytes over
//! `distributed.bytes_per_task`, or as many as the stages it reads — up to the number of
//! workers; a stage that gathers has one. The root stage runs where the query was planned. A
//! query whose leaves hold less than `distributed.min_bytes`, or that would become a single
//! one-task stage, stays as it is: no network hop.

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, plan_err};
use datafusion::config::{ConfigEntry, ConfigExtension, ConfigOptions, ExtensionOptions};
use datafusion::physical_expr::scalar_subquery::ScalarSubqueryExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::execution_plan::replace_children_if_necessary;
use datafusion::physical_plan::joins::{
    CrossJoinExec, HashJoinExec, NestedLoopJoinExec, PartitionMode,
};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::scalar_subquery::ScalarSubqueryExec;
use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties, Partitioning};
use datafusion::prelude::JoinType;
use datafusion_proto::physical_plan::PhysicalExtensionCodec;
use std::any::Any;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::channels::ChannelCache;
use crate::discovery::WorkerDiscovery;
use crate::exchange::{
    DistributedExec, NetworkCoalesceExec, NetworkShuffleExec, PartitionIsolatorExec, StageTasks,
    warm,
};

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
        }
    }
}

const ENABLED: &str = "enabled";
const BYTES_PER_TASK: &str = "bytes_per_task";
const MIN_BYTES: &str = "min_bytes";
const BROADCAST_BYTES: &str = "broadcast_bytes";
pub(crate) const COMPRESSION: &str = "compression";
const RESULTS_FROM_WORKERS: &str = "results_from_workers";

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
            _ => {
                return plan_err!(
                    "unknown option 'distributed.{key}' (known: distributed.{ENABLED}, \
                     distributed.{BYTES_PER_TASK}, distributed.{MIN_BYTES}, \
                     distributed.{BROADCAST_BYTES}, distributed.{COMPRESSION}, \
                     distributed.{RESULTS_FROM_WORKERS})"
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
        ]
    }
}

impl ConfigExtension for DistributedOptions {
    const PREFIX: &'static str = "distributed";
}

/// The physical optimizer rule that distributes plans over the workers `discovery` finds.
/// It must run after every other physical optimizer rule.
#[derive(Debug)]
pub struct DistributedPlanner {
    discovery: Arc<dyn WorkerDiscovery>,
    codec: Arc<dyn PhysicalExtensionCodec>,
    channels: Arc<ChannelCache>,
    /// Makes query ids unique on this node; the prefix makes them unique across nodes.
    queries: AtomicU64,
    prefix: String,
}

impl DistributedPlanner {
    /// `codec` must be the [`crate::DistributedCodec`] the network operators send plans with,
    /// `channels` the cache they use (workers it found unreachable are left out of plans).
    pub fn new(
        discovery: Arc<dyn WorkerDiscovery>,
        codec: Arc<dyn PhysicalExtensionCodec>,
        channels: Arc<ChannelCache>,
    ) -> Self {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos());
        Self {
            discovery,
            codec,
            channels,
            queries: AtomicU64::new(0),
            prefix: format!("{:x}{:x}", started, std::process::id()),
        }
    }
}

impl PhysicalOptimizerRule for DistributedPlanner {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let options = config
            .extensions
            .get::<DistributedOptions>()
            .cloned()
            .unwrap_or_default();
        if !options.enabled || has_network_operators(&plan)? {
            return Ok(plan);
        }
        let workers = live_workers(self.discovery.as_ref(), &self.channels)?;
        if workers.is_empty() || total_leaf_bytes(&plan) < options.min_bytes {
            return Ok(plan);
        }
        let query = format!(
            "{}-{}",
            self.prefix,
            self.queries.fetch_add(1, Ordering::Relaxed)
        );
        let mut stages = StagePlanner {
            query,
            workers,
            options,
            target_partitions: config.execution.target_partitions,
            config,
            stages: 0,
            next_worker: 0,
            one_task_stages: 0,
            used: BTreeSet::new(),
        };
        let distributed = stages.distribute(Arc::clone(&plan))?;
        let single_task = stages.stages == 1 && stages.one_task_stages == 1;
        if stages.stages == 0 || single_task {
            return Ok(plan);
        }
        // Every stage must travel: a plan the codec cannot carry runs where it was planned.
        if warm(&distributed, self.codec.as_ref()).is_err() {
            return Ok(plan);
        }
        let used = stages.used.into_iter().collect();
        let results_from_workers = stages.options.results_from_workers;
        Ok(Arc::new(
            DistributedExec::new(distributed, stages.query, used)
                .with_results_from_workers(results_from_workers),
        ))
    }

    fn name(&self) -> &str {
        "distributed"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The workers `discovery` finds that are not known to be down.
pub(crate) fn live_workers(
    discovery: &dyn WorkerDiscovery,
    channels: &ChannelCache,
) -> Result<Vec<String>> {
    Ok(discovery
        .workers()
        .map_err(flotilla_common::Error::into_datafusion)?
        .into_iter()
        .filter(|worker| channels.is_up(worker))
        .collect())
}

fn has_network_operators(plan: &Arc<dyn ExecutionPlan>) -> Result<bool> {
    plan.exists(|node| {
        Ok(node.downcast_ref::<NetworkShuffleExec>().is_some()
            || node.downcast_ref::<NetworkCoalesceExec>().is_some()
            || node.downcast_ref::<PartitionIsolatorExec>().is_some()
            || node.downcast_ref::<DistributedExec>().is_some())
    })
}

/// A leaf's bytes by its statistics: the byte size, else rows × 64, else unknown (`None`).
fn leaf_bytes(leaf: &Arc<dyn ExecutionPlan>) -> Option<usize> {
    let statistics = StatisticsContext::default()
        .compute(leaf.as_ref(), &StatisticsArgs::new())
        .ok()?;
    if let Some(bytes) = statistics.total_byte_size.get_value() {
        return Some(*bytes);
    }
    statistics
        .num_rows
        .get_value()
        .map(|rows| rows.saturating_mul(64))
}

/// The bytes of all leaves; unknown sizes count as too many to stay single-node.
pub(crate) fn total_leaf_bytes(plan: &Arc<dyn ExecutionPlan>) -> usize {
    let mut total = 0usize;
    let _ = plan.apply(|node| {
        if node.children().is_empty() {
            total = total.saturating_add(leaf_bytes(node).unwrap_or(usize::MAX));
        }
        Ok(TreeNodeRecursion::Continue)
    });
    total
}

/// Which children a node consumes whole in every partition (they are not split across tasks).
fn collected_children(plan: &Arc<dyn ExecutionPlan>) -> Vec<bool> {
    let count = plan.children().len();
    let left_collected = match plan.downcast_ref::<HashJoinExec>() {
        Some(join) => *join.partition_mode() == PartitionMode::CollectLeft,
        None => {
            plan.downcast_ref::<NestedLoopJoinExec>().is_some()
                || plan.downcast_ref::<CrossJoinExec>().is_some()
        }
    };
    (0..count).map(|i| i == 0 && left_collected).collect()
}

/// Joins over a collected side that emit that side's unmatched rows at the end: their probe
/// side cannot be split across tasks (each task would emit them).
fn emits_collected_rows(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let join_type = if let Some(join) = plan.downcast_ref::<HashJoinExec>() {
        if *join.partition_mode() != PartitionMode::CollectLeft {
            return false;
        }
        *join.join_type()
    } else if let Some(join) = plan.downcast_ref::<NestedLoopJoinExec>() {
        *join.join_type()
    } else {
        return false;
    };
    matches!(
        join_type,
        JoinType::Left
            | JoinType::Full
            | JoinType::LeftSemi
            | JoinType::LeftAnti
            | JoinType::LeftMark
    )
}

/// Nodes that must run where the query was planned: a `ScalarSubqueryExec` and the nodes
/// reading its results (the results live in memory shared between them).
fn pinned_here(plan: &Arc<dyn ExecutionPlan>) -> bool {
    if plan.downcast_ref::<ScalarSubqueryExec>().is_some() {
        return true;
    }
    let mut pinned = false;
    let _ = plan.apply_expressions(&mut |expr| {
        pinned = expr
            .exists(|e| Ok(e.downcast_ref::<ScalarSubqueryExpr>().is_some()))
            .unwrap_or(true);
        Ok(if pinned {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    pinned
}

/// How many tasks a part of a stage can use.
#[derive(Debug, Clone, Copy)]
struct Want {
    /// The part must run as one task (it gathers, or a join emits its collected side's rows).
    single: bool,
    /// The part must stay where the query was planned (see [`pinned_here`]).
    pinned: bool,
    tasks: usize,
}

impl Want {
    fn merge(self, other: Want) -> Want {
        Want {
            single: self.single || other.single,
            pinned: self.pinned || other.pinned,
            tasks: self.tasks.max(other.tasks),
        }
    }
}

struct StagePlanner<'a> {
    query: String,
    workers: Vec<String>,
    options: DistributedOptions,
    target_partitions: usize,
    config: &'a ConfigOptions,
    stages: usize,
    next_worker: usize,
    one_task_stages: usize,
    /// The workers any task was placed on.
    used: BTreeSet<String>,
}

impl StagePlanner<'_> {
    fn distribute(&mut self, plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
        let (root, want) = self.part(plan)?;
        if want.single
            || want.pinned
            || root.output_partitioning().partition_count() == 1 && want.tasks == 1
        {
            return self.settle(root, 1);
        }
        let (root, stage) = self.finish(root, want)?;
        Ok(Arc::new(NetworkCoalesceExec::new(root, stage)))
    }

    /// Rewrites the part of a stage rooted at `plan`, cutting the stages below it.
    fn part(&mut self, plan: Arc<dyn ExecutionPlan>) -> Result<(Arc<dyn ExecutionPlan>, Want)> {
        if let Some(repartition) = plan.downcast_ref::<RepartitionExec>()
            && let Partitioning::Hash(exprs, partitions) = repartition.partitioning()
            && !repartition.preserve_order()
        {
            let (input, want) = self.part(Arc::clone(repartition.input()))?;
            if want.pinned {
                return Ok((replace_children_if_necessary(plan, vec![input])?, want));
            }
            let (input, stage) = self.finish(input, want)?;
            let tasks = stage.workers.len();
            // The consumer's task count is set when its stage is finished.
            let shuffle = NetworkShuffleExec::try_new(input, exprs.clone(), stage, 1, *partitions)?;
            return Ok((
                Arc::new(shuffle),
                Want {
                    single: false,
                    pinned: false,
                    tasks,
                },
            ));
        }
        let children: Vec<Arc<dyn ExecutionPlan>> =
            plan.children().into_iter().map(Arc::clone).collect();
        if children.is_empty() {
            let tasks = leaf_bytes(&plan).map_or(self.workers.len(), |bytes| {
                bytes.div_ceil(self.options.bytes_per_task)
            });
            let want = Want {
                single: false,
                pinned: pinned_here(&plan),
                tasks: tasks.clamp(1, self.workers.len()),
            };
            return Ok((Arc::new(PartitionIsolatorExec::new(plan, 1)), want));
        }
        if let [child] = children.as_slice()
            && plan.output_partitioning().partition_count() == 1
            && child.output_partitioning().partition_count() > 1
        {
            let (input, below) = self.part(Arc::clone(child))?;
            let want = Want {
                single: true,
                pinned: below.pinned || pinned_here(&plan),
                tasks: 1,
            };
            if want.pinned {
                return Ok((replace_children_if_necessary(plan, vec![input])?, want));
            }
            let (input, stage) = self.finish(input, below)?;
            let gathered: Arc<dyn ExecutionPlan> = Arc::new(NetworkCoalesceExec::new(input, stage));
            return Ok((replace_children_if_necessary(plan, vec![gathered])?, want));
        }
        let mut want = Want {
            single: emits_collected_rows(&plan),
            pinned: pinned_here(&plan),
            tasks: 1,
        };
        let mut rewritten = Vec::with_capacity(children.len());
        for (child, collected) in children.into_iter().zip(collected_children(&plan)) {
            if collected {
                // Not cut, but it may read scalar subquery results.
                want.pinned |= child.exists(|node| Ok(pinned_here(node)))?;
                rewritten.push(child);
                continue;
            }
            let (child, child_want) = self.part(child)?;
            want = want.merge(child_want);
            rewritten.push(child);
        }
        Ok((replace_children_if_necessary(plan, rewritten)?, want))
    }

    /// Makes `part` a stage of its own, with its tasks placed on workers.
    fn finish(
        &mut self,
        part: Arc<dyn ExecutionPlan>,
        want: Want,
    ) -> Result<(Arc<dyn ExecutionPlan>, StageTasks)> {
        let tasks = if want.single {
            1
        } else {
            want.tasks.clamp(1, self.workers.len())
        };
        let plan = self.settle(part, tasks)?;
        let workers: Vec<String> = (0..tasks)
            .map(|i| self.workers[(self.next_worker + i) % self.workers.len()].clone())
            .collect();
        self.used.extend(workers.iter().cloned());
        self.next_worker += tasks;
        self.stages += 1;
        if tasks == 1 {
            self.one_task_stages += 1;
        }
        let stage = StageTasks {
            query: self.query.clone(),
            stage: self.stages,
            workers,
        };
        Ok((plan, stage))
    }

    /// Fixes a stage's part for `tasks` tasks: its leaves split among them, its shuffles
    /// delivering to them. Stops at the network operators (the stages below are settled).
    fn settle(&self, part: Arc<dyn ExecutionPlan>, tasks: usize) -> Result<Arc<dyn ExecutionPlan>> {
        let settled = part.transform_down(|node| {
            if let Some(shuffle) = node.downcast_ref::<NetworkShuffleExec>() {
                let shuffle: Arc<dyn ExecutionPlan> = Arc::new(shuffle.with_consumer_tasks(tasks)?);
                return Ok(Transformed::new(shuffle, true, TreeNodeRecursion::Jump));
            }
            if node.downcast_ref::<NetworkCoalesceExec>().is_some() {
                return Ok(Transformed::new(node, false, TreeNodeRecursion::Jump));
            }
            if let Some(isolator) = node.downcast_ref::<PartitionIsolatorExec>() {
                let leaf = Arc::clone(isolator.input());
                if tasks == 1 {
                    return Ok(Transformed::new(leaf, true, TreeNodeRecursion::Jump));
                }
                // Give each task as many partitions as the leaf had in all, where it can.
                let wanted = leaf
                    .output_partitioning()
                    .partition_count()
                    .max(self.target_partitions)
                    * tasks;
                let leaf = leaf.repartitioned(wanted, self.config)?.unwrap_or(leaf);
                let isolated: Arc<dyn ExecutionPlan> =
                    Arc::new(PartitionIsolatorExec::new(leaf, tasks));
                return Ok(Transformed::new(isolated, true, TreeNodeRecursion::Jump));
            }
            Ok(Transformed::no(node))
        })?;
        Ok(settled.data)
    }
}
