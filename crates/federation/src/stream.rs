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

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::Result;
use datafusion::common::runtime::SpawnedTask;
use datafusion::execution::RecordBatchStream;
use futures::Stream;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// How many decoded batches may wait for the consumer.
pub const BUFFERED_BATCHES: usize = 2;

/// The sending side of a [`RemoteStream`].
pub type BatchSender = mpsc::Sender<Result<RecordBatch>>;

/// A channel for a [`RemoteStream`].
pub fn channel() -> (BatchSender, mpsc::Receiver<Result<RecordBatch>>) {
    mpsc::channel(BUFFERED_BATCHES)
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
    rx: mpsc::Receiver<Result<RecordBatch>>,
    on_drop: Option<Box<dyn FnOnce() + Send>>,
    _task: SpawnedTask<()>,
}

impl RemoteStream {
    /// The stream of `rx`, fed by `task`; `on_drop` stops the remote statement if it still runs.
    pub fn new(
        schema: SchemaRef,
        rx: mpsc::Receiver<Result<RecordBatch>>,
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
}

impl Stream for RemoteStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
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
