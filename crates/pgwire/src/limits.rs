//! What stops a statement on this port: a cancel request from the client (PostgreSQL's
//! `CancelRequest`, sent on a new connection with the backend's pid and secret key) and the
//! session's `flotilla.statement_timeout`; and the memory it may hold
//! (`flotilla.query_memory_limit`, through the query's own task context).
//!
//! ```text
//!  login ──▶ Cancels: pid → (secret key, the connection's cancel generation)
//!  CancelRequest{pid, key} ──▶ the generation moves on ──▶ the running statement's stream ends
//!                              with 57014 "canceling statement due to user request"
//!  statement_timeout ──▶ the stream ends with 57014 naming the timeout
//! ```
//!
//! A statement is stopped where it is: planning, running or streaming its rows; dropping its
//! stream stops its execution (and any remote statements it has open).

use crate::errors::{query_error, user_error};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::execute_stream;
use datafusion::prelude::DataFrame;
use flotilla_common::activity::{self, Asked, activity};
use flotilla_common::options::QueryLimits;
use flotilla_common::spans::InSpan;
use flotilla_flightsql::Turn;
use futures::StreamExt;
use pgwire::api::cancel::CancelHandler;
use pgwire::error::PgWireResult;
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::startup::SecretKey;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// The connections a cancel request may name.
#[derive(Default)]
pub(crate) struct Cancels {
    connections: Mutex<HashMap<i32, (SecretKey, watch::Sender<u64>)>>,
}

impl Cancels {
    /// Registers the connection `pid`; it is forgotten when the returned guard is dropped (with
    /// the connection's extensions, when it closes).
    pub fn register(self: &Arc<Self>, pid: i32, key: SecretKey) -> (Canceller, Registration) {
        let (sender, receiver) = watch::channel(0);
        self.lock().insert(pid, (key, sender));
        (
            Canceller { receiver },
            Registration {
                cancels: Arc::clone(self),
                pid,
            },
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, (SecretKey, watch::Sender<u64>)>> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait::async_trait]
impl CancelHandler for Cancels {
    async fn on_cancel_request(&self, request: CancelRequest) {
        // A wrong key cancels nothing, as in PostgreSQL (and says nothing either).
        if let Some((key, sender)) = self.lock().get(&request.pid)
            && key_bytes(key) == key_bytes(&request.secret_key)
        {
            sender.send_modify(|generation| *generation += 1);
        }
    }
}

/// A secret key's bytes: pgwire reads a cancel request's key as bytes or as a number depending
/// on the protocol version it assumes for that new connection, not the one the key was issued
/// under, so keys compare by their bytes.
fn key_bytes(key: &SecretKey) -> Vec<u8> {
    match key {
        SecretKey::I32(n) => n.to_be_bytes().to_vec(),
        SecretKey::Bytes(bytes) => bytes.to_vec(),
    }
}

/// Removes its connection from [`Cancels`] when dropped.
pub(crate) struct Registration {
    cancels: Arc<Cancels>,
    pid: i32,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.cancels.lock().remove(&self.pid);
    }
}

/// A connection's side of its cancel requests.
pub(crate) struct Canceller {
    receiver: watch::Receiver<u64>,
}

/// Why a statement was stopped.
enum Stop {
    Cancelled,
    TimedOut(std::time::Duration),
}

/// Stops for one statement: cancel requests from its start on, and its deadline.
pub(crate) struct Watch {
    cancelled: watch::Receiver<u64>,
    deadline: Option<(Instant, std::time::Duration)>,
}

impl Watch {
    /// Watches a statement of a session with `limits` that starts now.
    pub fn start(canceller: &Canceller, limits: &QueryLimits) -> Self {
        let mut cancelled = canceller.receiver.clone();
        cancelled.mark_unchanged();
        Self {
            cancelled,
            deadline: limits
                .statement_timeout
                .map(|timeout| (Instant::now() + timeout, timeout)),
        }
    }

    /// Waits until the statement must stop.
    async fn stopped(&mut self) -> Stop {
        let deadline = self.deadline;
        tokio::select! {
            changed = self.cancelled.changed() => match changed {
                Ok(()) => Stop::Cancelled,
                // The connection is gone: nothing will cancel; wait for the deadline only.
                Err(_) => Stop::TimedOut(until(deadline).await),
            },
            timeout = until(deadline) => Stop::TimedOut(timeout),
        }
    }

    /// Runs `work` unless the statement is stopped first.
    pub async fn guard<T>(
        &mut self,
        work: impl std::future::Future<Output = PgWireResult<T>>,
    ) -> PgWireResult<T> {
        tokio::select! {
            result = work => result,
            stop = self.stopped() => Err(stopped(stop)),
        }
    }
}

/// Waits for `deadline` and returns its timeout; forever without one.
async fn until(deadline: Option<(Instant, std::time::Duration)>) -> std::time::Duration {
    match deadline {
        Some((at, timeout)) => {
            tokio::time::sleep_until(at).await;
            timeout
        }
        None => std::future::pending().await,
    }
}

fn stopped(stop: Stop) -> pgwire::error::PgWireError {
    match stop {
        Stop::Cancelled => user_error("57014", "canceling statement due to user request"),
        Stop::TimedOut(timeout) => user_error("57014", &QueryLimits::timed_out(timeout)),
    }
}

/// Starts `frame` in a task context of its own (its memory pool under
/// `flotilla.query_memory_limit`); its batches end with an error as soon as `watch` says stop
/// or the node's console cancels it (the query is listed there as `asked`). The stream holds
/// the query's `turn` until it ends or is dropped.
pub(crate) async fn execute(
    frame: DataFrame,
    mut watch: Watch,
    turn: Turn,
    asked: Asked,
) -> PgWireResult<
    impl futures::Stream<Item = PgWireResult<datafusion::arrow::array::RecordBatch>> + Send + use<>,
> {
    let (state, plan) = frame.into_parts();
    let physical = watch
        .guard(async { state.create_physical_plan(&plan).await.map_err(query_error) })
        .await?;
    let console = Arc::new(Notify::new());
    let cancel = Arc::clone(&console);
    let listed = activity().begin(
        asked,
        Arc::clone(&physical),
        Box::new(move || cancel.notify_one()),
    );
    // Its log lines carry the id the console lists it by.
    let id = format!("pg-{}", listed.id());
    let task = flotilla_common::memory::query_task_context(&state, &id);
    let span = tracing::info_span!(target: "flotilla::query", "query", query = %id);
    let batches: SendableRecordBatchStream = execute_stream(physical, task).map_err(query_error)?;
    listed.started();
    let running = Running {
        batches,
        watch,
        console,
        listed,
        _turn: turn,
    };
    let rows = futures::stream::unfold(Some(running), |state| async move {
        let mut running = state?;
        let stop = tokio::select! {
            batch = running.batches.next() => match batch {
                Some(Ok(batch)) => {
                    running.listed.sent(batch.num_rows() as u64, 0);
                    return Some((Ok(batch), Some(running)));
                }
                Some(Err(e)) => {
                    running.listed.ended("error", Some(e.to_string()));
                    return Some((Err(query_error(e)), None));
                }
                None => {
                    running.listed.ended("ok", None);
                    return None;
                }
            },
            stop = running.watch.stopped() => stop,
            () = running.console.notified() => Stop::Cancelled,
        };
        let state = match stop {
            Stop::Cancelled => "cancelled",
            Stop::TimedOut(_) => "timeout",
        };
        let error = stopped(stop);
        running.listed.ended(state, Some(error.to_string()));
        Some((Err(error), None))
    });
    Ok(InSpan::new(Box::pin(rows), span))
}

/// A statement's rows streaming, and what stops it.
struct Running {
    batches: SendableRecordBatchStream,
    watch: Watch,
    /// Notified when the node's console cancels the statement.
    console: Arc<Notify>,
    listed: Arc<activity::Query>,
    _turn: Turn,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cancel_request_with_the_key_in_either_form_cancels_and_a_wrong_one_does_not() {
        let cancels = Arc::new(Cancels::default());
        let (canceller, _registration) = cancels.register(7, SecretKey::I32(0x0102_0304));
        let mut watch = Watch::start(&canceller, &QueryLimits::default());
        let wrong = CancelRequest::new(7, SecretKey::I32(5));
        cancels.on_cancel_request(wrong).await;
        assert!(!watch.cancelled.has_changed().unwrap());
        let right = CancelRequest::new(7, SecretKey::Bytes(vec![1, 2, 3, 4].into()));
        cancels.on_cancel_request(right).await;
        assert!(matches!(watch.stopped().await, Stop::Cancelled));
        drop(_registration);
        assert!(cancels.lock().is_empty());
    }
}
