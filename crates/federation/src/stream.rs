//! [`RemoteStream`]: the rows of a statement running in a source, as a DataFusion stream.
//!
//! ```text
//!   DataFusion task                       connector task (async or blocking)
//!   ───────────────                       ───────────────────────────────────
//!   RemoteStream::poll_next ◀── channel ── decode rows into builders, send a batch
//!        (bounded: 2 batches)              every batch_size rows ([`batch`])
//!   drop(RemoteStream) ── on_drop ──────▶  the connector stops the statement (interrupt,
//!                                          cancel request, KILL QUERY …); the task ends
//! ```
//!
//! At most two decoded batches wait in the channel, so a slow consumer slows the reader (and,
//! through the socket, the database) instead of growing memory.
//!
//! The sender times itself: from the statement's start to the connector's end, less the time
//! it waited for room in the channel, is what the statement cost the source ([`producer_time`],
//! what [`crate::learn`] learns from) — a query that is slow to take the rows does not count.
//!
//! A connector starts its reader with [`RemoteStream::spawn`] (async) or
//! [`RemoteStream::spawn_blocking`], and says how to stop a statement with [`Running`]: the
//! reader records what stops it (a cancel token, a connection id, an interrupt handle) while it
//! runs, and a stream dropped in between uses it.

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::Result;
use datafusion::common::runtime::SpawnedTask;
use datafusion::execution::RecordBatchStream;
use futures::Stream;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::SendError;

/// How many decoded batches may wait for the consumer.
pub const BUFFERED_BATCHES: usize = 2;

type Item = Result<RecordBatch>;

/// The sending side of a [`RemoteStream`], for the connector's task.
#[derive(Debug)]
pub struct BatchSender {
    tx: mpsc::Sender<Item>,
    timing: Arc<Timing>,
}

/// The receiving side, for [`RemoteStream::new`].
#[derive(Debug)]
pub struct BatchReceiver {
    rx: mpsc::Receiver<Item>,
    timing: Arc<Timing>,
}

/// When the statement started, how long its sender waited for room, and (once the sender is
/// dropped: the connector is done) the nanoseconds it worked.
#[derive(Debug)]
struct Timing {
    started: Instant,
    blocked: AtomicU64,
    worked: AtomicU64,
}

/// A channel for a [`RemoteStream`]; the statement's time starts now.
pub fn channel() -> (BatchSender, BatchReceiver) {
    let (tx, rx) = mpsc::channel(BUFFERED_BATCHES);
    let timing = Arc::new(Timing {
        started: Instant::now(),
        blocked: AtomicU64::new(0),
        worked: AtomicU64::new(u64::MAX),
    });
    (
        BatchSender {
            tx,
            timing: Arc::clone(&timing),
        },
        BatchReceiver { rx, timing },
    )
}

impl BatchSender {
    /// Sends a batch (or an error), waiting for room; fails when the stream was dropped.
    pub async fn send(&self, item: Item) -> std::result::Result<(), SendError<Item>> {
        let waiting = Instant::now();
        let sent = self.tx.send(item).await;
        self.blocked(waiting.elapsed());
        sent
    }

    /// [`BatchSender::send`] from a blocking thread.
    pub fn blocking_send(&self, item: Item) -> std::result::Result<(), SendError<Item>> {
        let waiting = Instant::now();
        let sent = self.tx.blocking_send(item);
        self.blocked(waiting.elapsed());
        sent
    }

    fn blocked(&self, waited: Duration) {
        self.timing
            .blocked
            .fetch_add(nanos(waited), Ordering::Relaxed);
    }
}

impl Drop for BatchSender {
    fn drop(&mut self) {
        let timing = &self.timing;
        let worked =
            nanos(timing.started.elapsed()).saturating_sub(timing.blocked.load(Ordering::Relaxed));
        timing.worked.store(worked, Ordering::Relaxed);
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

tokio::task_local! {
    /// Where a [`RemoteStream`] polled inside [`producer_time`] puts its statement's time.
    static PRODUCED: std::cell::Cell<Option<Duration>>;
}

/// Runs `poll` (a poll of a stream that may be, or wrap, a [`RemoteStream`]) and returns its
/// result with, when the remote stream ended in it, the time its connector worked on the
/// statement (not counting waits for the consumer).
pub fn producer_time<R>(poll: impl FnOnce() -> R) -> (R, Option<Duration>) {
    PRODUCED.sync_scope(std::cell::Cell::new(None), || {
        let polled = poll();
        (polled, PRODUCED.with(|time| time.get()))
    })
}

/// A batch of `rows` rows from finished builders (the row count matters when no column is
/// selected, as for `count(*)`).
pub fn batch(schema: &SchemaRef, columns: Vec<ArrayRef>, rows: usize) -> Result<RecordBatch> {
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &options,
    )?)
}

/// Batches received from a connector's task; dropping it runs the connector's stop action and
/// aborts the task.
pub struct RemoteStream {
    schema: SchemaRef,
    rx: BatchReceiver,
    on_drop: Option<Box<dyn FnOnce() + Send>>,
    _task: SpawnedTask<()>,
}

impl RemoteStream {
    /// The stream of `rx`, fed by `task`; `on_drop` stops the remote statement if it still runs.
    pub fn new(
        schema: SchemaRef,
        rx: BatchReceiver,
        task: SpawnedTask<()>,
        on_drop: impl FnOnce() + Send + 'static,
    ) -> Self {
        Self {
            schema,
            rx,
            on_drop: Some(Box::new(on_drop)),
            _task: task,
        }
    }

    /// Streams the batches `read` sends, running it on a tokio task; the error it ends with,
    /// if any, is the stream's last item. Dropping the stream runs `on_drop`, then aborts the
    /// task.
    pub fn spawn<F>(
        schema: SchemaRef,
        read: impl FnOnce(BatchSender) -> F,
        on_drop: impl FnOnce() + Send + 'static,
    ) -> Self
    where
        F: Future<Output = Result<()>> + Send + 'static,
    {
        let (tx, rx) = channel();
        let errors = tx.tx.clone();
        let reading = read(tx);
        let task = SpawnedTask::spawn(async move {
            if let Err(e) = reading.await {
                // The stream may be gone (query cancelled); then nobody needs the error.
                let _ = errors.send(Err(e)).await;
            }
        });
        Self::new(schema, rx, task, on_drop)
    }

    /// [`RemoteStream::spawn`] for a reader that blocks (a C library's statement): it runs on
    /// a blocking thread, sending with [`BatchSender::blocking_send`].
    pub fn spawn_blocking(
        schema: SchemaRef,
        read: impl FnOnce(BatchSender) -> Result<()> + Send + 'static,
        on_drop: impl FnOnce() + Send + 'static,
    ) -> Self {
        let (tx, rx) = channel();
        let errors = tx.tx.clone();
        let task = SpawnedTask::spawn_blocking(move || {
            if let Err(e) = read(tx) {
                let _ = errors.blocking_send(Err(e));
            }
        });
        Self::new(schema, rx, task, on_drop)
    }
}

/// What stops the statement a reader is running — a cancel token, a connection id, an
/// interrupt handle — shared between the reader and its stream.
///
/// The reader [`start`](Running::start)s it once the statement runs and
/// [`end`](Running::end)s it before its connection can serve another statement; a stream
/// dropped in between [`stop`](Running::stop)s the statement with it. Both sides hold the lock
/// while they act, so a stop never reaches the connection's next statement.
#[derive(Debug)]
pub struct Running<T>(Arc<Mutex<Option<T>>>);

impl<T> Default for Running<T> {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(None)))
    }
}

impl<T> Clone for Running<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T> Running<T> {
    /// The statement runs; `stop` stops it.
    pub fn start(&self, stop: T) {
        *self.lock() = Some(stop);
    }

    /// The statement ended: a later stop must not touch the connection.
    pub fn end(&self) {
        self.lock().take();
    }

    /// Stops the statement if it still runs: calls `stop` with what stops it, under the lock.
    pub fn stop(&self, stop: impl FnOnce(T)) {
        let mut running = self.lock();
        if let Some(handle) = running.take() {
            stop(handle);
        }
    }

    /// [`Running::stop`] for a stop that talks to the database (a cancel request, a
    /// `KILL QUERY` over another connection): spawned on the current runtime, not awaited.
    pub fn stop_async<F>(&self, stop: impl FnOnce(T) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.stop(|handle| {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(stop(handle));
            }
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<T>> {
        // A poisoned lock only means a reader panicked; what it holds is still right.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Stream for RemoteStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.rx.rx.poll_recv(cx);
        if let Poll::Ready(None) = polled {
            // Every sender is gone: the connector is done.
            let worked = self.rx.timing.worked.load(Ordering::Relaxed);
            if worked != u64::MAX {
                let _ = PRODUCED.try_with(|time| time.set(Some(Duration::from_nanos(worked))));
            }
        }
        polled
    }
}

impl RecordBatchStream for RemoteStream {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}

impl Drop for RemoteStream {
    fn drop(&mut self) {
        if let Some(stop) = self.on_drop.take() {
            stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int32Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use futures::StreamExt;
    use std::time::Duration;

    /// A stream dropped while its statement runs stops it once, with what the reader recorded;
    /// one dropped after the statement ended leaves the connection alone.
    #[tokio::test]
    async fn a_dropped_stream_stops_only_a_running_statement() {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int32, false)]));
        let stopped = Arc::new(Mutex::new(Vec::new()));
        let (recorded, mut readers_ready) = mpsc::unbounded_channel();
        let stream_of = |statement: u32, ends: bool| {
            let running = Running::default();
            let reader = running.clone();
            let stops = Arc::clone(&stopped);
            let recorded = recorded.clone();
            RemoteStream::spawn(
                Arc::clone(&schema),
                move |_tx| async move {
                    reader.start(statement);
                    if ends {
                        reader.end();
                    }
                    let _ = recorded.send(());
                    std::future::pending::<()>().await;
                    Ok(())
                },
                move || running.stop(|id| stops.lock().unwrap().push(id)),
            )
        };
        let (running, ended) = (stream_of(1, false), stream_of(2, true));
        // Both readers have recorded their statement (and the second ended it).
        for _ in 0..2 {
            readers_ready.recv().await.unwrap();
        }
        drop(running);
        drop(ended);
        assert_eq!(*stopped.lock().unwrap(), vec![1]);
    }

    /// The error a reader ends with is the stream's last item, after the batches it sent.
    #[tokio::test]
    async fn a_readers_error_ends_the_stream() {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int32, false)]));
        let rows = Arc::clone(&schema);
        let stream = RemoteStream::spawn_blocking(
            schema,
            move |tx| {
                let column = Arc::new(Int32Array::from(vec![7])) as ArrayRef;
                let _ = tx.blocking_send(batch(&rows, vec![column], 1));
                Err(datafusion::common::DataFusionError::Execution(
                    "the server went away".into(),
                ))
            },
            || {},
        );
        let items: Vec<_> = stream.collect().await;
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].as_ref().map(RecordBatch::num_rows).ok(), Some(1));
        let error = items[1].as_ref().unwrap_err().to_string();
        assert!(error.contains("the server went away"), "{error}");
    }

    /// A connector that decodes fast into a consumer that takes its time: the statement's time
    /// is the connector's, not the wait for the consumer; it is known once the stream ends.
    #[tokio::test]
    async fn a_statements_time_leaves_out_waiting_for_the_consumer() {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int32, false)]));
        let (tx, rx) = channel();
        let rows = Arc::clone(&schema);
        let task = SpawnedTask::spawn(async move {
            for i in 0..8 {
                let column = Arc::new(Int32Array::from(vec![i])) as ArrayRef;
                if tx.send(batch(&rows, vec![column], 1)).await.is_err() {
                    return;
                }
            }
        });
        let mut stream = RemoteStream::new(schema, rx, task, || {});
        let started = Instant::now();
        let mut produced = Vec::new();
        loop {
            let (next, time) = producer_time(|| {
                futures::FutureExt::now_or_never(stream.next()).map(|n| n.map(|b| b.is_ok()))
            });
            produced.extend(time);
            match next {
                Some(None) => break,
                Some(Some(ok)) => assert!(ok),
                None => tokio::task::yield_now().await,
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let wall = started.elapsed();
        assert_eq!(produced.len(), 1, "known once, at the end");
        assert!(wall >= Duration::from_millis(200), "{wall:?}");
        assert!(produced[0] < wall / 2, "{:?} of {wall:?}", produced[0]);
    }
}
