//! What the server remembers between calls: planned queries waiting for their `DoGet`, queries
//! streaming (so they can be cancelled), and prepared statements.
//!
//! ```text
//!  GetFlightInfo ──plan once──▶ waiting[handle] ──DoGet──▶ running[handle] ──end/drop──▶ gone
//!                                   │ (expires after ticket_ttl)   │
//!                                   └──── CancelFlightInfo ────────┘ (removed / stream ends
//!                                                                     with CANCELLED)
//! ```
//!
//! Handles are unguessable tokens and global to the node (a client that does not keep its
//! session token can still run a prepared statement across calls); each entry remembers the
//! session it was created in and runs there.

use crate::limits::Run;
use crate::session::{Session, lock, new_token};
use arrow_flight::FlightData;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};
use flotilla_common::activity;
use flotilla_common::{Error, ErrorKind};
use futures::Stream;
use futures::stream::BoxStream;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tonic::Status;

/// A query planned by `GetFlightInfo`, waiting for the `DoGet` of its ticket.
pub(crate) struct PlannedQuery {
    pub plan: Arc<dyn ExecutionPlan>,
    pub session: Arc<Session>,
    /// The one partition of `plan` this ticket reads when the result is served as an endpoint
    /// per partition; `None`: every partition, merged into one stream.
    pub partition: Option<usize>,
    /// What the tickets of one query share while any of them streams (its turn, its memory
    /// pool, its deadline): set by the first `DoGet`, and again once all have ended.
    pub run: Arc<tokio::sync::Mutex<Weak<Run>>>,
    /// The query as the node's console lists it (shared by its endpoints).
    pub listed: Arc<activity::Query>,
    expires: Instant,
}

/// A prepared statement: its logical plan (planned once, when prepared), its parameters and the
/// values bound to them.
pub(crate) struct Prepared {
    pub session: Arc<Session>,
    /// The statement as the client sent it (what the console lists its executions as).
    pub sql: String,
    pub plan: LogicalPlan,
    /// The schema of the rows it returns (for SQL `EXECUTE name(…)`, those of `name`).
    dataset: SchemaRef,
    /// One field per parameter (`$1`, `$2`, …), in order; `Null` where the type is unknown.
    pub parameters: SchemaRef,
    /// The rows of values bound with DoPut: a query runs with the one row, an update once per
    /// row.
    bound: Mutex<Vec<Vec<ScalarValue>>>,
    last_used: Mutex<Instant>,
}

/// The parameters `plan` takes, by position (`$1` first), with the types inferred for them
/// (`None` where nothing says). SQL's own `PREPARE name AS …` keeps its parameters for
/// `EXECUTE name(…)`: the statement itself takes none.
///
/// # Errors
/// A parameter that is not positional (`$name`).
pub fn positional_parameters(
    plan: &LogicalPlan,
) -> datafusion::error::Result<Vec<(usize, Option<DataType>)>> {
    if let LogicalPlan::Statement(_) = plan {
        return Ok(Vec::new());
    }
    let mut parameters = plan
        .get_parameter_types()?
        .into_iter()
        .map(|(name, data_type)| {
            let position = name
                .strip_prefix('$')
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| {
                    datafusion::error::DataFusionError::Plan(format!(
                        "parameter {name}: prepared statements take positional parameters \
                         ($1, $2, … or ?)"
                    ))
                })?;
            Ok((position, data_type))
        })
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    parameters.sort_by_key(|(position, _)| *position);
    Ok(parameters)
}

impl Prepared {
    /// Prepares `plan` in `session`, returning rows of schema `dataset`; finds its parameters.
    pub fn new(
        session: Arc<Session>,
        sql: String,
        plan: LogicalPlan,
        dataset: SchemaRef,
    ) -> datafusion::error::Result<Self> {
        let fields: Vec<Field> = positional_parameters(&plan)?
            .into_iter()
            .map(|(position, data_type)| {
                Field::new(
                    format!("${position}"),
                    data_type.unwrap_or(DataType::Null),
                    true,
                )
            })
            .collect();
        Ok(Self {
            session,
            sql,
            plan,
            dataset,
            parameters: Arc::new(Schema::new(fields)),
            bound: Mutex::new(Vec::new()),
            last_used: Mutex::new(Instant::now()),
        })
    }

    /// The schema of the rows the statement returns.
    pub fn dataset_schema(&self) -> SchemaRef {
        Arc::clone(&self.dataset)
    }

    /// Keeps rows of values for the next executions (replacing earlier ones).
    pub fn bind(&self, rows: Vec<Vec<ScalarValue>>) {
        *lock(&self.bound) = rows;
    }

    /// The rows bound with DoPut.
    pub fn bound_rows(&self) -> Vec<Vec<ScalarValue>> {
        lock(&self.bound).clone()
    }

    /// The plan with `values` (or the bound values when `None`) in place of its parameters.
    ///
    /// # Errors
    /// When the statement has parameters and none were bound, or a value does not fit its
    /// parameter's type.
    pub fn plan_with(
        &self,
        values: Option<Vec<ScalarValue>>,
    ) -> flotilla_common::Result<LogicalPlan> {
        *lock(&self.last_used) = Instant::now();
        if self.parameters.fields().is_empty() {
            return Ok(self.plan.clone());
        }
        let values = match values {
            Some(values) => values,
            None => {
                let mut rows = self.bound_rows();
                match rows.len() {
                    1 => rows.remove(0),
                    0 => {
                        return Err(Error::invalid(format!(
                            "the statement has {} parameter(s) and none are bound: bind them \
                             with DoPut first",
                            self.parameters.fields().len()
                        )));
                    }
                    n => {
                        return Err(Error::invalid(format!(
                            "a query runs with one row of parameters; {n} rows are bound"
                        )));
                    }
                }
            }
        };
        if values.len() != self.parameters.fields().len() {
            return Err(Error::invalid(format!(
                "the statement has {} parameter(s); {} value(s) were bound",
                self.parameters.fields().len(),
                values.len()
            )));
        }
        let mut cast = Vec::with_capacity(values.len());
        for (value, field) in values.into_iter().zip(self.parameters.fields()) {
            let wanted = field.data_type();
            let value = if wanted == &DataType::Null || &value.data_type() == wanted {
                value
            } else {
                value.cast_to(wanted).map_err(|e| {
                    Error::invalid(format!(
                        "parameter {}: the value {value} does not fit the type {wanted}: {e}",
                        field.name()
                    ))
                })?
            };
            cast.push(value);
        }
        self.plan
            .clone()
            .with_param_values(ParamValues::from(cast))
            .map_err(Error::from)
    }

    fn idle_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(*lock(&self.last_used))
    }
}

/// How long a node keeps what clients left behind.
#[derive(Debug, Clone)]
pub struct RegistryLimits {
    /// A ticket not fetched within this time expires (its plan is dropped).
    pub ticket_ttl: Duration,
    /// A prepared statement unused for this long is closed.
    pub prepared_idle_timeout: Duration,
}

impl Default for RegistryLimits {
    fn default() -> Self {
        Self {
            ticket_ttl: Duration::from_secs(5 * 60),
            prepared_idle_timeout: Duration::from_secs(30 * 60),
        }
    }
}

/// What came of a cancel request for one ticket.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Cancelled {
    /// The query had not started; it never will.
    BeforeStart,
    /// The query was streaming; its stream ends with `CANCELLED`.
    WhileRunning,
    /// No such query (unknown, finished or expired).
    Unknown,
}

type Running = Arc<Mutex<HashMap<String, oneshot::Sender<()>>>>;

/// Planned queries, running queries and prepared statements of a node.
pub(crate) struct Registry {
    limits: RegistryLimits,
    waiting: Mutex<HashMap<String, PlannedQuery>>,
    running: Running,
    prepared: Mutex<HashMap<String, Arc<Prepared>>>,
}

impl Registry {
    pub fn new(limits: RegistryLimits) -> Self {
        Self {
            limits,
            waiting: Mutex::new(HashMap::new()),
            running: Arc::new(Mutex::new(HashMap::new())),
            prepared: Mutex::new(HashMap::new()),
        }
    }

    /// Keeps a planned query and returns the handles its tickets carry: one, or with
    /// `per_partition` one per partition of `plan`, each read on its own. The query is listed
    /// in the node's [`activity`] as `sql`, cancelled there through [`Registry::cancel`].
    pub fn plan(
        self: &Arc<Self>,
        plan: Arc<dyn ExecutionPlan>,
        session: Arc<Session>,
        sql: String,
        per_partition: bool,
    ) -> Vec<String> {
        let now = Instant::now();
        let partitions: Vec<Option<usize>> = if per_partition {
            (0..plan.output_partitioning().partition_count())
                .map(Some)
                .collect()
        } else {
            vec![None]
        };
        let run = Arc::new(tokio::sync::Mutex::new(Weak::new()));
        let handles: Vec<String> = partitions.iter().map(|_| new_token()).collect();
        let registry = Arc::downgrade(self);
        let cancelled = handles.clone();
        let asked = activity::Asked {
            protocol: "flightsql",
            user: session.user().map(str::to_string),
            sql,
        };
        let listed = activity::activity().begin(
            asked,
            Arc::clone(&plan),
            Box::new(move || {
                if let Some(registry) = registry.upgrade() {
                    for handle in &cancelled {
                        registry.cancel(handle);
                    }
                }
            }),
        );
        let mut waiting = lock(&self.waiting);
        waiting.retain(|_, q| q.expires > now);
        partitions
            .into_iter()
            .zip(handles)
            .map(|(partition, handle)| {
                waiting.insert(
                    handle.clone(),
                    PlannedQuery {
                        plan: Arc::clone(&plan),
                        session: Arc::clone(&session),
                        partition,
                        run: Arc::clone(&run),
                        listed: Arc::clone(&listed),
                        expires: now + self.limits.ticket_ttl,
                    },
                );
                handle
            })
            .collect()
    }

    /// Takes the planned query of a ticket to run it, with the signal that cancels it.
    ///
    /// # Errors
    /// `NotFound` when the ticket is unknown, already used, cancelled or expired.
    pub fn start(&self, handle: &str) -> flotilla_common::Result<(PlannedQuery, CancelSignal)> {
        let query = lock(&self.waiting)
            .remove(handle)
            .filter(|q| q.expires > Instant::now())
            .ok_or_else(|| {
                Error::not_found(
                    "unknown ticket: it was already fetched, cancelled, or expired (tickets \
                     live for a few minutes after GetFlightInfo); run the statement again",
                )
            })?;
        let (sender, receiver) = oneshot::channel();
        lock(&self.running).insert(handle.to_string(), sender);
        let signal = CancelSignal {
            receiver: Some(receiver),
            _guard: RunningGuard {
                running: Arc::clone(&self.running),
                handle: handle.to_string(),
            },
        };
        Ok((query, signal))
    }

    /// Cancels the query of a ticket, whether waiting or running.
    pub fn cancel(&self, handle: &str) -> Cancelled {
        if lock(&self.waiting).remove(handle).is_some() {
            return Cancelled::BeforeStart;
        }
        match lock(&self.running).remove(handle) {
            Some(sender) => {
                // The stream may have ended meanwhile; then there is nothing left to stop.
                let _ = sender.send(());
                Cancelled::WhileRunning
            }
            None => Cancelled::Unknown,
        }
    }

    /// Keeps a prepared statement and returns its handle.
    pub fn prepare(&self, prepared: Prepared) -> String {
        let now = Instant::now();
        let handle = new_token();
        let idle = self.limits.prepared_idle_timeout;
        let mut all = lock(&self.prepared);
        all.retain(|_, p| p.idle_for(now) < idle);
        all.insert(handle.clone(), Arc::new(prepared));
        handle
    }

    /// The prepared statement of a handle.
    ///
    /// # Errors
    /// `NotFound` when the handle is unknown, closed or expired.
    pub fn prepared(&self, handle: &[u8]) -> flotilla_common::Result<Arc<Prepared>> {
        let handle = std::str::from_utf8(handle).unwrap_or_default();
        lock(&self.prepared).get(handle).cloned().ok_or_else(|| {
            Error::not_found(
                "unknown prepared statement handle: it was closed, expired after being unused, \
                 or never existed; prepare the statement again",
            )
        })
    }

    /// Closes a prepared statement; true if it existed.
    pub fn close_prepared(&self, handle: &[u8]) -> bool {
        let handle = std::str::from_utf8(handle).unwrap_or_default();
        lock(&self.prepared).remove(handle).is_some()
    }
}

/// Ends a running query's stream when its ticket is cancelled.
pub(crate) struct CancelSignal {
    receiver: Option<oneshot::Receiver<()>>,
    /// Held for the life of the stream.
    _guard: RunningGuard,
}

/// Forgets a running query when its stream is dropped.
struct RunningGuard {
    running: Running,
    handle: String,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        lock(&self.running).remove(&self.handle);
    }
}

/// A result stream that ends with `CANCELLED` when its query is cancelled. Dropping it drops
/// the query's execution (and with it the remote queries of federated scans).
pub(crate) struct Cancellable {
    inner: Option<BoxStream<'static, Result<FlightData, Status>>>,
    signal: CancelSignal,
}

impl Cancellable {
    pub fn new(
        inner: BoxStream<'static, Result<FlightData, Status>>,
        signal: CancelSignal,
    ) -> Self {
        Self {
            inner: Some(inner),
            signal,
        }
    }
}

impl Stream for Cancellable {
    type Item = Result<FlightData, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.inner.is_none() {
            return Poll::Ready(None);
        }
        if let Some(receiver) = this.signal.receiver.as_mut()
            && let Poll::Ready(outcome) = Pin::new(receiver).poll(cx)
        {
            this.signal.receiver = None;
            if outcome.is_ok() {
                this.inner = None;
                return Poll::Ready(Some(Err(Status::from(Error::new(
                    ErrorKind::Cancelled,
                    "the query was cancelled",
                )))));
            }
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let next = inner.as_mut().poll_next(cx);
        if let Poll::Ready(None) = next {
            this.inner = None;
        }
        next
    }
}
