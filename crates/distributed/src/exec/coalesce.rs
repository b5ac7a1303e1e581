//! [`NetworkCoalesceExec`]: gathers every partition of every task of a stage.

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties,
};
use datafusion_proto::physical_plan::PhysicalExtensionCodec;
use std::fmt;
use std::sync::Arc;

use super::{EncodedPlan, Recorder, StageTasks, only_child, open};
use crate::stats::StageStats;

/// Reads every partition of every task of a producer stage: partition `i` is partition
/// `i % P` of task `i / P`. Runs in a one-task stage (or on the coordinator), under the
/// `CoalescePartitionsExec` or `SortPreservingMergeExec` that gathers them.
#[derive(Debug)]
pub struct NetworkCoalesceExec {
    producer: Arc<dyn ExecutionPlan>,
    stage: StageTasks,
    properties: Arc<PlanProperties>,
    encoded: EncodedPlan,
    stats: Arc<StageStats>,
}

impl NetworkCoalesceExec {
    pub fn new(producer: Arc<dyn ExecutionPlan>, stage: StageTasks) -> Self {
        let per_task = producer.output_partitioning().partition_count();
        let properties = PlanProperties::new(
            producer.equivalence_properties().clone(),
            Partitioning::UnknownPartitioning(per_task * stage.workers.len()),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Self {
            producer,
            stage,
            properties: Arc::new(properties),
            encoded: EncodedPlan::default(),
            stats: Arc::default(),
        }
    }

    pub fn stage(&self) -> &StageTasks {
        &self.stage
    }

    /// The producer stage's plan.
    pub fn producer(&self) -> &Arc<dyn ExecutionPlan> {
        &self.producer
    }

    /// What the producer stage's tasks reported (see [`crate::stats`]).
    pub fn stats(&self) -> &Arc<StageStats> {
        &self.stats
    }

    /// The producer stage's plan as its tasks receive it.
    pub(crate) fn producer_bytes(
        &self,
        codec: &dyn PhysicalExtensionCodec,
    ) -> Result<Arc<Vec<u8>>> {
        self.encoded.get(&self.producer, codec)
    }
}

impl DisplayAs for NetworkCoalesceExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "NetworkCoalesceExec: {}, partitions_per_task={}",
            self.stage.describe(),
            self.producer.output_partitioning().partition_count()
        )
    }
}

impl ExecutionPlan for NetworkCoalesceExec {
    fn name(&self) -> &'static str {
        "NetworkCoalesceExec"
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.stats.metrics(self.stage.stage as u32))
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn apply_expressions(
        &self,
        _: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.producer]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let producer = only_child(&children, "NetworkCoalesceExec")?;
        Ok(Arc::new(Self::new(producer, self.stage.clone())))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let per_task = self.producer.output_partitioning().partition_count();
        let total = per_task * self.stage.workers.len();
        if partition >= total {
            return internal_err!(
                "NetworkCoalesceExec has {total} partitions; asked for {partition}"
            );
        }
        open(
            &self.stage,
            &self.producer,
            &self.encoded,
            &Recorder::new(Arc::clone(&self.stats), &self.producer),
            partition / per_task,
            partition % per_task,
            &context,
        )
    }
}
