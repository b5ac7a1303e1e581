//! [`NetworkShuffleExec`]: reads a hash shuffle across the tasks of two stages.

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties,
};
use datafusion_proto::physical_plan::PhysicalExtensionCodec;
use futures::StreamExt;
use std::fmt;
use std::sync::Arc;

use super::{EncodedPlan, Recorder, StageTasks, TaskIndex, only_child, open};
use crate::stats::StageStats;

/// Reads a hash shuffle: partition `p` of consumer task `t` is bucket `t × P + p` of every
/// producer task's `RepartitionExec`, merged in arrival order.
#[derive(Debug)]
pub struct NetworkShuffleExec {
    /// The producer stage's plan: a hash `RepartitionExec` into `consumer tasks × partitions`.
    producer: Arc<dyn ExecutionPlan>,
    stage: StageTasks,
    /// Partitions per consumer task.
    partitions: usize,
    properties: Arc<PlanProperties>,
    encoded: EncodedPlan,
    stats: Arc<StageStats>,
}

impl NetworkShuffleExec {
    /// Shuffles `input` (the producer stage below the repartition) by `exprs` to
    /// `consumer_tasks` tasks of `partitions` partitions each.
    ///
    /// # Errors
    /// When the repartition cannot be built.
    pub fn try_new(
        input: Arc<dyn ExecutionPlan>,
        exprs: Vec<Arc<dyn PhysicalExpr>>,
        stage: StageTasks,
        consumer_tasks: usize,
        partitions: usize,
    ) -> Result<Self> {
        let producer = Arc::new(RepartitionExec::try_new(
            input,
            Partitioning::Hash(exprs, consumer_tasks.max(1) * partitions),
        )?);
        Self::from_producer(producer, stage, partitions)
    }

    /// The operator over an already built producer plan (its root must be a hash repartition).
    ///
    /// # Errors
    /// When the producer's root is not a hash `RepartitionExec`.
    pub fn from_producer(
        producer: Arc<dyn ExecutionPlan>,
        stage: StageTasks,
        partitions: usize,
    ) -> Result<Self> {
        let Partitioning::Hash(exprs, _) = producer.output_partitioning().clone() else {
            return internal_err!("a shuffle's producer must be hash partitioned");
        };
        let properties = PlanProperties::new(
            producer.equivalence_properties().clone(),
            Partitioning::Hash(exprs, partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Self {
            producer,
            stage,
            partitions,
            properties: Arc::new(properties),
            encoded: EncodedPlan::default(),
            stats: Arc::default(),
        })
    }

    pub fn stage(&self) -> &StageTasks {
        &self.stage
    }

    pub fn partitions(&self) -> usize {
        self.partitions
    }

    /// The producer stage's plan: a hash `RepartitionExec` into consumer tasks × partitions.
    pub fn producer(&self) -> &Arc<dyn ExecutionPlan> {
        &self.producer
    }

    /// What the producer stage's tasks reported (see [`crate::stats`]).
    pub fn stats(&self) -> &Arc<StageStats> {
        &self.stats
    }

    /// The producer stage's plan as datafusion-proto bytes (encoded once).
    pub(crate) fn producer_bytes(
        &self,
        codec: &dyn PhysicalExtensionCodec,
    ) -> Result<Arc<Vec<u8>>> {
        self.encoded.get(&self.producer, codec)
    }

    /// The same shuffle delivering to `consumer_tasks` tasks.
    ///
    /// # Errors
    /// When the repartition cannot be rebuilt.
    pub fn with_consumer_tasks(&self, consumer_tasks: usize) -> Result<Self> {
        let Some(repartition) = self.producer.downcast_ref::<RepartitionExec>() else {
            return internal_err!("a shuffle's producer must be a RepartitionExec");
        };
        let Partitioning::Hash(exprs, _) = repartition.partitioning().clone() else {
            return internal_err!("a shuffle's producer must be hash partitioned");
        };
        Self::try_new(
            Arc::clone(repartition.input()),
            exprs,
            self.stage.clone(),
            consumer_tasks,
            self.partitions,
        )
    }
}

impl DisplayAs for NetworkShuffleExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "NetworkShuffleExec: {}, partitions_per_task={}",
            self.stage.describe(),
            self.partitions
        )
    }
}

impl ExecutionPlan for NetworkShuffleExec {
    fn name(&self) -> &'static str {
        "NetworkShuffleExec"
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

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let producer = only_child(&children, "NetworkShuffleExec")?;
        Ok(Arc::new(Self::from_producer(
            producer,
            self.stage.clone(),
            self.partitions,
        )?))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition >= self.partitions {
            return internal_err!(
                "NetworkShuffleExec has {} partitions; asked for {partition}",
                self.partitions
            );
        }
        let task = TaskIndex::of(&context);
        let bucket = task.index * self.partitions + partition;
        let recorder = Recorder::new(Arc::clone(&self.stats), &self.producer);
        let streams = (0..self.stage.workers.len())
            .map(|producer| {
                open(
                    &self.stage,
                    &self.producer,
                    &self.encoded,
                    &recorder,
                    producer,
                    bucket,
                    &context,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let merged = futures::stream::select_all(streams);
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema(),
            merged.boxed(),
        )))
    }
}
