//! A query's stream to its client, counted in the node's metrics (`flotilla_common::metrics`):
//! running queries, rows and bytes sent, and, when the stream ends or is dropped, the query's
//! outcome and duration — also logged (`flotilla::query`, info) with the query's id.

use arrow_flight::FlightData;
use flotilla_common::activity;
use flotilla_common::metrics::{label, metrics};
use futures::{Stream, StreamExt};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;
use tonic::Status;

/// See the module documentation.
pub(crate) struct MeteredQuery<S> {
    inner: S,
    /// The query's id (its statement handle), for the log.
    id: String,
    /// Whether this stream counts as the query (not so for its other endpoints: their bytes
    /// count, the query once).
    counted: bool,
    started: Instant,
    /// Rows sent so far (counted where the batches are).
    rows: Arc<AtomicU64>,
    bytes: u64,
    /// How the stream ended, once it has: `ok`, `error` or `cancelled`; and the error's text.
    outcome: Option<&'static str>,
    error: Option<String>,
    /// The query in the node's console, told its bytes and how it ended.
    listed: Option<Arc<activity::Query>>,
}

impl<S> MeteredQuery<S> {
    pub fn new(inner: S, id: String, rows: Arc<AtomicU64>, counted: bool) -> Self {
        if counted {
            metrics().queries_running.inc();
        }
        Self {
            inner,
            counted,
            started: Instant::now(),
            rows,
            bytes: 0,
            outcome: None,
            error: None,
            listed: None,
            id,
        }
    }

    /// Tells `query` (the node's console) the bytes sent and, if this stream counts as the
    /// query, how it ended.
    pub fn listed_as(mut self, query: Arc<activity::Query>) -> Self {
        self.listed = Some(query);
        self
    }
}

/// Counts a query that failed before any row could stream (planning, an unknown ticket).
pub(crate) fn failed_to_start(status: &Status) {
    metrics()
        .queries
        .get_or_create(&label("outcome", "error"))
        .inc();
    tracing::info!(
        target: "flotilla::query",
        outcome = "error",
        error = status.message(),
        "a query failed before it ran"
    );
}

impl<S> Stream for MeteredQuery<S>
where
    S: Stream<Item = Result<FlightData, Status>> + Unpin,
{
    type Item = Result<FlightData, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.poll_next_unpin(cx);
        match &polled {
            Poll::Ready(Some(Ok(data))) => {
                let bytes = (data.data_header.len() + data.data_body.len()) as u64;
                metrics().result_bytes.inc_by(bytes);
                self.bytes += bytes;
                if let Some(listed) = &self.listed {
                    listed.sent(0, bytes);
                }
            }
            Poll::Ready(Some(Err(status))) if self.outcome.is_none() => {
                self.outcome = Some(match status.code() {
                    tonic::Code::Cancelled => "cancelled",
                    tonic::Code::DeadlineExceeded => "timeout",
                    _ => "error",
                });
                self.error = Some(status.message().to_string());
            }
            Poll::Ready(None) if self.outcome.is_none() => self.outcome = Some("ok"),
            _ => {}
        }
        polled
    }
}

impl<S> Drop for MeteredQuery<S> {
    fn drop(&mut self) {
        let seconds = self.started.elapsed().as_secs_f64();
        // Dropped before its end: the client went away or cancelled.
        let outcome = self.outcome.unwrap_or("cancelled");
        tracing::info!(
            target: "flotilla::query",
            query = %self.id,
            outcome,
            rows = self.rows.load(Ordering::Relaxed),
            bytes = self.bytes,
            seconds,
            error = self.error.as_deref(),
            endpoint_only = !self.counted,
            "query ended"
        );
        if !self.counted {
            return;
        }
        if let Some(listed) = &self.listed {
            listed.ended(outcome, self.error.take());
        }
        let m = metrics();
        m.queries_running.dec();
        m.query_duration.observe(seconds);
        m.queries.get_or_create(&label("outcome", outcome)).inc();
    }
}
