//! Network operators: the places where a distributed plan crosses from one stage to the next.
//!
//! ```text
//!  consumer stage (T tasks × P partitions)          producer stage (K tasks)
//!  NetworkShuffleExec  partition p of task t ──DoGet──▶ every producer task k runs
//!      (hash, P partitions per task)                    RepartitionExec(hash, T × P) and serves
//!                                                       its partition t × P + p
//!  NetworkCoalesceExec partition i (one task) ──DoGet──▶ producer task i / P serves its partition i % P
//!  PartitionIsolatorExec (inside a stage): task t of T runs only its share of a leaf's partitions
//! ```
//!
//! Each operator keeps the producer stage's plan as its child, so `EXPLAIN` shows the whole
//! distributed plan, and the codec carries nested stages to workers. The child is never executed
//! where the operator runs: it is sent, as datafusion-proto bytes, in the tickets of the tasks
//! that run it. Producers buffer a shuffle in their `RepartitionExec`, which counts its buffers in
//! the worker's memory pool and spills them to local disk (Arrow IPC) when the pool is full.

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::stream::{EmptyRecordBatchStream, RecordBatchStreamAdapter};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties,
};
use datafusion_proto::bytes::physical_plan_to_bytes_with_extension_codec;
use datafusion_proto::physical_plan::PhysicalExtensionCodec;
use futures::{StreamExt, TryStreamExt};
use std::fmt;
use std::sync::{Arc, OnceLock};

use crate::channels::ChannelCache;
use crate::stats::{Recorder, StageStats};
use crate::worker::{TaskTicket, config_entries, fetch};

/// Which task of its stage a plan runs as; workers put it in each task's session config.
/// Absent (on the coordinator), a plan runs as the only task of its stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskIndex {
    pub index: usize,
    pub count: usize,
}

impl TaskIndex {
    fn of(context: &TaskContext) -> Self {
        context
            .session_config()
            .get_extension::<TaskIndex>()
            .map_or(TaskIndex { index: 0, count: 1 }, |task| *task)
    }
}

/// What network operators need where they run: channels to workers and the codec that writes
/// the plans they send. The builder puts it in the coordinator's session, the worker in every
/// task's.
#[derive(Debug, Clone)]
pub struct NetworkContext {
    pub channels: Arc<ChannelCache>,
    pub codec: Arc<dyn PhysicalExtensionCodec>,
    /// The worker this runs on, when it knows its URL: partitions of tasks placed on it are
    /// read in memory.
    pub local: Option<LocalWorker>,
}

/// A worker and the URL the cluster knows it by.
#[derive(Debug, Clone)]
pub struct LocalWorker {
    pub url: String,
    pub worker: crate::worker::Worker,
}

impl NetworkContext {
    pub(crate) fn of(context: &TaskContext) -> Result<Arc<Self>> {
        match context.session_config().get_extension::<NetworkContext>() {
            Some(network) => Ok(network),
            None => internal_err!(
                "a network operator runs in a session without a NetworkContext \
                 (build the session with flotilla_distributed's builder extension)"
            ),
        }
    }
}

/// A producer stage: the query it belongs to, its number, and the worker of each of its tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageTasks {
    pub query: String,
    pub stage: usize,
    pub workers: Vec<String>,
}

impl StageTasks {
    fn describe(&self) -> String {
        format!("stage={} tasks=[{}]", self.stage, self.workers.join(", "))
    }
}

/// The one child of a network operator, from `with_new_children` or the codec's inputs.
pub(crate) fn only_child(
    children: &[Arc<dyn ExecutionPlan>],
    what: &str,
) -> Result<Arc<dyn ExecutionPlan>> {
    match children {
        [child] => Ok(Arc::clone(child)),
        _ => internal_err!("{what} has one child, not {}", children.len()),
    }
}

/// Encodes the producer plan once per operator instance (every partition sends the same bytes).
#[derive(Debug, Default)]
struct EncodedPlan(OnceLock<Arc<Vec<u8>>>);

impl EncodedPlan {
    fn get(
        &self,
        plan: &Arc<dyn ExecutionPlan>,
        codec: &dyn PhysicalExtensionCodec,
    ) -> Result<Arc<Vec<u8>>> {
        if let Some(bytes) = self.0.get() {
            return Ok(Arc::clone(bytes));
        }
        let bytes = Arc::new(
            physical_plan_to_bytes_with_extension_codec(Arc::clone(plan), codec)?.to_vec(),
        );
        Ok(Arc::clone(self.0.get_or_init(|| bytes)))
    }
}

/// Opens partition `partition` of task `task` of the producer stage.
fn open(
    stage: &StageTasks,
    plan: &Arc<dyn ExecutionPlan>,
    encoded: &EncodedPlan,
    recorder: &Recorder,
    task: usize,
    partition: usize,
    context: &TaskContext,
) -> Result<SendableRecordBatchStream> {
    let network = NetworkContext::of(context)?;
    let bytes = encoded.get(plan, network.codec.as_ref())?;
    let worker = stage.workers[task].clone();
    let ticket = TaskTicket {
        plan: bytes.as_ref().clone(),
        config: config_entries(context.session_config().options()),
        partition: partition as u32,
        query: stage.query.clone(),
        stage: stage.stage as u32,
        task: task as u32,
        tasks: stage.workers.len() as u32,
    };
    if let Some(local) = &network.local
        && local.url == worker
    {
        let recorder = recorder.clone();
        return local
            .worker
            .serve(ticket, Box::new(move |report| recorder.record(&report)))
            .map_err(flotilla_common::Error::into_datafusion);
    }
    let channel = network
        .channels
        .get(&worker)
        .map_err(flotilla_common::Error::into_datafusion)?;
    let channels = Arc::clone(&network.channels);
    let recorder = recorder.clone();
    let stream = futures::stream::once(async move {
        fetch(channel, worker, ticket, Some(channels), Some(recorder))
            .await
            .map_err(flotilla_common::Error::into_datafusion)
    })
    .try_flatten();
    Ok(Box::pin(RecordBatchStreamAdapter::new(
        plan.schema(),
        stream,
    )))
}

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

/// Gives each task of a stage its own share of a leaf's partitions, so that the tasks together
/// read the leaf exactly once: task `t` of `T` runs partitions `t × S .. (t + 1) × S` (`S` =
/// partitions ÷ `T`, rounded up) and returns nothing for the rest.
#[derive(Debug)]
pub struct PartitionIsolatorExec {
    input: Arc<dyn ExecutionPlan>,
    tasks: usize,
    properties: Arc<PlanProperties>,
}

impl PartitionIsolatorExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, tasks: usize) -> Self {
        let tasks = tasks.max(1);
        let share = input
            .output_partitioning()
            .partition_count()
            .div_ceil(tasks);
        let properties = PlanProperties::new(
            input.equivalence_properties().clone(),
            Partitioning::UnknownPartitioning(share.max(1)),
            EmissionType::Incremental,
            input.boundedness(),
        );
        Self {
            input,
            tasks,
            properties: Arc::new(properties),
        }
    }

    pub fn tasks(&self) -> usize {
        self.tasks
    }

    pub fn input(&self) -> &Arc<dyn ExecutionPlan> {
        &self.input
    }
}

impl DisplayAs for PartitionIsolatorExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "PartitionIsolatorExec: tasks={}", self.tasks)
    }
}

impl ExecutionPlan for PartitionIsolatorExec {
    fn name(&self) -> &'static str {
        "PartitionIsolatorExec"
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
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = only_child(&children, "PartitionIsolatorExec")?;
        Ok(Arc::new(Self::new(input, self.tasks)))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let task = TaskIndex::of(&context);
        if task.count != self.tasks {
            return internal_err!(
                "PartitionIsolatorExec planned for {} tasks runs in a stage of {}",
                self.tasks,
                task.count
            );
        }
        let inputs = self.input.output_partitioning().partition_count();
        let share = inputs.div_ceil(self.tasks);
        let input_partition = task.index * share + partition;
        if partition >= share || input_partition >= inputs {
            return Ok(Box::pin(EmptyRecordBatchStream::new(self.schema())));
        }
        self.input.execute(input_partition, context)
    }
}

/// Encodes the producer plan of every network operator in `plan` (so each stage's bytes are
/// ready before the query runs), failing when `codec` cannot carry one of them.
pub(crate) fn warm(
    plan: &Arc<dyn ExecutionPlan>,
    codec: &dyn PhysicalExtensionCodec,
) -> Result<()> {
    plan.apply(|node| {
        if let Some(shuffle) = node.downcast_ref::<NetworkShuffleExec>() {
            shuffle.encoded.get(&shuffle.producer, codec)?;
        } else if let Some(coalesce) = node.downcast_ref::<NetworkCoalesceExec>() {
            coalesce.encoded.get(&coalesce.producer, codec)?;
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .map(|_| ())
}
