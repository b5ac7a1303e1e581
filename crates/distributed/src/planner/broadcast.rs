//! Broadcast joins: in a query that will be distributed, DataFusion's join selection runs
//! with a larger collect-left threshold, so a hash join whose smaller side is estimated under
//! `distributed.broadcast_bytes` builds that side in every task (the stage planner keeps a
//! collected side in its consumer's stage: broadcast by recomputation) instead of shuffling
//! both sides across the network. On one node DataFusion's own threshold is right — moving
//! rows between partitions costs little there — so queries that stay single-node keep it.

use datafusion::common::Result;
use datafusion::config::ConfigOptions;
use datafusion::physical_optimizer::{
    ConfigOnlyContext, PhysicalOptimizerContext, PhysicalOptimizerRule,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::operator_statistics::StatisticsRegistry;
use std::sync::Arc;

use super::{live_workers, total_leaf_bytes};
use crate::channels::ChannelCache;
use crate::discovery::WorkerDiscovery;
use crate::options::DistributedOptions;

/// Bytes a row is taken to hold where a side's statistics know rows but not bytes (the stage
/// planner estimates the same way).
const BYTES_PER_ROW: usize = 64;

/// Wraps DataFusion's join selection rule (`join_selection`).
#[derive(Debug)]
pub struct BroadcastJoinSelection {
    inner: Arc<dyn PhysicalOptimizerRule + Send + Sync>,
    discovery: Arc<dyn WorkerDiscovery>,
    channels: Arc<ChannelCache>,
}

impl BroadcastJoinSelection {
    pub fn new(
        inner: Arc<dyn PhysicalOptimizerRule + Send + Sync>,
        discovery: Arc<dyn WorkerDiscovery>,
        channels: Arc<ChannelCache>,
    ) -> Self {
        Self {
            inner,
            discovery,
            channels,
        }
    }

    /// The options join selection should see for `plan`: with a raised collect-left
    /// threshold when the plan will be distributed, else `None` (use the session's).
    fn broadcast_options(
        &self,
        plan: &Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Option<ConfigOptions>> {
        let Some(options) = config.extensions.get::<DistributedOptions>() else {
            return Ok(None);
        };
        let current = &config.optimizer;
        if !options.enabled
            || options.broadcast_bytes <= current.hash_join_single_partition_threshold
            || total_leaf_bytes(plan) < options.min_bytes
            || live_workers(self.discovery.as_ref(), &self.channels)?.is_empty()
        {
            return Ok(None);
        }
        let mut raised = config.clone();
        raised.optimizer.hash_join_single_partition_threshold = options.broadcast_bytes;
        raised.optimizer.hash_join_single_partition_threshold_rows = current
            .hash_join_single_partition_threshold_rows
            .max(options.broadcast_bytes / BYTES_PER_ROW);
        Ok(Some(raised))
    }
}

/// A context with other options and the original statistics registry.
struct Raised<'a> {
    config: &'a ConfigOptions,
    registry: Option<&'a StatisticsRegistry>,
}

impl PhysicalOptimizerContext for Raised<'_> {
    fn config_options(&self) -> &ConfigOptions {
        self.config
    }

    fn statistics_registry(&self) -> Option<&StatisticsRegistry> {
        self.registry
    }
}

impl PhysicalOptimizerRule for BroadcastJoinSelection {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.optimize_with_context(plan, &ConfigOnlyContext::new(config))
    }

    fn optimize_with_context(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        context: &dyn PhysicalOptimizerContext,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match self.broadcast_options(&plan, context.config_options())? {
            Some(raised) => self.inner.optimize_with_context(
                plan,
                &Raised {
                    config: &raised,
                    registry: context.statistics_registry(),
                },
            ),
            None => self.inner.optimize_with_context(plan, context),
        }
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn schema_check(&self) -> bool {
        self.inner.schema_check()
    }
}
