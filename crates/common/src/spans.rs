//! `tracing` spans around streams: a query's, a stage task's and a database statement's log
//! lines carry the span's fields (the query id among them), because the span is entered every
//! time the stream is polled — the work of a stream happens in its polls, on whichever thread.

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::physical_plan::RecordBatchStream;
use futures::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};
use tracing::Span;

/// A stream polled inside `span`.
#[derive(Debug)]
pub struct InSpan<S> {
    inner: S,
    span: Span,
}

impl<S> InSpan<S> {
    pub fn new(inner: S, span: Span) -> Self {
        Self { inner, span }
    }
}

impl<S: Stream + Unpin> Stream for InSpan<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = &mut *self;
        let _entered = this.span.enter();
        Pin::new(&mut this.inner).poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<S: RecordBatchStream + Unpin> RecordBatchStream for InSpan<S> {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}
