//! The distributed planner: the last physical optimizer rule. It cuts a plan into stages and
//! places their tasks on workers (`stages`), proves the result right (`check`) and, when
//! it cannot, leaves the plan on this node with the reason shown in `EXPLAIN`
//! ([`SingleNodeExec`]).
//!
//! ```text
//!  physical plan ──▶ small, no workers, disabled? ──yes──▶ SingleNodeExec: not distributed: why
//!                        │ no
//!                        ▼
//!                    stages::distribute ──▶ check::check ──▶ codec can carry every stage?
//!                                               │ fails            │ yes
//!                                               ▼                  ▼
//!                                       SingleNodeExec       DistributedExec(stages)
//! ```
//!
//! [`broadcast`] is the other pass: it wraps DataFusion's join selection so that queries that
//! will distribute collect (broadcast) medium join sides instead of shuffling both inputs.

pub mod broadcast;
pub(crate) mod check;
mod single_node;
mod stages;

pub use single_node::SingleNodeExec;

use datafusion::common::Result;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::config::ConfigOptions;
use datafusion::physical_expr::scalar_subquery::ScalarSubqueryExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::analyze::AnalyzeExec;
use datafusion::physical_plan::execution_plan::{replace_children_if_necessary, reset_plan_states};
use datafusion::physical_plan::memory::LazyMemoryExec;
use datafusion::physical_plan::recursive_query::RecursiveQueryExec;
use datafusion::physical_plan::scalar_subquery::ScalarSubqueryExec;
use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};
use datafusion::physical_plan::work_table::WorkTableExec;
use datafusion_proto::physical_plan::PhysicalExtensionCodec;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::channels::ChannelCache;
use crate::discovery::WorkerDiscovery;
use crate::exec::{Attempt, DistributedExec, Replan};
use crate::exec::{NetworkCoalesceExec, NetworkShuffleExec, PartitionIsolatorExec, warm};
use crate::options::{DistributedOptions, Retry};

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

    /// The distributed plan of `plan`, or why it stays on this node (`Err`); `Ok(None)`: it
    /// stays without anything worth saying (distribution is off, or no worker is configured).
    fn distribute(
        &self,
        plan: &Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
        options: DistributedOptions,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>, String> {
        let configured = self
            .discovery
            .workers()
            .map_err(|e| format!("the workers cannot be found: {}", e.message()))?;
        if configured.is_empty() {
            return Ok(None);
        }
        let workers: Vec<String> = configured
            .iter()
            .filter(|worker| self.channels.is_up(worker))
            .cloned()
            .collect();
        if workers.is_empty() {
            return Err(format!(
                "none of the {} workers is reachable",
                configured.len()
            ));
        }
        let bytes = total_leaf_bytes(plan);
        if bytes < options.min_bytes {
            return Err(format!(
                "it reads about {bytes} bytes, under distributed.min_bytes ({})",
                options.min_bytes
            ));
        }
        let query = format!(
            "{}-{}",
            self.prefix,
            self.queries.fetch_add(1, Ordering::Relaxed)
        );
        let results_from_workers = options.results_from_workers;
        let mut stages = stages::StagePlanner::new(query, workers, options.clone(), config);
        let distributed = stages
            .distribute(Arc::clone(plan))
            .map_err(|e| format!("the stage planner failed: {e}"))?;
        if stages.stage_count() == 0 || stages.is_one_task() {
            return Err("it would run as a single task".to_string());
        }
        check::check(&distributed, config)
            .map_err(|reason| format!("its stages could not be proven right: {reason}"))?;
        // Every stage must travel: a plan the codec cannot carry runs where it was planned.
        warm(&distributed, self.codec.as_ref())
            .map_err(|e| format!("a stage cannot be sent to workers: {}", unsendable(&e)))?;
        let (query, used) = stages.finish_query();
        let mut root = DistributedExec::new(distributed, query.clone(), used)
            .with_results_from_workers(results_from_workers);
        if options.retry == Retry::Query {
            let replan = Replanner {
                original: Arc::clone(plan),
                config: config.clone(),
                options: options.clone(),
                discovery: Arc::clone(&self.discovery),
                channels: Arc::clone(&self.channels),
                codec: Arc::clone(&self.codec),
                query,
            };
            root = root.with_retry(Arc::new(replan), options.max_attempts);
        }
        Ok(Some(Arc::new(root)))
    }
}

/// Plans a query again over the workers alive now (see [`DistributedExec`]).
#[derive(Debug)]
struct Replanner {
    /// The plan as DataFusion made it, before any stage was cut.
    original: Arc<dyn ExecutionPlan>,
    config: ConfigOptions,
    options: DistributedOptions,
    discovery: Arc<dyn WorkerDiscovery>,
    channels: Arc<ChannelCache>,
    codec: Arc<dyn PhysicalExtensionCodec>,
    query: String,
}

impl Replan for Replanner {
    fn replan(&self, attempt: usize, avoid: &[String]) -> Result<Attempt> {
        // Operators that keep state between executions (a join's collected side, a table
        // function's position) start afresh.
        let original = reset_plan_states(Arc::clone(&self.original))?;
        let query = format!("{}-run{attempt}", self.query);
        let here = |original: Arc<dyn ExecutionPlan>, query: String| Attempt {
            plan: original,
            query,
            workers: Vec::new(),
        };
        let mut workers = live_workers(self.discovery.as_ref(), &self.channels)?;
        workers.retain(|worker| !avoid.contains(worker));
        if workers.is_empty() {
            return Ok(here(original, query));
        }
        let mut stages =
            stages::StagePlanner::new(query.clone(), workers, self.options.clone(), &self.config);
        let distributed = stages.distribute(Arc::clone(&original))?;
        if stages.stage_count() == 0
            || stages.is_one_task()
            || check::check(&distributed, &self.config).is_err()
            || warm(&distributed, self.codec.as_ref()).is_err()
        {
            return Ok(here(original, query));
        }
        let (query, workers) = stages.finish_query();
        Ok(Attempt {
            plan: distributed,
            query,
            workers,
        })
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
        match self.distribute(&plan, config, options) {
            Ok(Some(distributed)) => Ok(distributed),
            Ok(None) => Ok(plan),
            Err(reason) => not_distributed(plan, reason),
        }
    }

    fn name(&self) -> &str {
        "distributed"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `plan` marked as run on this node for `reason` (under `EXPLAIN ANALYZE`'s root, so that its
/// output shows the reason too).
fn not_distributed(plan: Arc<dyn ExecutionPlan>, reason: String) -> Result<Arc<dyn ExecutionPlan>> {
    if plan.is::<AnalyzeExec>()
        && let [input] = plan.children().as_slice()
    {
        let marked: Arc<dyn ExecutionPlan> =
            Arc::new(SingleNodeExec::new(Arc::clone(input), reason));
        return replace_children_if_necessary(plan, vec![marked]);
    }
    Ok(Arc::new(SingleNodeExec::new(plan, reason)))
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
        Ok(node.is::<NetworkShuffleExec>()
            || node.is::<NetworkCoalesceExec>()
            || node.is::<PartitionIsolatorExec>()
            || node.is::<DistributedExec>()
            || node.is::<SingleNodeExec>())
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

/// Nodes that must run where the query was planned: they share memory with other nodes of the
/// plan — a `ScalarSubqueryExec` and the nodes reading its results, a recursive query and its
/// work table — or do not survive datafusion-proto: a table function (`generate_series`,
/// `range`) projected to no columns is decoded without its projection, and its batches then
/// no longer match its schema (DataFusion 55).
pub(crate) fn pinned_here(plan: &Arc<dyn ExecutionPlan>) -> bool {
    if plan.is::<ScalarSubqueryExec>()
        || plan.is::<RecursiveQueryExec>()
        || plan.is::<WorkTableExec>()
        || plan.is::<LazyMemoryExec>() && plan.schema().fields().is_empty()
    {
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

/// Why a stage could not be encoded, in a line: DataFusion's message names the node by its
/// whole `Debug` dump (and adds that it is likely a bug of DataFusion's); the reason names the
/// operator only.
fn unsendable(e: &datafusion::common::DataFusionError) -> String {
    let text = e.to_string();
    let (cause, plan) = match text.split_once(". Plan: ") {
        Some((cause, plan)) => (cause, Some(plan)),
        None => (text.as_str(), None),
    };
    let cause = cause.lines().next().unwrap_or_default();
    let cause = cause.strip_prefix("Internal error: ").unwrap_or(cause);
    let operator = plan.and_then(|plan| {
        let name: String = plan
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        (!name.is_empty()).then_some(name)
    });
    match operator {
        Some(operator) => format!("{operator} cannot be encoded ({cause})"),
        None => cause.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use datafusion::common::DataFusionError;

    #[test]
    fn a_stage_that_cannot_travel_is_named_by_its_operator_not_its_dump() {
        let e = DataFusionError::Internal(
            "Unsupported plan and extension codec failed with [This feature is not \
             implemented: PhysicalExtensionCodec is not provided]. Plan: InfluxScanExec { \
             client: InfluxClient { source: \"fleet\" }, influxql: \"SELECT …\" }"
                .into(),
        );
        assert_eq!(
            super::unsendable(&e),
            "InfluxScanExec cannot be encoded (Unsupported plan and extension codec failed \
             with [This feature is not implemented: PhysicalExtensionCodec is not provided])"
        );
        let other = DataFusionError::Plan("no codec for this".into());
        assert_eq!(
            super::unsendable(&other),
            "Error during planning: no codec for this"
        );
    }
}
