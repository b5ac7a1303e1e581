//! A query's stream to its client, counted in the node's metrics (`flotilla_common::metrics`):
//! running queries, rows and bytes sent, and, when the stream ends or is dropped, the query's
//! outcome and duration.

use arrow_flight::FlightData;
use flotilla_common::metrics::{label, metrics};
use futures::{Stream, StreamExt};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;
use tonic::Status;

/// See the module documentation.
pub(crate) struct MeteredQuery<S> {
    inner: S,
    /// Whether this stream counts as the query (not so for its other endpoints: their bytes
    /// count, the query once).
    counted: bool,
    started: Instant,
    /// How the stream ended, once it has: `ok`, `error` or `cancelled`.
    outcome: Option<&'static str>,
}

impl<S> MeteredQuery<S> {
    pub fn new(inner: S, counted: bool) -> Self {
        if counted {
            metrics().queries_running.inc();
        }
        Self {
            inner,
            counted,
            started: Instant::now(),
            outcome: None,
        }
    }
}

/// Counts a query that failed before any row could stream (planning, an unknown ticket).
pub(crate) fn failed_to_start() {
    metrics()
        .queries
        .get_or_create(&label("outcome", "error"))
        .inc();
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
                let bytes = data.data_header.len() + data.data_body.len();
                metrics().result_bytes.inc_by(bytes as u64);
            }
            Poll::Ready(Some(Err(status))) if self.outcome.is_none() => {
                self.outcome = Some(match status.code() {
                    tonic::Code::Cancelled => "cancelled",
                    tonic::Code::DeadlineExceeded => "timeout",
                    _ => "error",
                });
            }
            Poll::Ready(None) if self.outcome.is_none() => self.outcome = Some("ok"),
            _ => {}
        }
        polled
    }
}

impl<S> Drop for MeteredQuery<S> {
    fn drop(&mut self) {
        if !self.counted {
            return;
        }
        let m = metrics();
        m.queries_running.dec();
        m.query_duration
            .observe(self.started.elapsed().as_secs_f64());
        // Dropped before its end: the client went away or cancelled.
        let outcome = self.outcome.unwrap_or("cancelled");
        m.queries.get_or_create(&label("outcome", outcome)).inc();
    }
}
