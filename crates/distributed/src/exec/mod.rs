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
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion_proto::bytes::physical_plan_to_bytes_with_proto_converter;
use datafusion_proto::physical_plan::DeduplicatingProtoConverter;
use datafusion_proto::physical_plan::PhysicalExtensionCodec;
use futures::TryStreamExt;
use std::fmt;
use std::sync::{Arc, OnceLock};

mod coalesce;
mod distributed;
mod isolator;
mod recorder;
mod shuffle;

pub use coalesce::NetworkCoalesceExec;
pub use distributed::{Attempt, DistributedExec, Replan, queries_run_again};
pub use isolator::PartitionIsolatorExec;
pub(crate) use recorder::{Recorder, Reported};
pub use shuffle::NetworkShuffleExec;

use crate::channels::ChannelCache;
use crate::client::fetch;
use crate::protocol::{TaskTicket, config_entries};
use crate::stats::StageReport;

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
    pub tasks: Arc<dyn LocalTasks>,
}

/// What receives a stage task stream's report when the stream ends.
pub type OnEnd = Box<dyn FnOnce(StageReport) + Send>;

/// Runs tasks in this process: the worker of this node, for the network operators of tasks
/// that read a task placed on it.
pub trait LocalTasks: fmt::Debug + Send + Sync {
    /// Runs what `ticket` asks for; a stage task's stream hands its report to `on_end` when it
    /// ends.
    ///
    /// # Errors
    /// When the ticket's plan cannot be decoded or its partition does not exist.
    fn serve(
        &self,
        ticket: TaskTicket,
        on_end: OnEnd,
    ) -> flotilla_common::Result<SendableRecordBatchStream>;
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
            physical_plan_to_bytes_with_proto_converter(
                Arc::clone(plan),
                codec,
                &DeduplicatingProtoConverter {},
            )?
            .to_vec(),
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
            .tasks
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
        let on_report = move |report: &StageReport| recorder.record(report);
        fetch(
            channel,
            worker,
            ticket,
            Some(channels),
            Some(Box::new(on_report)),
        )
        .await
        .map_err(flotilla_common::Error::into_datafusion)
    })
    .try_flatten();
    Ok(Box::pin(RecordBatchStreamAdapter::new(
        plan.schema(),
        stream,
    )))
}

/// Encodes the producer plan of every network operator in `plan` (so each stage's bytes are
/// ready before the query runs), failing when `codec` cannot carry one of them.
pub(crate) fn warm(
    plan: &Arc<dyn ExecutionPlan>,
    codec: &dyn PhysicalExtensionCodec,
) -> Result<()> {
    plan.apply(|node| {
        if let Some(shuffle) = node.downcast_ref::<NetworkShuffleExec>() {
            shuffle.producer_bytes(codec)?;
        } else if let Some(coalesce) = node.downcast_ref::<NetworkCoalesceExec>() {
            coalesce.producer_bytes(codec)?;
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .map(|_| ())
}
