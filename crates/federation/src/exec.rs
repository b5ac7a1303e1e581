//! The federated scan: a sub-plan replaced by the SQL that runs it in one source.
//!
//! ```text
//!   logical:  FederatedScan { source, sql, schema }      (a UserDefinedLogicalNode, a leaf)
//!   physical: FederatedScanExec ──execute──▶ Source::execute(sql) ──▶ stream of batches
//!                  │ metrics: output_rows, bytes_received, elapsed_compute (EXPLAIN ANALYZE)
//! ```

use crate::learn::Expected;
use crate::source::{Source, SplitKey};
use crate::sql::OutputColumns;
use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::Session;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchemaRef, Result, Statistics, internal_err};
use datafusion::config::ConfigOptions;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{
    Expr, LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::StatisticsArgs;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::filter_pushdown::{
    ChildPushdownResult, FilterPushdownPhase, FilterPushdownPropagation, PushedDown,
};
use datafusion::physical_plan::joins::HashJoinExec;
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet, Time,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};
use flotilla_common::metrics::{StatementMetrics, metrics};
use flotilla_common::spans::InSpan;
use futures::{Stream, StreamExt, TryStreamExt};
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

/// A logical leaf: `sql` runs in `source` and yields rows with `schema`.
#[derive(Debug, Clone)]
pub struct FederatedScan {
    pub source: Arc<dyn Source>,
    pub sql: String,
    pub schema: DFSchemaRef,
    /// What the scan returns, estimated from its table's statistics (a scan of one table, with
    /// its filters, projections and limit); `None` for anything else.
    pub statistics: Option<Arc<Statistics>>,
    /// The names of `sql`'s result columns (for conditions added around it).
    pub columns: Option<OutputColumns>,
    /// The key of the one table read, when it can be read in ranges, and the sub-plan the SQL
    /// was written from (to write one statement per range).
    pub split: Option<(SplitKey, Arc<LogicalPlan>)>,
    /// Why the cut is here, with the estimates it compared (`flotilla.federation.pushdown =
    /// cost`), for `EXPLAIN`.
    pub choice: Option<String>,
    /// What the cost model estimated the scan to take, from its source's figures (what the
    /// source learns from, see [`crate::learn`]).
    pub expected: Option<Expected>,
    /// The rows the cut estimated it returns (its table's sample applied to its filters, where
    /// there is one): what the number of key ranges it is read in follows, as the cut priced
    /// them.
    pub estimated_rows: usize,
}

impl PartialEq for FederatedScan {
    fn eq(&self, other: &Self) -> bool {
        self.source.name() == other.source.name()
            && self.sql == other.sql
            && self.schema == other.schema
    }
}

impl Eq for FederatedScan {}

impl Hash for FederatedScan {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.source.name().hash(state);
        self.sql.hash(state);
    }
}

impl PartialOrd for FederatedScan {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some((self.source.name(), &self.sql).cmp(&(other.source.name(), &other.sql)))
    }
}

impl UserDefinedLogicalNodeCore for FederatedScan {
    fn name(&self) -> &str {
        "FederatedScan"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "FederatedScan: source={}, sql={}",
            self.source.name(),
            self.sql
        )?;
        if let Some(choice) = &self.choice {
            write!(f, ", cost={choice}")?;
        }
        Ok(())
    }

    fn with_exprs_and_inputs(&self, exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> Result<Self> {
        if !exprs.is_empty() || !inputs.is_empty() {
            return internal_err!("FederatedScan has no expressions and no inputs");
        }
        Ok(self.clone())
    }
}

/// Plans [`FederatedScan`] nodes as [`FederatedScanExec`].
#[derive(Debug, Default)]
pub struct FederatedScanPlanner;

#[async_trait]
impl ExtensionPlanner for FederatedScanPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        _physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn Session,
        _planning_ctx: &datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(scan) = node.as_any().downcast_ref::<FederatedScan>() else {
            return Ok(None);
        };
        let schema = Arc::new(scan.schema.as_arrow().clone());
        let mut exec = FederatedScanExec::new(Arc::clone(&scan.source), scan.sql.clone(), schema)
            .with_statistics(scan.statistics.clone())
            .with_choice(scan.choice.clone())
            .with_expected(scan.expected);
        if let Some((key, plan)) = &scan.split {
            let n =
                crate::split::partition_count(session.config_options(), Some(scan.estimated_rows))
                    .min(scan.source.max_connections().unwrap_or(usize::MAX));
            exec = exec.with_partitions(crate::split::split_statements(
                scan.source.as_ref(),
                plan,
                key,
                n,
            ));
        }
        if let Some(columns) = &scan.columns {
            exec = exec.with_output_columns(columns.clone());
        }
        Ok(Some(Arc::new(exec)))
    }
}

/// Runs one SQL statement in a source and streams its rows.
#[derive(Debug)]
pub struct FederatedScanExec {
    source: Arc<dyn Source>,
    /// The statement sent to the source, exactly.
    sql: String,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
    /// What the scan returns, estimated from its table's statistics, when known.
    statistics: Option<Arc<Statistics>>,
    /// The names of `sql`'s result columns, when known: join keys can then be added.
    output: Option<OutputColumns>,
    /// Dynamic filters of hash joins above (see [`crate::keys`]).
    join_filters: Vec<Arc<dyn PhysicalExpr>>,
    /// One statement per partition, with the key range it reads, when the scan reads key ranges
    /// in parallel; empty: one partition running `sql`.
    partitions: Vec<(String, String)>,
    /// The statements sent with join keys, by partition, once sent (for `EXPLAIN ANALYZE`).
    sent: Arc<Mutex<BTreeMap<usize, String>>>,
    /// Why the cut is here (see [`FederatedScan::choice`]).
    choice: Option<String>,
    /// See [`FederatedScan::expected`].
    expected: Option<Expected>,
}

impl FederatedScanExec {
    pub fn new(source: Arc<dyn Source>, sql: String, schema: SchemaRef) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Self {
            source,
            sql,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
            statistics: None,
            output: None,
            join_filters: Vec::new(),
            partitions: Vec::new(),
            sent: Arc::new(Mutex::new(BTreeMap::new())),
            choice: None,
            expected: None,
        }
    }

    /// What the cost model estimated the scan to take (see [`FederatedScan::expected`]).
    pub fn with_expected(mut self, expected: Option<Expected>) -> Self {
        self.expected = expected;
        self
    }

    /// See [`FederatedScan::expected`].
    pub fn expected(&self) -> Option<Expected> {
        self.expected
    }

    /// Notes why the cut is here, for `EXPLAIN`.
    pub fn with_choice(mut self, choice: Option<String>) -> Self {
        self.choice = choice;
        self
    }

    /// Reads in parallel: one partition per `(key range, statement)`.
    pub fn with_partitions(mut self, partitions: Vec<(String, String)>) -> Self {
        if partitions.len() > 1 {
            let properties = PlanProperties::new(
                EquivalenceProperties::new(self.schema()),
                Partitioning::UnknownPartitioning(partitions.len()),
                EmissionType::Incremental,
                Boundedness::Bounded,
            );
            self.properties = Arc::new(properties);
            self.partitions = partitions;
        }
        self
    }

    /// The statement partition `partition` runs.
    fn statement(&self, partition: usize) -> &str {
        self.partitions
            .get(partition)
            .map_or(self.sql.as_str(), |(_, sql)| sql.as_str())
    }

    /// Names the result columns of the SQL, so join keys can be added around it.
    pub fn with_output_columns(mut self, columns: OutputColumns) -> Self {
        self.output = (columns.names.len() == self.schema().fields().len()).then_some(columns);
        self
    }

    /// The dynamic filters of hash joins this scan adds to its SQL when it starts.
    pub fn join_filters(&self) -> &[Arc<dyn PhysicalExpr>] {
        &self.join_filters
    }

    /// This scan with `filters` as its join filters.
    pub fn with_join_filters(&self, filters: Vec<Arc<dyn PhysicalExpr>>) -> Self {
        let mut scan =
            FederatedScanExec::new(Arc::clone(&self.source), self.sql.clone(), self.schema())
                .with_statistics(self.statistics.clone())
                .with_choice(self.choice.clone())
                .with_expected(self.expected);
        scan.output = self.output.clone();
        scan.join_filters = filters;
        scan.with_partitions(self.partitions.clone())
    }

    /// The statements with join keys, if sent (partitions separated by ` | `).
    pub fn sent_sql(&self) -> Option<String> {
        let sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        (!sent.is_empty()).then(|| sent.values().cloned().collect::<Vec<_>>().join(" | "))
    }

    /// Tells DataFusion's planner what the scan returns (rows, and per column distinct and
    /// NULL counts, bounds and sizes), as far as the source's statistics say.
    pub fn with_statistics(mut self, statistics: Option<Arc<Statistics>>) -> Self {
        self.statistics = statistics;
        self
    }

    /// Tells DataFusion's planner how many rows the scan returns.
    pub fn with_row_estimate(self, rows: Option<usize>) -> Self {
        let statistics = rows.map(|rows| {
            Arc::new(
                Statistics::new_unknown(&self.schema()).with_num_rows(Precision::Inexact(rows)),
            )
        });
        self.with_statistics(statistics)
    }

    /// The estimated rows, when known.
    pub fn row_estimate(&self) -> Option<usize> {
        crate::stats::rows(self.statistics.as_deref())
    }

    /// The names of the SQL's result columns, when known.
    pub fn output_columns(&self) -> Option<&OutputColumns> {
        self.output.as_ref()
    }

    /// The key ranges and statements of a scan read in parallel (empty: one statement).
    pub fn partitions(&self) -> &[(String, String)] {
        &self.partitions
    }

    /// The SQL this scan sends.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The source it sends it to.
    pub fn source(&self) -> &Arc<dyn Source> {
        &self.source
    }
}

impl DisplayAs for FederatedScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(
                    f,
                    "FederatedScanExec: source={}, sql={}",
                    self.source.name(),
                    self.sql
                )?;
                if self.partitions.len() > 1 {
                    let ranges: Vec<&str> = self
                        .partitions
                        .iter()
                        .map(|(range, _)| range.as_str())
                        .collect();
                    write!(f, ", partitions=[{}]", ranges.join("; "))?;
                }
                if !self.join_filters.is_empty() {
                    let filters: Vec<String> = self
                        .join_filters
                        .iter()
                        .map(|e| shortened(&e.to_string(), 300))
                        .collect();
                    write!(f, ", join_keys=[{}]", filters.join(", "))?;
                }
                if let Some(sent) = self.sent_sql() {
                    write!(f, ", sent={}", shortened(&sent, 2_000))?;
                }
                if let Some(choice) = &self.choice {
                    write!(f, ", cost={choice}")?;
                }
                Ok(())
            }
            DisplayFormatType::TreeRender => {
                writeln!(f, "source={}", self.source.name())?;
                write!(f, "sql={}", self.sql)?;
                if !self.join_filters.is_empty() {
                    write!(f, "\njoin_keys=yes")?;
                }
                Ok(())
            }
        }
    }
}

impl FederatedScanExec {
    /// A stream that waits for the join filters, then sends the SQL with the join keys added.
    fn keyed_stream(
        &self,
        partition: usize,
        columns: &OutputColumns,
        batch_size: usize,
    ) -> SendableRecordBatchStream {
        let source = Arc::clone(&self.source);
        let schema = self.schema();
        let sql = self.statement(partition).to_string();
        let columns = columns.clone();
        let filters = self.join_filters.clone();
        let sent = Arc::clone(&self.sent);
        let start = async move {
            // The build side finishing is what makes the filter complete; if that never happens
            // (a plan shape DataFusion finishes differently), the scan goes ahead without keys.
            let waited = tokio::time::timeout(KEY_WAIT, crate::keys::wait_for(&filters)).await;
            let restricted = waited.ok().and_then(|()| {
                crate::keys::restricted_sql(source.as_ref(), &sql, &schema, &columns, &filters)
            });
            let statement = restricted.unwrap_or(sql);
            sent.lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(partition, statement.clone());
            source.execute(&statement, Arc::clone(&schema), batch_size)
        };
        let schema = self.schema();
        Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::once(start).try_flatten(),
        ))
    }
}

/// `text` cut after `max` characters (a join's IN list may hold thousands of keys).
fn shortened(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{} … ({} characters)", &text[..end], text.chars().count()),
        None => text.to_string(),
    }
}

/// How long a scan waits for a hash join's build side before it reads without the join keys.
const KEY_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

impl ExecutionPlan for FederatedScanExec {
    fn name(&self) -> &'static str {
        "FederatedScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        // A hash join computes its dynamic filter only when its probe side shows it.
        for filter in &self.join_filters {
            if f(filter)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn handle_child_pushdown_result(
        &self,
        phase: FilterPushdownPhase,
        child_pushdown_result: ChildPushdownResult,
        _config: &ConfigOptions,
    ) -> Result<FilterPushdownPropagation<Arc<dyn ExecutionPlan>>> {
        let filters: Vec<Arc<dyn PhysicalExpr>> = child_pushdown_result
            .parent_filters
            .into_iter()
            .map(|f| f.filter)
            .collect();
        // Nothing is applied exactly here: the operators above keep filtering.
        let unsupported = vec![PushedDown::No; filters.len()];
        let dynamic: Vec<_> = if phase == FilterPushdownPhase::Post && self.output.is_some() {
            filters
                .into_iter()
                .filter(crate::keys::is_dynamic)
                .collect()
        } else {
            Vec::new()
        };
        if dynamic.is_empty() {
            return Ok(FilterPushdownPropagation::with_parent_pushdown_result(
                unsupported,
            ));
        }
        let mut kept = self.join_filters.clone();
        kept.extend(dynamic);
        Ok(FilterPushdownPropagation {
            filters: unsupported,
            updated_node: Some(Arc::new(self.with_join_filters(kept))),
        })
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !children.is_empty() {
            return internal_err!(
                "FederatedScanExec is a leaf; got {} children",
                children.len()
            );
        }
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let count = self.partitions.len().max(1);
        if partition >= count {
            return internal_err!(
                "FederatedScanExec has {count} partitions; asked for {partition}"
            );
        }
        let batch_size = context.session_config().batch_size();
        let inner = match &self.output {
            Some(columns) if !self.join_filters.is_empty() => {
                self.keyed_stream(partition, columns, batch_size)
            }
            _ => self
                .source
                .execute(self.statement(partition), self.schema(), batch_size)?,
        };
        // The statements of a scan read as key ranges run side by side, each doing its share
        // of the database's work; the decoding of all of them shares this node's cores. So the
        // cut priced the scan's time (`Cut::pushed`), and so each statement takes about that.
        let learning = match (self.source.learned(), self.expected) {
            (Some(_), Some(expected)) => Some((
                Arc::clone(&self.source),
                Expected {
                    remote: expected.remote / count as f64,
                    fetch: expected.fetch,
                },
            )),
            _ => None,
        };
        // Polled inside `statement` (source, partition, and the id of the query of the task
        // context): its log lines carry them.
        let span = tracing::info_span!(
            target: "flotilla::statement",
            "statement",
            source = %self.source.name(),
            partition,
            query = %flotilla_common::memory::query_of(&context),
        );
        let metered = MeteredStream {
            inner,
            learning,
            source: self.source.name().to_string(),
            statement: self.statement(partition).to_string(),
            partition,
            sent: Arc::clone(&self.sent),
            rows: 0,
            node: metrics().statement(self.source.name()),
            baseline: BaselineMetrics::new(&self.metrics, partition),
            bytes: MetricBuilder::new(&self.metrics).counter("bytes_received", partition),
            remote_time: MetricBuilder::new(&self.metrics).subset_time("source_time", partition),
            started: Some(Instant::now()),
        };
        Ok(Box::pin(InSpan::new(metered, span)))
    }

    fn statistics_from_inputs(
        &self,
        _input_stats: &[Arc<Statistics>],
        args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        let Some(statistics) = &self.statistics else {
            return Ok(Arc::new(Statistics::new_unknown(&self.schema())));
        };
        match args.partition() {
            None => Ok(Arc::clone(statistics)),
            // One key range of several: its share of the rows.
            Some(_) => {
                let n = self.properties.partitioning.partition_count().max(1);
                let rows = statistics.num_rows.get_value().map_or(0, |rows| rows / n);
                Ok(Arc::new(crate::stats::keep_rows(statistics, rows)))
            }
        }
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// Counts rows, bytes and time of a remote stream. `source_time` is the wall time from the
/// start of the statement to its last row; `elapsed_compute` only the time spent polling. The
/// statement's end is logged (`flotilla::statement`: debug, or warn when it failed), and a
/// statement that ran as planned to its end is an observation for its source's learning.
struct MeteredStream {
    inner: SendableRecordBatchStream,
    /// The source, when it learns, and what this statement was estimated to take.
    learning: Option<(Arc<dyn Source>, Expected)>,
    /// The source's name, the statement planned and the scan's statements sent with join
    /// keys (by partition), for the log.
    source: String,
    statement: String,
    partition: usize,
    sent: Arc<Mutex<BTreeMap<usize, String>>>,
    rows: u64,
    /// The node's metrics of the statement's source (`flotilla_common::metrics`).
    node: StatementMetrics,
    baseline: BaselineMetrics,
    bytes: Count,
    remote_time: Time,
    /// Set until the stream has ended.
    started: Option<Instant>,
}

impl Stream for MeteredStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let elapsed = self.baseline.elapsed_compute().clone();
        let timer = elapsed.timer();
        let this = &mut *self;
        let (polled, produced) = crate::stream::producer_time(|| this.inner.poll_next_unpin(cx));
        timer.done();
        match &polled {
            Poll::Ready(Some(Ok(batch))) => {
                let bytes = batch.get_array_memory_size();
                self.bytes.add(bytes);
                self.rows += batch.num_rows() as u64;
                self.node.rows.inc_by(batch.num_rows() as u64);
                self.node.bytes.inc_by(bytes as u64);
            }
            Poll::Ready(ended) => {
                if let Some(started) = self.started.take() {
                    self.remote_time.add_duration(started.elapsed());
                    self.node.duration.observe(started.elapsed().as_secs_f64());
                    let sql = {
                        let sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
                        shortened(sent.get(&self.partition).unwrap_or(&self.statement), 2_000)
                    };
                    let seconds = started.elapsed().as_secs_f64();
                    match ended {
                        Some(Err(e)) => {
                            self.node.errors.inc();
                            tracing::warn!(
                                target: "flotilla::statement",
                                source = %self.source,
                                seconds,
                                sql,
                                error = %e,
                                "a database statement failed"
                            );
                        }
                        _ => tracing::debug!(
                            target: "flotilla::statement",
                            source = %self.source,
                            rows = self.rows,
                            seconds,
                            sql,
                            "a database statement ended"
                        ),
                    }
                    self.learn(ended.is_none(), produced);
                }
            }
            Poll::Pending => {}
        }
        self.baseline.record_poll(polled)
    }
}

impl MeteredStream {
    /// Tells the source what the statement took, if it ran as planned (`complete`: to its end,
    /// without error; and not with join keys, which make it read less than estimated).
    fn learn(&self, complete: bool, produced: Option<std::time::Duration>) {
        let Some((source, expected)) = &self.learning else {
            return;
        };
        let keyed = self
            .sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&self.partition);
        if let (true, false, Some(produced), Some(learned)) =
            (complete, keyed, produced, source.learned())
        {
            learned.observe(*expected, produced.as_secs_f64());
            let (remote, fetch) = learned
                .fit()
                .map_or((1.0, 1.0), |fit| (fit.remote, fit.fetch));
            metrics().learned(source.name(), learned.statements(), remote, fetch);
        }
    }
}

impl RecordBatchStream for MeteredStream {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

/// Keeps, in every federated scan, only the dynamic filters that hash joins produce, and none
/// when `flotilla.federation.join_key_pushdown` is off.
#[derive(Debug, Default)]
pub struct JoinKeyPushdown;

impl PhysicalOptimizerRule for JoinKeyPushdown {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let enabled = flotilla_common::options::section::<crate::config::FederationConfig>(config)
            .is_none_or(|c| c.pushdown != crate::config::Pushdown::None && c.join_key_pushdown);
        let mut joins = HashSet::new();
        if enabled {
            plan.apply(|node| {
                if node.downcast_ref::<HashJoinExec>().is_some() {
                    joins.extend(
                        node.dynamic_expressions_produced()
                            .iter()
                            .filter_map(|filter| filter.expression_id()),
                    );
                }
                Ok(TreeNodeRecursion::Continue)
            })?;
        }
        plan.transform_up(|node| {
            let Some(scan) = node.downcast_ref::<FederatedScanExec>() else {
                return Ok(Transformed::no(node));
            };
            if scan.join_filters().is_empty() {
                return Ok(Transformed::no(node));
            }
            let kept: Vec<Arc<dyn PhysicalExpr>> = scan
                .join_filters()
                .iter()
                .filter(|f| f.expression_id().is_some_and(|id| joins.contains(&id)))
                .cloned()
                .collect();
            if kept.len() == scan.join_filters().len() {
                return Ok(Transformed::no(node));
            }
            Ok(Transformed::yes(Arc::new(scan.with_join_filters(kept))))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "flotilla_join_key_pushdown"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
