//! The worker: an Arrow Flight service that runs one partition of a physical plan sent to it,
//! under the sender's session configuration, and streams the batches back.
//!
//! ```text
//!  coordinator                                   worker (a tonic service, mountable beside others)
//!  execute_remote(channel, plan, config, p) ──▶ DoGet(Ticket = TaskTicket {
//!                                                  plan: datafusion-proto bytes (with the codec),
//!                                                  config: every `datafusion.*` and extension option,
//!                                                  partition: p })
//!  ◀── Arrow IPC (FlightData) ────────────────── decode plan, execute partition p
//! ```
//!
//! The whole session configuration travels with each task, so an option changed with `SET` on
//! the coordinator — DataFusion's own or a registered extension's — is in effect on the worker.
//! Functions, extension options and codecs the plan needs must be registered in the worker's
//! base session and codec (the same ones the coordinator uses).

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::Result as DfResult;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};
use datafusion::prelude::SessionConfig;
use datafusion_proto::bytes::physical_plan_from_bytes_with_proto_converter;
use datafusion_proto::physical_plan::{
    DeduplicatingProtoConverter, DefaultPhysicalExtensionCodec, PhysicalExtensionCodec,
};
use flotilla_common::memory::runtime_for_query;
use flotilla_common::options::QueryLimits;
use flotilla_common::spans::InSpan;
use flotilla_common::{Error, ErrorKind, Result};
use futures::StreamExt;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::channels::{ChannelCache, DefaultChannels};
use crate::client::end_query;
use crate::codec::DistributedCodec;
use crate::exec::{LocalTasks, LocalWorker, NetworkContext, OnEnd, Reported, TaskIndex};
use crate::filters::release_unfilled;
use crate::options::DistributedOptions;
use crate::protocol::TaskTicket;
use crate::results::{ResultTicket, is_result_ticket};
use crate::stats::{StageFigures, StageReport};

mod flight;

/// `config` for a session made from an existing one: DataFusion must not create the default
/// catalog again, which would replace the existing (shared) one with an empty one.
fn keeping_catalogs(mut config: SessionConfig) -> SessionConfig {
    config
        .options_mut()
        .catalog
        .create_default_catalog_and_schema = false;
    config
}

/// How long a stage task's plan is kept for partitions nobody has asked for yet, and how long
/// an ended query is remembered (so late requests of it are refused, not started).
const IDLE_TASK_LIMIT: Duration = Duration::from_secs(300);

/// Runs tasks sent by coordinators.
#[derive(Debug, Clone)]
pub struct Worker {
    base: SessionState,
    codec: Arc<dyn PhysicalExtensionCodec>,
    channels: Arc<ChannelCache>,
    tasks: Arc<Mutex<Tasks>>,
    /// Arrow IPC bytes this worker has sent (to other workers and coordinators).
    bytes_sent: Arc<AtomicU64>,
    /// Bytes its tasks spilled to disk.
    spilled: Arc<AtomicU64>,
    /// Per query with a `flotilla.query_memory_limit`: the runtime its tasks here share, whose
    /// pool holds them to that limit together (kept while a task of the query runs).
    query_runtimes: Arc<Mutex<HashMap<String, Weak<RuntimeEnv>>>>,
    /// The URL peers reach this worker at, when known: its tasks then read partitions of
    /// other tasks on this worker directly, without the network.
    address: Option<String>,
}

/// A task's plan; when the last of its users (the worker's table, the partitions' streams) lets
/// go of it, its spill metrics are added to the worker's.
#[derive(Debug)]
struct Harvest {
    plan: Arc<dyn ExecutionPlan>,
    spilled: Arc<AtomicU64>,
    /// What the task's streams have reported of the stages below it so far.
    reported: Reported,
}

impl Drop for Harvest {
    fn drop(&mut self) {
        let mut bytes = 0;
        let _ = self.plan.apply(|node| {
            bytes += node
                .metrics()
                .and_then(|metrics| metrics.spilled_bytes())
                .unwrap_or(0);
            Ok(TreeNodeRecursion::Continue)
        });
        self.spilled.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// The stage tasks a worker runs, and the queries that ended.
#[derive(Debug, Default)]
struct Tasks {
    running: HashMap<TaskKey, RunningTask>,
    ended: HashMap<String, Instant>,
    /// Stage tasks whose rows went to a client (a result ticket is read once).
    results: HashMap<TaskKey, Instant>,
}

/// (query, stage, task)
type TaskKey = (String, u32, u32);

/// A stage task whose partitions are being served.
#[derive(Debug)]
struct RunningTask {
    plan: Arc<Harvest>,
    context: Arc<TaskContext>,
    served: Vec<bool>,
    touched: Instant,
}

impl Worker {
    /// A worker whose tasks run in sessions like `base` (its functions, extension options and
    /// runtime), decoding plans with DataFusion's codec and reaching other workers (for the
    /// stages its tasks read) over [`DefaultChannels`].
    pub fn new(base: SessionState) -> Self {
        // Tasks carry every `distributed.*` option of their coordinator.
        let base = if base
            .config()
            .options()
            .extensions
            .get::<DistributedOptions>()
            .is_some()
        {
            base
        } else {
            let config = base
                .config()
                .clone()
                .with_option_extension(DistributedOptions::default());
            SessionStateBuilder::new_from_existing(base)
                .with_config(keeping_catalogs(config))
                .build()
        };
        Self {
            base,
            codec: Arc::new(DistributedCodec::new(Arc::new(
                DefaultPhysicalExtensionCodec {},
            ))),
            channels: Arc::new(ChannelCache::new(Arc::new(DefaultChannels::default()))),
            tasks: Arc::default(),
            bytes_sent: Arc::default(),
            spilled: Arc::default(),
            query_runtimes: Arc::default(),
            address: None,
        }
    }

    /// Decodes plans with `codec` for the nodes that are not Flotilla's own (custom physical
    /// nodes and functions); it must match the coordinator's.
    pub fn with_codec(mut self, codec: Arc<dyn PhysicalExtensionCodec>) -> Self {
        self.codec = Arc::new(DistributedCodec::new(codec));
        self
    }

    /// Tells the worker the URL the cluster knows it by (as listed in discovery): a task
    /// reading a partition of another task on this worker then reads it in memory.
    pub fn with_address(mut self, url: impl Into<String>) -> Self {
        self.address = Some(url.into());
        self
    }

    /// Makes `state`, the distributed session of this worker's own node, read the partitions
    /// of tasks placed on this worker in memory instead of over the network (as the worker's
    /// tasks already do). Needs the worker's address ([`Self::with_address`]); `false`, and
    /// nothing changed, without it or when `state` is not distributed.
    pub fn attach(&self, state: &mut SessionState) -> bool {
        let (Some(url), Some(network)) = (
            self.address.clone(),
            state.config().get_extension::<NetworkContext>(),
        ) else {
            return false;
        };
        state.config_mut().set_extension(Arc::new(NetworkContext {
            local: Some(LocalWorker {
                url,
                tasks: Arc::new(self.clone()),
            }),
            ..(*network).clone()
        }));
        true
    }

    /// The URL the cluster knows this worker by, if it was told ([`Self::with_address`]).
    pub fn address(&self) -> Option<&str> {
        self.address.as_deref()
    }

    /// Ends the query of a result ticket (see [`crate::results`]) on every worker of it: a
    /// client cancelling a query whose rows it reads from the workers. `false` when `bytes`
    /// is not a result ticket.
    ///
    /// # Errors
    /// When the ticket's signature does not match or it expired.
    pub fn cancel_result(&self, bytes: &[u8]) -> Result<bool> {
        if !is_result_ticket(bytes) {
            return Ok(false);
        }
        let ticket = ResultTicket::open(bytes, self.channels.secret())?;
        if let Some(task) = &ticket.task {
            end_query(&self.channels, &task.query, &ticket.workers);
        }
        Ok(true)
    }

    /// Reaches other workers over `channels`.
    pub fn with_channels(mut self, channels: Arc<ChannelCache>) -> Self {
        self.channels = channels;
        self
    }

    /// The number of stage tasks whose plans this worker keeps (some partitions not yet asked).
    pub fn running_tasks(&self) -> usize {
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .running
            .len()
    }

    /// The bytes this worker's finished tasks spilled to local disk.
    pub fn spilled_bytes(&self) -> u64 {
        self.spilled.load(Ordering::Relaxed)
    }

    /// The bytes reserved in this worker's memory pool now.
    pub fn memory_reserved(&self) -> usize {
        self.base.runtime_env().memory_pool.reserved()
    }

    /// The Arrow IPC bytes (message headers and bodies) this worker has sent so far.
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent.load(Ordering::Relaxed)
    }

    /// Drops every task of `query` (their streams stop) and refuses its later requests.
    pub fn end_query(&self, query: &str) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.running.retain(|(id, _, _), _| id != query);
        tasks.ended.insert(query.to_string(), Instant::now());
    }

    /// The context a task runs in: the base session with the task's configuration, its place
    /// in the stage, and what network operators need.
    fn task_context(&self, ticket: &TaskTicket) -> Result<Arc<TaskContext>> {
        let mut config = self.base.config().clone();
        let options = config.options_mut();
        for entry in &ticket.config {
            options.set(&entry.key, &entry.value).map_err(|e| {
                Error::invalid(format!(
                    "option {} = '{}' cannot be set on this worker: {e}",
                    entry.key, entry.value
                ))
            })?;
        }
        if ticket.tasks > 1 {
            // A task reads only its share of a file scan's partitions: they must not take
            // each other's files (the files of the other tasks' partitions are in the queue).
            config
                .options_mut()
                .execution
                .enable_file_stream_work_stealing = false;
        }
        config.set_extension(Arc::new(TaskIndex {
            index: ticket.task as usize,
            count: (ticket.tasks as usize).max(1),
        }));
        config.set_extension(Arc::new(NetworkContext {
            channels: Arc::clone(&self.channels),
            codec: Arc::clone(&self.codec),
            local: self.address.clone().map(|url| LocalWorker {
                url,
                tasks: Arc::new(self.clone()) as Arc<dyn LocalTasks>,
            }),
        }));
        let state = SessionStateBuilder::new_from_existing(self.base.clone())
            .with_config(keeping_catalogs(config))
            .build();
        let Some(limit) = QueryLimits::of(state.config_options()).query_memory_limit else {
            // The distributed query's id: what the statements of its scans log.
            return Ok(Arc::new(
                TaskContext::from(&state).with_task_id(ticket.query.clone()),
            ));
        };
        let runtime = {
            let mut runtimes = self
                .query_runtimes
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            runtimes.retain(|_, runtime| runtime.strong_count() > 0);
            match runtimes.get(&ticket.query).and_then(Weak::upgrade) {
                Some(runtime) => runtime,
                None => {
                    let runtime = runtime_for_query(state.runtime_env(), limit);
                    runtimes.insert(ticket.query.clone(), Arc::downgrade(&runtime));
                    runtime
                }
            }
        };
        Ok(Arc::new(
            TaskContext::from(&state)
                .with_runtime(runtime)
                .with_task_id(ticket.query.clone()),
        ))
    }

    /// The ticket's plan and the context it runs in. Dynamic filters whose operator is not in
    /// the plan are released ([`release_unfilled`]); in a one-off plan, of which only the
    /// ticket's partition runs, all are.
    fn decode(&self, ticket: &TaskTicket) -> Result<(Arc<dyn ExecutionPlan>, Arc<TaskContext>)> {
        let context = self.task_context(ticket)?;
        let plan = physical_plan_from_bytes_with_proto_converter(
            &ticket.plan,
            &context,
            self.codec.as_ref(),
            &DeduplicatingProtoConverter {},
        )
        .map_err(|e| Error::invalid(format!("cannot decode the task's plan: {e}")))?;
        let one_off = ticket.query.is_empty();
        release_unfilled(&plan, context.session_config().options(), one_off)?;
        Ok((plan, context))
    }

    /// Runs what `ticket` asks for (also for tasks of this node reading each other directly).
    /// A stage task's stream hands its [`StageReport`] to `on_end` when it ends.
    pub(crate) fn serve(
        &self,
        ticket: TaskTicket,
        on_end: OnEnd,
    ) -> Result<SendableRecordBatchStream> {
        let partition = ticket.partition as usize;
        if ticket.query.is_empty() {
            let (plan, context) = self.decode(&ticket)?;
            check_partition(&plan, partition)?;
            return Ok(plan.execute(partition, context)?);
        }
        let (task, context) = self.stage_task(&ticket, partition)?;
        run_partition(task, context, partition, &ticket, on_end)
    }

    /// Every partition of the stage task `ticket` names, merged as they come: the rows of a
    /// query's last stage going straight to a client (see [`crate::results`]).
    fn serve_all(&self, ticket: &TaskTicket) -> Result<SendableRecordBatchStream> {
        let ignore: fn() -> OnEnd = || Box::new(|_| ());
        let (task, context) = self.stage_task(ticket, 0)?;
        let partitions = task.plan.output_partitioning().partition_count();
        let schema = task.plan.schema();
        let mut streams = vec![run_partition(task, context, 0, ticket, ignore())?];
        for partition in 1..partitions {
            let (task, context) = self.stage_task(ticket, partition)?;
            streams.push(run_partition(task, context, partition, ticket, ignore())?);
        }
        if let [_] = streams.as_slice() {
            return Ok(streams.remove(0));
        }
        let mut merged = RecordBatchReceiverStreamBuilder::new(schema, 2 * streams.len());
        for mut stream in streams {
            let sender = merged.tx();
            merged.spawn(async move {
                while let Some(batch) = stream.next().await {
                    if sender.send(batch).await.is_err() {
                        break;
                    }
                }
                Ok(())
            });
        }
        Ok(merged.build())
    }

    /// Notes that the rows of `task` go to a client, refusing a second read: reading them
    /// again would run the stages below again, for partitions of theirs nobody asks.
    fn claim_result(&self, task: &TaskTicket) -> Result<()> {
        let key = (task.query.clone(), task.stage, task.task);
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks
            .results
            .retain(|_, read| read.elapsed() < IDLE_TASK_LIMIT);
        if tasks.results.insert(key, Instant::now()).is_some() {
            return Err(Error::invalid(format!(
                "the rows of task {} of query {} were already read (a result ticket is read \
                 once): run the query again",
                task.task, task.query
            )));
        }
        Ok(())
    }

    /// The running plan of the ticket's stage task, started by the first of its partitions
    /// asked for and dropped once every partition has been.
    fn stage_task(
        &self,
        ticket: &TaskTicket,
        partition: usize,
    ) -> Result<(Arc<Harvest>, Arc<TaskContext>)> {
        let key = (ticket.query.clone(), ticket.stage, ticket.task);
        let mut guard = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        let tasks = &mut *guard;
        let now = Instant::now();
        tasks
            .running
            .retain(|_, task| now.duration_since(task.touched) < IDLE_TASK_LIMIT);
        tasks
            .ended
            .retain(|_, ended| now.duration_since(*ended) < IDLE_TASK_LIMIT);
        if tasks.ended.contains_key(&ticket.query) {
            return Err(Error::new(
                ErrorKind::Cancelled,
                format!("query {} has ended", ticket.query),
            ));
        }
        let task = match tasks.running.entry(key.clone()) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                let (plan, context) = self.decode(ticket)?;
                let partitions = plan.output_partitioning().partition_count();
                entry.insert(RunningTask {
                    plan: Arc::new(Harvest {
                        plan,
                        spilled: Arc::clone(&self.spilled),
                        reported: Reported::default(),
                    }),
                    context,
                    served: vec![false; partitions],
                    touched: now,
                })
            }
        };
        check_partition(&task.plan.plan, partition)?;
        if std::mem::replace(&mut task.served[partition], true) {
            return Err(Error::invalid(format!(
                "partition {partition} of stage {} task {} of query {} was already asked for",
                ticket.stage, ticket.task, ticket.query
            )));
        }
        task.touched = now;
        let running = (Arc::clone(&task.plan), Arc::clone(&task.context));
        if task.served.iter().all(|served| *served) {
            tasks.running.remove(&key);
        }
        Ok(running)
    }
}

impl LocalTasks for Worker {
    fn serve(&self, ticket: TaskTicket, on_end: OnEnd) -> Result<SendableRecordBatchStream> {
        Worker::serve(self, ticket, on_end)
    }
}

/// Runs one partition of a stage task, reporting to `on_end`.
fn run_partition(
    task: Arc<Harvest>,
    context: Arc<TaskContext>,
    partition: usize,
    ticket: &TaskTicket,
    on_end: OnEnd,
) -> Result<SendableRecordBatchStream> {
    // Polled inside `task` (the distributed query's id, stage, task, partition).
    let span = tracing::info_span!(
        target: "flotilla::task",
        "task",
        query = %ticket.query,
        stage = ticket.stage,
        task = ticket.task,
        partition
    );
    let inner = span.in_scope(|| task.plan.execute(partition, context))?;
    let reporting = Reporting {
        inner,
        task,
        query: ticket.query.clone(),
        stage: ticket.stage,
        task_index: ticket.task,
        partition,
        rows: 0,
        started: Instant::now(),
        on_end: Some(on_end),
    };
    Ok(Box::pin(InSpan::new(reporting, span)))
}

/// A stage task partition's stream: keeps the task's plan (and its metrics) alive until it
/// ends, then reports its figures and those of the stages below since the task's last report.
struct Reporting {
    inner: SendableRecordBatchStream,
    task: Arc<Harvest>,
    /// The distributed query's id, its stage, the task and the partition, for the log
    /// (`flotilla::task`).
    query: String,
    stage: u32,
    task_index: u32,
    partition: usize,
    rows: u64,
    started: Instant,
    on_end: Option<OnEnd>,
}

impl futures::Stream for Reporting {
    type Item = DfResult<RecordBatch>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let polled = self.inner.poll_next_unpin(cx);
        match &polled {
            std::task::Poll::Ready(Some(Ok(batch))) => self.rows += batch.num_rows() as u64,
            std::task::Poll::Ready(Some(Err(e))) => tracing::warn!(
                target: "flotilla::task",
                query = %self.query,
                stage = self.stage,
                task = self.task_index,
                partition = self.partition,
                error = %e,
                "a stage task failed"
            ),
            std::task::Poll::Ready(None) => {
                tracing::debug!(
                    target: "flotilla::task",
                    query = %self.query,
                    stage = self.stage,
                    task = self.task_index,
                    partition = self.partition,
                    rows = self.rows,
                    seconds = self.started.elapsed().as_secs_f64(),
                    "a stage task's partition ended"
                );
                if let Some(on_end) = self.on_end.take() {
                    let mut stages = vec![StageFigures {
                        stage: self.stage,
                        rows: self.rows,
                        bytes: 0,
                        nanos: u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX),
                        streams: 1,
                    }];
                    stages.extend(self.task.reported.since_last(&self.task.plan));
                    on_end(StageReport { stages });
                }
            }
            _ => {}
        }
        polled
    }
}

impl datafusion::physical_plan::RecordBatchStream for Reporting {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

fn check_partition(plan: &Arc<dyn ExecutionPlan>, partition: usize) -> Result<()> {
    let partitions = plan.output_partitioning().partition_count();
    if partition >= partitions {
        return Err(Error::invalid(format!(
            "partition {partition} asked of a plan with {partitions}"
        )));
    }
    Ok(())
}
