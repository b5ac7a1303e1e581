//! The worker as an Arrow Flight service: `DoGet` of a stage task's partition (Arrow IPC,
//! compressed as the task asks, followed by the stage's report) or of a result ticket (plain
//! IPC to a client), and the actions that end a query or report the worker's state.

use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use arrow_ipc::writer::IpcWriteOptions;
use datafusion::execution::SendableRecordBatchStream;
use flotilla_common::metrics::metrics;
use flotilla_common::{Error, ErrorKind, Result};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tonic::{Request, Response, Status, Streaming};

use super::Worker;
use crate::channels::ChannelCache;
use crate::client::end_query;
use crate::options::{COMPRESSION, Compression};
use crate::protocol::{
    END_QUERY_ACTION, MAX_MESSAGE_BYTES, STATUS_ACTION, TaskTicket, report_message,
};
use crate::results::{ResultTicket, is_result_ticket};
use crate::stats::StageReport;

impl Worker {
    /// The worker as a tonic service, to serve alone or beside others on one port.
    pub fn into_service(self) -> FlightServiceServer<Worker> {
        FlightServiceServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// `stream` as Flight data written with `ipc`, its bytes counted into the worker's total.
    fn encode(&self, stream: SendableRecordBatchStream, ipc: IpcWriteOptions) -> Encoded {
        let schema = stream.schema();
        let batches =
            stream.map_err(|e| FlightError::Tonic(Box::new(Status::from(Error::from(e)))));
        let sent = Arc::clone(&self.bytes_sent);
        let counted = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicBool::new(false));
        let (counter, failure) = (Arc::clone(&counted), Arc::clone(&failed));
        let streaming = StreamingTask::start();
        // Dictionaries travel as dictionaries: hydrated, the batches would no longer match the
        // schema the reading stage was planned with.
        let data = flotilla_common::flight::flight_data(schema, batches, ipc)
            .map_ok(move |data| {
                let bytes = (data.data_header.len() + data.data_body.len()) as u64;
                sent.fetch_add(bytes, Ordering::Relaxed);
                counter.fetch_add(bytes, Ordering::Relaxed);
                metrics().exchange_bytes_sent.inc_by(bytes);
                // Held by the closure: counted as running as long as the stream lives.
                let _ = &streaming;
                data
            })
            .map_err(move |e| {
                failure.store(true, Ordering::Relaxed);
                match e {
                    FlightError::Tonic(status) => *status,
                    other => Error::internal(other.to_string()).into(),
                }
            })
            .boxed();
        Encoded {
            data,
            bytes: counted,
            failed,
        }
    }

    /// Streams a result ticket's rows to a client, as plain Arrow IPC (no compression, no
    /// stage report). Dropped before its end, the stream ends the query on every worker.
    fn serve_result(&self, bytes: &[u8]) -> Result<FlightStream<FlightData>> {
        let ticket = ResultTicket::open(bytes, self.channels.secret())?;
        let task = ticket
            .task
            .as_ref()
            .ok_or_else(|| Error::invalid("a result ticket names no stage task"))?;
        self.claim_result(task)?;
        let encoded = self.encode(self.serve_all(task)?, IpcWriteOptions::default());
        Ok(EndsUnlessFinished {
            inner: encoded.data,
            channels: Arc::clone(&self.channels),
            query: task.query.clone(),
            workers: ticket.workers.clone(),
            settled: false,
        }
        .boxed())
    }
}

/// A stream of Flight data and what was seen of it so far.
struct Encoded {
    data: FlightStream<FlightData>,
    /// The IPC bytes sent.
    bytes: Arc<AtomicU64>,
    /// Set when the stream failed.
    failed: Arc<AtomicBool>,
}

/// A result stream: unless it ends cleanly (not dropped early, not failed), the query ends on
/// every worker.
struct EndsUnlessFinished {
    inner: FlightStream<FlightData>,
    channels: Arc<ChannelCache>,
    query: String,
    workers: Vec<String>,
    /// The query needs no end from this stream: it ended cleanly, or its end was sent.
    settled: bool,
}

impl futures::Stream for EndsUnlessFinished {
    type Item = std::result::Result<FlightData, Status>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let polled = self.inner.poll_next_unpin(cx);
        match &polled {
            std::task::Poll::Ready(None) => self.settled = true,
            // A failed stream may still end; the query is over all the same.
            std::task::Poll::Ready(Some(Err(_))) => {
                end_query(&self.channels, &self.query, &self.workers);
                self.settled = true;
            }
            _ => {}
        }
        polled
    }
}

impl Drop for EndsUnlessFinished {
    fn drop(&mut self) {
        if !self.settled {
            end_query(&self.channels, &self.query, &self.workers);
        }
    }
}

type FlightStream<T> = BoxStream<'static, std::result::Result<T, Status>>;

fn unimplemented<T>(what: &str) -> std::result::Result<T, Status> {
    Err(Error::new(
        ErrorKind::Unsupported,
        format!("{what} is not served by a Flotilla worker (it runs tasks with DoGet)"),
    )
    .into())
}

#[tonic::async_trait]
impl FlightService for Worker {
    type HandshakeStream = FlightStream<HandshakeResponse>;
    type ListFlightsStream = FlightStream<FlightInfo>;
    type DoGetStream = FlightStream<FlightData>;
    type DoPutStream = FlightStream<PutResult>;
    type DoExchangeStream = FlightStream<FlightData>;
    type DoActionStream = FlightStream<arrow_flight::Result>;
    type ListActionsStream = FlightStream<ActionType>;

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> std::result::Result<Response<Self::DoGetStream>, Status> {
        let bytes = request.into_inner().ticket;
        if is_result_ticket(&bytes) {
            return Ok(Response::new(self.serve_result(&bytes)?));
        }
        let ticket = TaskTicket::open(&bytes)?;
        let ipc = ipc_options(&ticket)?;
        let (report, reported) = futures::channel::oneshot::channel::<StageReport>();
        let stream = self.serve(
            ticket,
            Box::new(move |figures| {
                let _ = report.send(figures);
            }),
        )?;
        let Encoded {
            data: encoded,
            bytes: counted,
            failed,
        } = self.encode(stream, ipc);
        // The stage's report follows the last batch (not after an error: the stream is over).
        let trailer = futures::stream::once(async move {
            if failed.load(Ordering::Relaxed) {
                return None;
            }
            let mut report = reported.await.ok()?;
            if let Some(own) = report.stages.first_mut() {
                own.bytes = counted.load(Ordering::Relaxed);
            }
            Some(Ok(report_message(&report)))
        })
        .filter_map(futures::future::ready);
        Ok(Response::new(encoded.chain(trailer).boxed()))
    }

    async fn handshake(
        &self,
        _: Request<Streaming<HandshakeRequest>>,
    ) -> std::result::Result<Response<Self::HandshakeStream>, Status> {
        unimplemented("Handshake")
    }

    async fn list_flights(
        &self,
        _: Request<Criteria>,
    ) -> std::result::Result<Response<Self::ListFlightsStream>, Status> {
        unimplemented("ListFlights")
    }

    async fn get_flight_info(
        &self,
        _: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        unimplemented("GetFlightInfo")
    }

    async fn poll_flight_info(
        &self,
        _: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<PollInfo>, Status> {
        unimplemented("PollFlightInfo")
    }

    async fn get_schema(
        &self,
        _: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<SchemaResult>, Status> {
        unimplemented("GetSchema")
    }

    async fn do_put(
        &self,
        _: Request<Streaming<FlightData>>,
    ) -> std::result::Result<Response<Self::DoPutStream>, Status> {
        unimplemented("DoPut")
    }

    async fn do_exchange(
        &self,
        _: Request<Streaming<FlightData>>,
    ) -> std::result::Result<Response<Self::DoExchangeStream>, Status> {
        unimplemented("DoExchange")
    }

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> std::result::Result<Response<Self::DoActionStream>, Status> {
        let action = request.into_inner();
        if action.r#type == STATUS_ACTION {
            let status = arrow_flight::Result::new(self.running_tasks().to_string());
            return Ok(Response::new(futures::stream::iter([Ok(status)]).boxed()));
        }
        if action.r#type != END_QUERY_ACTION {
            return unimplemented(&format!("action '{}'", action.r#type));
        }
        let query = String::from_utf8(action.body.to_vec())
            .map_err(|_| Error::invalid("a query id is UTF-8"))?;
        self.end_query(&query);
        Ok(Response::new(futures::stream::empty().boxed()))
    }

    async fn list_actions(
        &self,
        _: Request<Empty>,
    ) -> std::result::Result<Response<Self::ListActionsStream>, Status> {
        let end = ActionType {
            r#type: END_QUERY_ACTION.to_string(),
            description: "Stop and drop every task of a query (body: the query id).".to_string(),
        };
        let status = ActionType {
            r#type: STATUS_ACTION.to_string(),
            description: "How many stage tasks this worker runs.".to_string(),
        };
        Ok(Response::new(
            futures::stream::iter([Ok(end), Ok(status)]).boxed(),
        ))
    }
}

/// How the task's batches are written: compressed as its `distributed.compression` says.
fn ipc_options(ticket: &TaskTicket) -> Result<IpcWriteOptions> {
    let key = format!("distributed.{COMPRESSION}");
    let compression: Compression = match ticket.config.iter().find(|entry| entry.key == key) {
        Some(entry) => entry
            .value
            .parse()
            .map_err(|e: datafusion::error::DataFusionError| Error::invalid(e.to_string()))?,
        None => Compression::None,
    };
    IpcWriteOptions::default()
        .try_with_compression(compression.ipc())
        .map_err(|e| Error::internal(format!("IPC compression {}: {e}", compression.name())))
}

/// A partition stream of a stage task, counted in the node's `task_streams_running` metric
/// while it lives.
struct StreamingTask;

impl StreamingTask {
    fn start() -> Self {
        metrics().task_streams_running.inc();
        Self
    }
}

impl Drop for StreamingTask {
    fn drop(&mut self) {
        metrics().task_streams_running.dec();
    }
}
