//! Limits on the queries a node runs: how many at once, with a bounded queue behind them
//! (`[server] max_concurrent_queries`, `max_queued_queries`), and how long each may take
//! (`flotilla.statement_timeout`, waiting in the queue included).
//!
//! ```text
//!  DoGet ──▶ a turn free? ── yes ──────────────────────────▶ runs, holding its turn
//!               │ no                                            │ ends, fails or is dropped
//!               ▼                                               ▼
//!           queue full? ── yes ──▶ RESOURCE_EXHAUSTED       turn handed to the next
//!               │ no
//!               ▼
//!           waits (until the statement timeout) ──▶ runs
//! ```

use datafusion::execution::TaskContext;
use flotilla_common::metrics::metrics;
use flotilla_common::{Error, ErrorKind};
use futures::Stream;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tonic::Status;

/// How many queries a node runs at once, and how many may wait for a turn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryAdmission {
    /// Queries streaming rows at once; 0: no limit.
    pub max_running: usize,
    /// Queries waiting for a turn when all are taken; a query beyond them fails at once with
    /// RESOURCE_EXHAUSTED.
    pub max_queued: usize,
}

/// A node's turns (see the module documentation), shared by every port that runs queries
/// (Flight SQL and the PostgreSQL protocol).
#[derive(Debug)]
pub struct Admission {
    limits: QueryAdmission,
    turns: Option<Arc<Semaphore>>,
    queued: AtomicUsize,
}

/// One query's turn; the next query in the queue gets it when this is dropped.
pub type Turn = Option<OwnedSemaphorePermit>;

impl Admission {
    pub fn new(limits: QueryAdmission) -> Self {
        Self {
            limits,
            turns: (limits.max_running > 0).then(|| Arc::new(Semaphore::new(limits.max_running))),
            queued: AtomicUsize::new(0),
        }
    }

    /// A turn to run a query: at once, after waiting in the queue, or RESOURCE_EXHAUSTED when
    /// the queue is full.
    ///
    /// # Errors
    /// When the queue is full, or the node shuts down while the query waits.
    pub async fn admit(&self) -> flotilla_common::Result<Turn> {
        let Some(turns) = &self.turns else {
            return Ok(None);
        };
        if let Ok(turn) = Arc::clone(turns).try_acquire_owned() {
            return Ok(Some(turn));
        }
        if self.queued.fetch_add(1, Ordering::SeqCst) >= self.limits.max_queued {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(Error::new(
                ErrorKind::ResourceExhausted,
                format!(
                    "the node runs its maximum of {} queries and {} more wait for a turn \
                     ([server] max_concurrent_queries, max_queued_queries): try again later",
                    self.limits.max_running, self.limits.max_queued
                ),
            ));
        }
        let _waiting = Waiting::new(&self.queued);
        let turn = Arc::clone(turns)
            .acquire_owned()
            .await
            .map_err(|_| Error::unavailable("the node is shutting down"))?;
        Ok(Some(turn))
    }
}

/// A query in the queue, counted until it has its turn or gives up (its call dropped).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(queued: &'a AtomicUsize) -> Self {
        metrics().queries_queued.inc();
        Self(queued)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
        metrics().queries_queued.dec();
    }
}

/// The error of a query stopped by its statement timeout.
pub(crate) fn timed_out(timeout: Duration) -> Error {
    Error::new(
        ErrorKind::TimedOut,
        flotilla_common::options::QueryLimits::timed_out(timeout),
    )
}

/// One query's run, shared by the streams of its endpoints: its turn (given back when the
/// last of them ends), the context its partitions execute in (one memory pool) and when its
/// statement timeout passes.
pub(crate) struct Run {
    _turn: Turn,
    pub task: Arc<TaskContext>,
    /// When the statement timeout passes, and the timeout (for the error).
    pub deadline: Option<(Instant, Duration)>,
}

impl Run {
    pub fn new(turn: Turn, task: Arc<TaskContext>, deadline: Option<(Instant, Duration)>) -> Self {
        Self {
            _turn: turn,
            task,
            deadline,
        }
    }
}

/// A query's result stream under its limits: it holds the query's run (and with it its turn)
/// until it ends, and stops the query (dropping its execution) when the statement timeout
/// passes.
pub(crate) struct Limited<S> {
    inner: Option<S>,
    deadline: Option<(Pin<Box<Sleep>>, Duration)>,
    run: Option<Arc<Run>>,
}

impl<S> Limited<S> {
    /// `inner`, stopped at the run's deadline, holding `run`.
    pub fn new(inner: S, run: Arc<Run>) -> Self {
        Self {
            inner: Some(inner),
            deadline: run
                .deadline
                .map(|(at, timeout)| (Box::pin(tokio::time::sleep_until(at)), timeout)),
            run: Some(run),
        }
    }

    fn end(&mut self) {
        self.inner = None;
        self.run = None;
        self.deadline = None;
    }
}

impl<S> Stream for Limited<S>
where
    S: Stream<Item = Result<arrow_flight::FlightData, Status>> + Unpin,
{
    type Item = Result<arrow_flight::FlightData, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some((sleep, timeout)) = this.deadline.as_mut()
            && sleep.as_mut().poll(cx).is_ready()
        {
            let timeout = *timeout;
            this.end();
            return Poll::Ready(Some(Err(Status::from(timed_out(timeout)))));
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let next = Pin::new(inner).poll_next(cx);
        if let Poll::Ready(None) = next {
            // The turn goes to the next query as soon as the rows are out.
            this.end();
        }
        next
    }
}
