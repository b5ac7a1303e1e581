//! The root of a distributed plan, on the node that planned it: ends the query on every
//! worker when its streams are done, and runs the query again on the live nodes when a worker
//! dies under it (`distributed.retry`).
//!
//! ```text
//!  DistributedExec ── execute ──▶ root stage (NetworkCoalesceExec / NetworkShuffleExec …)
//!        │ a stream fails: ask the query's workers whether they are there (2 s at most)
//!        │   none lost ──────────────▶ the error, as it is (unless the network broke:
//!        │                              run again; a worker another could not reach is left
//!        │                              out of the next runs, see `avoid`)
//!        │   lost, rows returned ────▶ the error, naming the node (the caller has part of them)
//!        │   lost, nothing returned ─▶ Replan: stages cut again over the live nodes, new query
//!        ▼                              id; the old query is ended on its workers; run again
//! ```

use datafusion::common::Result;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
};
use flotilla_common::ErrorKind;
use futures::StreamExt;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::{NetworkCoalesceExec, NetworkContext, only_child};
use crate::client::{end_query, unreachable_worker};

/// Queries this process ran again because a worker died under them.
static RUN_AGAIN: AtomicU64 = AtomicU64::new(0);

/// How many times, since the process started, a query was run again because a worker died
/// under it.
pub fn queries_run_again() -> u64 {
    RUN_AGAIN.load(Ordering::Relaxed)
}

/// Plans a query again over the workers alive now, after one died under it.
pub trait Replan: fmt::Debug + Send + Sync {
    /// The query's `attempt`-th run (2 for the first retry).
    ///
    /// # Errors
    /// When the plan cannot be made.
    /// `avoid`: workers to leave out although they answer this node (another worker could
    /// not reach them).
    fn replan(&self, attempt: usize, avoid: &[String]) -> Result<Attempt>;
}

/// One run of a query: its root stage, query id and workers (none: it runs on this node).
#[derive(Debug)]
pub struct Attempt {
    pub plan: Arc<dyn ExecutionPlan>,
    pub query: String,
    pub workers: Vec<String>,
}

/// The root of a distributed plan where it was planned. When the last stream of an execution
/// is dropped — the query finished, failed or was cancelled — it tells every worker of the
/// query to stop and drop the query's tasks, so nothing keeps running or holding memory.
///
/// An execution spans all output partitions: until each has been started once the plan
/// itself holds the end of the query back (a caller may start partition 1 after partition
/// 0's stream is done; ending the query then would make the workers refuse the rest). A plan
/// dropped before all its partitions started ends the query too.
#[derive(Debug)]
pub struct DistributedExec {
    input: Arc<dyn ExecutionPlan>,
    query: String,
    workers: Vec<String>,
    /// Flight SQL clients may read the rows from the last stage's workers (when the plan
    /// only gathers there; see the `results` module).
    results_from_workers: bool,
    /// Plans the query again when a worker dies under it, up to this many runs in all.
    retry: Option<(Arc<dyn Replan>, usize)>,
    execution: Mutex<Execution>,
}

/// The end-of-query guard of the current execution of a [`DistributedExec`].
#[derive(Debug, Default)]
struct Execution {
    /// Shared by the streams of the execution; the query ends when the last one is gone.
    guard: Weak<EndQuery>,
    /// Held by the plan while some partitions have not been started yet.
    pending: Option<Arc<EndQuery>>,
    started: usize,
}

impl DistributedExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, query: String, workers: Vec<String>) -> Self {
        Self {
            input,
            query,
            workers,
            results_from_workers: false,
            retry: None,
            execution: Mutex::new(Execution::default()),
        }
    }

    /// Runs the query again, planned by `replan`, when a worker dies before any row was
    /// returned — up to `max_attempts` runs in all. Only for a plan of one output partition
    /// (the planner gathers the root when retries are on).
    pub fn with_retry(mut self, replan: Arc<dyn Replan>, max_attempts: usize) -> Self {
        self.retry = Some((replan, max_attempts.max(1)));
        self
    }

    /// Lets Flight SQL clients read the rows from the last stage's workers when the plan only
    /// gathers there (the planner sets it from `distributed.results_from_workers`).
    pub fn with_results_from_workers(mut self, allowed: bool) -> Self {
        self.results_from_workers = allowed;
        self
    }

    /// Whether Flight SQL clients may read the rows from the last stage's workers (see
    /// [`Self::with_results_from_workers`]).
    pub fn results_from_workers(&self) -> bool {
        self.results_from_workers
    }

    /// The gather whose tasks Flight SQL clients read from, when this plan allows it and
    /// nothing but the gather is left above the last stage.
    pub fn client_gather(&self) -> Option<&NetworkCoalesceExec> {
        if !self.results_from_workers {
            return None;
        }
        let mut below = self.children().into_iter().next()?;
        if let Some(coalesce) = below.downcast_ref::<CoalescePartitionsExec>()
            && coalesce.fetch().is_none()
        {
            below = coalesce.children().into_iter().next()?;
        }
        below.downcast_ref::<NetworkCoalesceExec>()
    }

    pub fn query(&self) -> &str {
        &self.query
    }

    /// The root stage's plan.
    pub fn input(&self) -> &Arc<dyn ExecutionPlan> {
        &self.input
    }

    pub fn workers(&self) -> &[String] {
        &self.workers
    }

    fn end_guard(&self, context: &TaskContext) -> Result<Arc<EndQuery>> {
        let mut execution = self.execution.lock().unwrap_or_else(|e| e.into_inner());
        let guard = match execution.guard.upgrade() {
            Some(guard) => guard,
            None => {
                let guard = Arc::new(EndQuery {
                    query: self.query.clone(),
                    workers: self.workers.clone(),
                    network: NetworkContext::of(context)?,
                });
                *execution = Execution {
                    guard: Arc::downgrade(&guard),
                    pending: Some(Arc::clone(&guard)),
                    started: 0,
                };
                guard
            }
        };
        execution.started += 1;
        if execution.started >= self.input.output_partitioning().partition_count() {
            execution.pending = None;
        }
        Ok(guard)
    }
}

/// Sends the end of a query to its workers when dropped.
#[derive(Debug)]
struct EndQuery {
    query: String,
    workers: Vec<String>,
    network: Arc<NetworkContext>,
}

impl Drop for EndQuery {
    fn drop(&mut self) {
        end_query(&self.network.channels, &self.query, &self.workers);
    }
}

impl DisplayAs for DistributedExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "DistributedExec: workers=[{}]", self.workers.join(", "))?;
        if let Some(gather) = self.client_gather() {
            write!(
                f,
                ", flight_sql_results_from=[{}]",
                gather.stage().workers.join(", ")
            )?;
        }
        Ok(())
    }
}

impl ExecutionPlan for DistributedExec {
    fn name(&self) -> &'static str {
        "DistributedExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
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
        let input = only_child(&children, "DistributedExec")?;
        let mut exec = Self::new(input, self.query.clone(), self.workers.clone())
            .with_results_from_workers(self.results_from_workers);
        exec.retry.clone_from(&self.retry);
        Ok(Arc::new(exec))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let guard = self.end_guard(&context)?;
        tracing::debug!(
            target: "flotilla::task",
            query = %self.query,
            client_query = %flotilla_common::memory::query_of(&context),
            workers = %self.workers.join(","),
            partition,
            "a distributed query starts"
        );
        let stream = self.input.execute(partition, Arc::clone(&context))?;
        let schema = stream.schema();
        let run = Run {
            stream,
            guard,
            workers: self.workers.clone(),
            attempt: 1,
            returned_rows: false,
            over: false,
            avoid: Vec::new(),
        };
        let retry = match &self.retry {
            Some((replan, max_attempts))
                if self.properties().partitioning.partition_count() == 1 =>
            {
                Some((Arc::clone(replan), *max_attempts))
            }
            _ => None,
        };
        let guarded = futures::stream::unfold(
            (run, retry, context),
            |(mut run, retry, context)| async move {
                let item = run.next(retry.as_ref(), &context).await?;
                Some((item, (run, retry, context)))
            },
        );
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, guarded)))
    }
}

/// One execution of a [`DistributedExec`] partition, across its runs.
struct Run {
    stream: SendableRecordBatchStream,
    /// Ends the current run's query on its workers when dropped.
    guard: Arc<EndQuery>,
    workers: Vec<String>,
    attempt: usize,
    /// Some rows went to the caller: running again would return them twice.
    returned_rows: bool,
    /// An error was returned: the stream is over.
    over: bool,
    /// Workers another worker could not reach while this node could (a link between two
    /// workers cut): the next runs leave them out.
    avoid: Vec<String>,
}

impl Run {
    /// The next item, running the query again when a worker died and nothing was returned.
    async fn next(
        &mut self,
        retry: Option<&(Arc<dyn Replan>, usize)>,
        context: &Arc<TaskContext>,
    ) -> Option<Result<datafusion::arrow::array::RecordBatch>> {
        if self.over {
            return None;
        }
        loop {
            let error = match self.stream.next().await? {
                Ok(batch) => {
                    self.returned_rows |= batch.num_rows() > 0;
                    return Some(Ok(batch));
                }
                Err(error) => error,
            };
            // A failed query may have lost a worker that only another worker saw die: ask
            // them all before going on, so the next plan leaves it out.
            let channels = Arc::clone(&self.guard.network.channels);
            channels.check(&self.workers).await;
            let lost: Vec<String> = self
                .workers
                .iter()
                .filter(|worker| !channels.is_up(worker))
                .cloned()
                .collect();
            // A stream between workers can also break while every node is still there (reset
            // as the cluster reacts to a node that died): a failure the network layer reports
            // is worth another run too, as long as nothing was returned.
            let broken = flotilla_common::error::kind_of(&error) == ErrorKind::Unavailable;
            // Every node answers here, but a worker could not reach one of them: run again
            // without that one (the cluster is split between workers, not from this node).
            if broken
                && lost.is_empty()
                && let Some(worker) = unreachable_worker(&error.to_string())
                && self.workers.iter().any(|w| w == worker)
                && !self.avoid.iter().any(|w| w == worker)
            {
                self.avoid.push(worker.to_string());
            }
            if lost.is_empty() && !broken {
                self.over = true;
                if self.attempt > 1 {
                    return Some(Err(error.context(format!(
                        "run {} of the query (run again after a node left)",
                        self.attempt
                    ))));
                }
                return Some(Err(error));
            }
            let not_again = match retry {
                None => Some("distributed.retry is none".to_string()),
                Some(_) if self.returned_rows => Some("rows had already been returned".to_string()),
                Some((_, max)) if self.attempt >= *max => {
                    Some(format!("distributed.max_attempts ({max}) reached"))
                }
                Some(_) => None,
            };
            let what = if let (true, Some(worker)) = (lost.is_empty(), self.avoid.last()) {
                format!("another node could not reach node {worker} during the query")
            } else if lost.is_empty() {
                "a connection between nodes broke during the query".to_string()
            } else {
                format!("node {} left the cluster during the query", lost.join(", "))
            };
            if let Some(why) = not_again {
                self.over = true;
                return Some(Err(error.context(format!("{what}; not run again: {why}"))));
            }
            let (replan, _) = retry?;
            match self.start_again(replan.as_ref(), context) {
                Ok(()) => continue,
                Err(again) => {
                    self.over = true;
                    return Some(Err(DataFusionError::Context(
                        format!("{what}; running it again failed: {again}"),
                        Box::new(error),
                    )));
                }
            }
        }
    }

    fn start_again(&mut self, replan: &dyn Replan, context: &Arc<TaskContext>) -> Result<()> {
        let attempt = replan.replan(self.attempt + 1, &self.avoid)?;
        let guard = Arc::new(EndQuery {
            query: attempt.query,
            workers: attempt.workers.clone(),
            network: Arc::clone(&self.guard.network),
        });
        let stream = attempt.plan.execute(0, Arc::clone(context))?;
        // The old run's tasks end on its workers as its guard goes.
        self.stream = stream;
        self.guard = guard;
        self.workers = attempt.workers;
        self.attempt += 1;
        RUN_AGAIN.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
