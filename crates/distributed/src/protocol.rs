//! The wire protocol between nodes: what travels in tickets and actions, and the limits.
//!
//! ```text
//!  DoGet(Ticket)   Envelope { type_url: TASK_TICKET_TYPE,   value: TaskTicket }   → a stage task
//!                  Envelope { type_url: RESULT_TICKET_TYPE, value: ResultTicket } → a client
//!                                                         reading a query's rows (results.rs)
//!  ◀── FlightData: Arrow IPC batches, then one message whose app_metadata is a StageReport
//!  DoAction        END_QUERY_ACTION (body: query id) · STATUS_ACTION (answer: running tasks)
//! ```

use arrow_flight::FlightData;
use datafusion::config::ConfigOptions;
use flotilla_common::{Error, Result};
use prost::Message;

use crate::stats::StageReport;

pub use flotilla_common::grpc::MAX_MESSAGE_BYTES;

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
    /// For a task of a stage: the query it belongs to. Every partition of one task runs on one
    /// instance of its plan (a shuffle's repartition serves all its consumers), kept by the
    /// worker until each partition has been asked for. Empty: a one-off plan.
    #[prost(string, tag = "4")]
    pub query: String,
    /// The stage of the query.
    #[prost(uint32, tag = "5")]
    pub stage: u32,
    /// Which task of the stage this is, and how many the stage has.
    #[prost(uint32, tag = "6")]
    pub task: u32,
    #[prost(uint32, tag = "7")]
    pub tasks: u32,
}

/// The type of a task ticket inside its envelope.
pub const TASK_TICKET_TYPE: &str = "type.googleapis.com/flotilla.distributed.TaskTicket";

/// What a ticket travels in: the wire format of `google.protobuf.Any`, as Flight SQL tickets
/// are, so a node serving Flight SQL and a worker on one port tells them apart by type.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Envelope {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

impl TaskTicket {
    /// The ticket's bytes, in its envelope.
    pub fn seal(&self) -> Vec<u8> {
        Envelope {
            type_url: TASK_TICKET_TYPE.to_string(),
            value: self.encode_to_vec(),
        }
        .encode_to_vec()
    }

    /// The ticket in `bytes`, made by [`Self::seal`].
    ///
    /// # Errors
    /// When `bytes` is not a sealed task ticket.
    pub fn open(bytes: &[u8]) -> Result<Self> {
        let envelope = Envelope::decode(bytes)
            .ok()
            .filter(|envelope| envelope.type_url == TASK_TICKET_TYPE)
            .ok_or_else(|| Error::invalid("not a task ticket"))?;
        TaskTicket::decode(envelope.value.as_slice())
            .map_err(|e| Error::invalid(format!("not a task ticket: {e}")))
    }
}

/// One configuration option.
#[derive(Clone, PartialEq, Message)]
pub struct ConfigEntry {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// Every set option of `config`, `datafusion.*` and registered extensions alike, each under
/// the full key `SET` takes (extensions list their keys with or without their prefix).
pub fn config_entries(config: &ConfigOptions) -> Vec<ConfigEntry> {
    let own = config
        .entries()
        .into_iter()
        .filter(|entry| entry.key.starts_with("datafusion."))
        .filter_map(|entry| {
            Some(ConfigEntry {
                value: entry.value?,
                key: entry.key,
            })
        });
    let extensions = config.extensions.iter().flat_map(|(prefix, extension)| {
        extension.entries().into_iter().filter_map(move |entry| {
            let key = if entry.key.starts_with(&format!("{prefix}.")) {
                entry.key
            } else {
                format!("{prefix}.{}", entry.key)
            };
            Some(ConfigEntry {
                value: entry.value?,
                key,
            })
        })
    });
    own.chain(extensions).collect()
}

/// The action a coordinator sends when a query is over (finished, failed or dropped).
pub const END_QUERY_ACTION: &str = "flotilla.end_query";

/// The action that asks a worker how many stage tasks it runs (the answer's body: the number,
/// as text).
pub const STATUS_ACTION: &str = "flotilla.status";

/// The message carrying a stage task stream's report: no Arrow IPC, the report in
/// `app_metadata`.
pub(crate) fn report_message(report: &StageReport) -> FlightData {
    FlightData {
        app_metadata: report.encode_to_vec().into(),
        ..FlightData::default()
    }
}

/// The report `data` carries, if it is a report message.
pub(crate) fn stage_report(data: &FlightData) -> Option<StageReport> {
    if !data.data_header.is_empty() || data.app_metadata.is_empty() {
        return None;
    }
    StageReport::decode(data.app_metadata.as_ref()).ok()
}
