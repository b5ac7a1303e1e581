//! The worker: an Arrow Flight service that runs one partition of a physical plan sent to it,
//! under the sender's session configuration, and streams the batches back.
//!
//! ```text
//!  coordinator                                   worker (a tonic service, mountable beside others)
//!  execute_remote(channel, plan, config, p) ──▶ DoGet(Ticket = TaskTicket {
//!                                                  plan: datafusion-proto bytes (with the codec),
//!                                                  config: every `datafusion.*` and extension option,
//!                                                  partition: p })
//!  ◀── Arrow IPC (FlightData) ────────────────── decode plan, execute partition p
//! ```
//!
//! The whole session configuration travels with each task, so an option changed with `SET` on
//! the coordinator — DataFusion's own or a registered extension's — is in effect on the worker.
//! Functions, extension options and codecs the plan needs must be registered in the worker's
//! base session and codec (the same ones the coordinator uses).

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::config::ConfigOptions;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};
use datafusion::prelude::SessionConfig;
use datafusion_proto::bytes::{
    physical_plan_from_bytes_with_extension_codec, physical_plan_to_bytes_with_extension_codec,
};
use datafusion_proto::physical_plan::{DefaultPhysicalExtensionCodec, PhysicalExtensionCodec};
use flotilla_common::{Error, ErrorKind, Result};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use std::sync::Arc;
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

/// What a worker is asked to run.
#[derive(Clone, PartialEq, Message)]
pub struct TaskTicket {
    /// The physical plan, as datafusion-proto bytes.
    #[prost(bytes = "vec", tag = "1")]
    pub plan: Vec<u8>,
    /// The session configuration: every option as key and value.
    #[prost(message, repeated, tag = "2")]
    pub config: Vec<ConfigEntry>,
    /// The output partition of the plan to run.
    #[prost(uint32, tag = "3")]
    pub partition: u32,
}

/// One configuration option.
#[derive(Clone, PartialEq, Message)]
pub struct ConfigEntry {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// Every set option of `config`, `datafusion.*` and registered extensions alike.
pub fn config_entries(config: &ConfigOptions) -> Vec<ConfigEntry> {
    config
        .entries()
        .into_iter()
        .filter_map(|entry| {
            Some(ConfigEntry {
                value: entry.value?,
                key: entry.key,
            })
        })
        .collect()
}

/// Runs tasks sent by coordinators.
#[derive(Debug, Clone)]
pub struct Worker {
    base: SessionState,
    codec: Arc<dyn PhysicalExtensionCodec>,
}

impl Worker {
    /// A worker whose tasks run in sessions like `base` (its functions, extension options and
    /// runtime), decoding plans with DataFusion's default codec.
    pub fn new(base: SessionState) -> Self {
        Self {
            base,
            codec: Arc::new(DefaultPhysicalExtensionCodec {}),
        }
    }

    /// Decodes plans with `codec` (for custom physical nodes).
    pub fn with_codec(mut self, codec: Arc<dyn PhysicalExtensionCodec>) -> Self {
        self.codec = codec;
        self
    }

    /// The session a task runs in: the base session with the task's configuration.
    fn task_state(&self, entries: &[ConfigEntry]) -> Result<SessionState> {
        let mut config = self.base.config().clone();
        let options = config.options_mut();
        for entry in entries {
            options.set(&entry.key, &entry.value).map_err(|e| {
                Error::invalid(format!(
                    "option {} = '{}' cannot be set on this worker: {e}",
                    entry.key, entry.value
                ))
            })?;
        }
        Ok(SessionStateBuilder::new_from_existing(self.base.clone())
            .with_config(SessionConfig::from(options.clone()))
            .build())
    }

    fn run(&self, ticket: &[u8]) -> Result<SendableRecordBatchStream> {
        let task = TaskTicket::decode(ticket)
            .map_err(|e| Error::invalid(format!("not a task ticket: {e}")))?;
        let state = self.task_state(&task.config)?;
        let context = state.task_ctx();
        let plan = physical_plan_from_bytes_with_extension_codec(
            &task.plan,
            &context,
            self.codec.as_ref(),
        )
        .map_err(|e| Error::invalid(format!("cannot decode the task's plan: {e}")))?;
        let partitions = plan.output_partitioning().partition_count();
        let partition = task.partition as usize;
        if partition >= partitions {
            return Err(Error::invalid(format!(
                "partition {partition} asked of a plan with {partitions}"
            )));
        }
        Ok(plan.execute(partition, context)?)
    }
}

type FlightStream<T> = BoxStream<'static, std::result::Result<T, Status>>;

fn unimplemented<T>(what: &str) -> std::result::Result<T, Status> {
    Err(Status::unimplemented(format!(
        "{what} is not served by a Flotilla worker (it runs tasks with DoGet)"
    )))
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
        let stream = self.run(&request.into_inner().ticket)?;
        let schema = stream.schema();
        let batches =
            stream.map_err(|e| FlightError::Tonic(Box::new(Status::from(Error::from(e)))));
        let encoded = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map_err(|e| match e {
                FlightError::Tonic(status) => *status,
                other => Status::internal(other.to_string()),
            });
        Ok(Response::new(encoded.boxed()))
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
        _: Request<Action>,
    ) -> std::result::Result<Response<Self::DoActionStream>, Status> {
        unimplemented("DoAction")
    }

    async fn list_actions(
        &self,
        _: Request<Empty>,
    ) -> std::result::Result<Response<Self::ListActionsStream>, Status> {
        Ok(Response::new(futures::stream::empty().boxed()))
    }
}

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
    let bytes = physical_plan_to_bytes_with_extension_codec(plan, codec)
        .map_err(|e| Error::invalid(format!("cannot encode the plan for {worker}: {e}")))?;
    let ticket = TaskTicket {
        plan: bytes.to_vec(),
        config: config_entries(config),
        partition: u32::try_from(partition)
            .map_err(|_| Error::invalid(format!("partition {partition} is too large")))?,
    };
    let named = |status: Status| {
        Error::new(
            ErrorKind::from_grpc_code(status.code()),
            format!("worker {worker}: {}", status.message()),
        )
    };
    let response = FlightServiceClient::new(channel)
        .do_get(Ticket::new(ticket.encode_to_vec()))
        .await
        .map_err(named)?;
    let worker = worker.to_string();
    let batches = arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(
        response.into_inner().map_err(FlightError::from),
    )
    .map_err(move |e| {
        let error = match e {
            FlightError::Tonic(status) => Error::new(
                ErrorKind::from_grpc_code(status.code()),
                format!("worker {worker}: {}", status.message()),
            ),
            other => Error::unavailable(format!("worker {worker}: {other}")),
        };
        error.into_datafusion()
    });
    Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
}
