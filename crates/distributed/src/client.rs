//! The client side of the protocol: a node asking a worker for a task's rows, and telling
//! workers a query is over. A transport failure marks the worker down in the channel cache; a
//! stream quiet for a second checks that its worker can still be reached.

use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::{Action, Ticket};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::Result as DfResult;
use datafusion::config::ConfigOptions;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion_proto::bytes::physical_plan_to_bytes_with_proto_converter;
use datafusion_proto::physical_plan::DeduplicatingProtoConverter;
use datafusion_proto::physical_plan::PhysicalExtensionCodec;
use flotilla_common::{Error, ErrorKind, Result};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::Channel;

use crate::channels::ChannelCache;
use crate::protocol::{
    END_QUERY_ACTION, MAX_MESSAGE_BYTES, TaskTicket, config_entries, stage_report,
};
use crate::stats::StageReport;
use tonic::{Request, Status};

/// Runs partition `partition` of `plan` on the worker behind `channel` under `config`, and
/// streams its batches (with `plan`'s schema). Errors of the worker come back as DataFusion
/// errors naming `worker`.
///
/// # Errors
/// When `plan` cannot be encoded with `codec`, or the worker cannot be reached or refuses the task.
pub async fn execute_remote(
    channel: Channel,
    worker: &str,
    plan: Arc<dyn ExecutionPlan>,
    config: &ConfigOptions,
    partition: usize,
    codec: &dyn PhysicalExtensionCodec,
) -> Result<SendableRecordBatchStream> {
    let schema: SchemaRef = plan.schema();
    let bytes =
        physical_plan_to_bytes_with_proto_converter(plan, codec, &DeduplicatingProtoConverter {})
            .map_err(|e| Error::invalid(format!("cannot encode the plan for {worker}: {e}")))?;
    let ticket = TaskTicket {
        plan: bytes.to_vec(),
        config: config_entries(config),
        partition: u32::try_from(partition)
            .map_err(|_| Error::invalid(format!("partition {partition} is too large")))?,
        ..TaskTicket::default()
    };
    let batches = fetch(channel, worker.to_string(), ticket, None, None).await?;
    Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
}

/// Whether `status` says the worker could not be reached or its connection broke, rather
/// than being an answer of the worker (say, a database of its failing): tonic gives the
/// statuses it makes from transport errors a source; those read off the wire have none.
/// A connection that closes under a stream comes back as Cancelled ("operation was
/// canceled", hyper's word for it) — transport too, so a worker reading from a node that was
/// killed says that node is unreachable, and the query can run again without it.
/// How a worker that cannot be reached is reported, by this node or by another worker (whose
/// message reaches the coordinator as text): [`unreachable_worker`] reads it back.
fn unreachable_message(worker: &str, why: &str) -> String {
    format!("worker {worker} {UNREACHABLE}: {why}")
}

const UNREACHABLE: &str = "is unreachable";

/// The worker an error says could not be reached — the innermost one, where a worker reports
/// another (`worker A: worker B is unreachable: …` names B).
pub(crate) fn unreachable_worker(message: &str) -> Option<&str> {
    let before = &message[..message.rfind(&format!(" {UNREACHABLE}"))?];
    let worker = before.rsplit("worker ").next()?;
    (!worker.is_empty() && !worker.contains(' ')).then_some(worker)
}

pub(crate) fn unreachable(status: &Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable
            | tonic::Code::Unknown
            | tonic::Code::Internal
            | tonic::Code::Cancelled
    ) && std::error::Error::source(status).is_some()
}

/// What receives the stage reports a task's stream carries.
pub(crate) type OnReport = Box<dyn Fn(&StageReport) + Send + Sync>;

/// Sends `ticket` to the worker behind `channel` and streams the batches it answers with;
/// errors name `worker`.
pub(crate) async fn fetch(
    channel: Channel,
    worker: String,
    ticket: TaskTicket,
    channels: Option<Arc<ChannelCache>>,
    on_report: Option<OnReport>,
) -> Result<BoxStream<'static, DfResult<RecordBatch>>> {
    let request = match &channels {
        Some(channels) => channels.request(Ticket::new(ticket.seal())),
        None => Request::new(Ticket::new(ticket.seal())),
    };
    let cache = channels.clone();
    let named = move |status: Status, worker: &str| {
        if !unreachable(&status) {
            return Error::new(
                ErrorKind::from_grpc_code(status.code()),
                format!("worker {worker}: {}", status.message()),
            );
        }
        if let Some(channels) = &channels {
            channels.mark_down(worker, status.message());
        }
        Error::unavailable(unreachable_message(worker, status.message()))
    };
    let call = |channel: Channel, request: Request<Ticket>| async move {
        FlightServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
            .do_get(request)
            .await
    };
    let retry_request = Request::new(request.get_ref().clone());
    let retry_metadata = request.metadata().clone();
    let response = match call(channel, request).await {
        Ok(response) => response,
        // A cached channel whose last connect failed (its worker was down, and may be back)
        // fails its next call without trying: try once more on a fresh channel.
        Err(status) if unreachable(&status) && cache.is_some() => {
            let fresh = cache.as_ref().map(|channels| {
                channels.forget(&worker);
                channels.get(&worker)
            });
            match fresh {
                Some(Ok(fresh)) => {
                    let mut again = retry_request;
                    *again.metadata_mut() = retry_metadata;
                    call(fresh, again)
                        .await
                        .map_err(|status| named(status, &worker))?
                }
                _ => return Err(named(status, &worker)),
            }
        }
        Err(status) => return Err(named(status, &worker)),
    };
    if let Some(channels) = &cache {
        channels.saw(&worker);
    }
    let worker_name = worker.clone();
    let data = response
        .into_inner()
        .map_err(FlightError::from)
        .try_filter(move |data| {
            let report = stage_report(data);
            if let (Some(report), Some(on_report)) = (&report, &on_report) {
                on_report(report);
            }
            futures::future::ready(report.is_none())
        });
    let batches = arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(data)
        .map_err(move |e| {
            let error = match e {
                FlightError::Tonic(status) => named(*status, &worker),
                other => Error::unavailable(format!("worker {worker}: {other}")),
            };
            error.into_datafusion()
        });
    Ok(match cache {
        Some(channels) => watched(batches.boxed(), channels, worker_name),
        None => batches.boxed(),
    })
}

/// How long a stream from a worker may stay quiet before the worker is asked whether it is
/// still reachable.
const QUIET_PROBE: Duration = Duration::from_secs(1);

/// `batches` from `worker`, failing — and marking the worker down — when the stream has been
/// quiet for a second and the worker cannot be reached any more (a cut link or a frozen host
/// sends no reset: without this, only HTTP/2 keep-alive would notice, after ~30 s).
fn watched(
    batches: BoxStream<'static, DfResult<RecordBatch>>,
    channels: Arc<ChannelCache>,
    worker: String,
) -> BoxStream<'static, DfResult<RecordBatch>> {
    futures::stream::unfold(Some(batches), move |state| {
        let (channels, worker) = (Arc::clone(&channels), worker.clone());
        async move {
            let mut batches = state?;
            loop {
                match tokio::time::timeout(QUIET_PROBE, batches.next()).await {
                    Ok(Some(item)) => return Some((item, Some(batches))),
                    Ok(None) => return None,
                    Err(_) => {
                        if let Err(error) = channels.reachable(&worker).await {
                            channels.mark_down(&worker, &error);
                            let error = Error::unavailable(unreachable_message(&worker, &error));
                            return Some((Err(error.into_datafusion()), None));
                        }
                    }
                }
            }
        }
    })
    .boxed()
}

/// Tells every worker in `workers` that `query` is over (without waiting for their answers).
pub(crate) fn end_query(channels: &Arc<ChannelCache>, query: &str, workers: &[String]) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let calls: Vec<_> = workers
        .iter()
        .filter_map(|worker| channels.get(worker).ok())
        .map(|channel| {
            let action = channels.request(Action::new(
                END_QUERY_ACTION,
                query.to_string().into_bytes(),
            ));
            async move {
                let mut client = FlightServiceClient::new(channel);
                // A worker that is gone has nothing left to stop.
                let _ = tokio::time::timeout(END_QUERY_TIMEOUT, client.do_action(action)).await;
            }
        })
        .collect();
    runtime.spawn(futures::future::join_all(calls));
}

/// How long a node waits for a worker to acknowledge the end of a query.
const END_QUERY_TIMEOUT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_innermost_unreachable_worker_is_read_back_from_an_error() {
        let inner = unreachable_message("grpc://10.0.0.3:50051", "tcp connect error");
        let outer = format!("worker grpc://10.0.0.2:50051: {inner}");
        assert_eq!(unreachable_worker(&outer), Some("grpc://10.0.0.3:50051"));
        assert_eq!(unreachable_worker(&inner), Some("grpc://10.0.0.3:50051"));
        assert_eq!(
            unreachable_worker("worker grpc://a:1: query cancelled"),
            None
        );
        assert_eq!(unreachable_worker("the table is unreachable"), None);
    }

    #[test]
    fn only_transport_failures_make_a_worker_unreachable() {
        // What a worker answers when its database is down is not about the worker.
        let answered = Status::unavailable("source 'pg': connection refused");
        assert!(!unreachable(&answered));
        let broken = Status::from_error(Box::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset by peer",
        )));
        assert!(unreachable(&broken), "{broken:?}");
        // A connection closed under a stream (the node at its other end was killed).
        let mut closed = Status::cancelled("operation was canceled");
        closed.set_source(Arc::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "connection closed",
        )));
        assert!(unreachable(&closed), "{closed:?}");
        // A worker saying its query was cancelled is its answer.
        assert!(!unreachable(&Status::cancelled("query cancelled")));
    }
}
