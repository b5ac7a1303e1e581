//! Results straight from the workers: a Flight SQL client reads the rows of a distributed query
//! from the nodes that compute them, not through the node that planned it.
//!
//! ```text
//!  client ──GetFlightInfo──▶ node A plans: DistributedExec → NetworkCoalesceExec(stage S on B, C)
//!         ◀── FlightInfo { endpoint(location B, result ticket S/task 0),
//!                          endpoint(location C, result ticket S/task 1) }
//!  client ──DoGet(ticket)──▶ B: runs every partition of its task of stage S, streams them merged
//!  client ──DoGet(ticket)──▶ C: likewise                       (A is not on the rows' path)
//! ```
//!
//! Only a query whose last stage just gathers qualifies (no merge, sort, limit or other
//! operator left above the gather: those must see every row in one place). The ticket is the
//! stage task's own ticket with the query's workers and an expiry, signed with the cluster
//! secret when the cluster has one (HMAC-SHA256): a worker runs it for any client — the client
//! proved who it is to the node that planned the query, and the signature proves that node
//! issued the ticket. Without a secret the cluster is open anyway (any caller may send tasks).
//!
//! A result stream dropped before its end (the client went away or cancelled) ends the query on
//! every worker, like dropping a `DistributedExec` does.

use datafusion::common::Result as DfResult;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use flotilla_common::{Error, ErrorKind, Result};
use hmac::{Hmac, KeyInit, Mac};
use prost::Message;
use sha2::Sha256;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::exec::{DistributedExec, NetworkContext};
use crate::protocol::{Envelope, TaskTicket, config_entries};

/// The type of a result ticket inside its envelope.
pub const RESULT_TICKET_TYPE: &str = "type.googleapis.com/flotilla.distributed.ResultTicket";

/// How long a result ticket may wait for its `DoGet` (as long as a worker keeps a task nobody
/// asked for).
pub const RESULT_TICKET_LIFETIME: Duration = Duration::from_secs(300);

/// What a client presents to a worker to read one task's rows.
#[derive(Clone, PartialEq, Message)]
pub struct ResultTicket {
    /// The task of the gathered stage (every partition of it is served).
    #[prost(message, optional, tag = "1")]
    pub task: Option<TaskTicket>,
    /// Every worker of the query (told to end it when a result stream is dropped early).
    #[prost(string, repeated, tag = "2")]
    pub workers: Vec<String>,
    /// Milliseconds since the Unix epoch after which the ticket is refused.
    #[prost(uint64, tag = "3")]
    pub expires_ms: u64,
    /// HMAC-SHA256 with the cluster secret over the ticket encoded without this field; empty
    /// in a cluster without a secret.
    #[prost(bytes = "vec", tag = "4")]
    pub signature: Vec<u8>,
}

/// Where to read one task's rows: the worker's URL and the ticket it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultEndpoint {
    pub location: String,
    pub ticket: Vec<u8>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

fn mac(secret: &str, ticket: &ResultTicket) -> Result<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|e| Error::internal(format!("the cluster secret cannot key HMAC: {e}")))?;
    let unsigned = ResultTicket {
        signature: Vec::new(),
        ..ticket.clone()
    };
    mac.update(&unsigned.encode_to_vec());
    Ok(mac)
}

impl ResultTicket {
    /// The ticket's bytes, in its envelope, signed with `secret` when there is one.
    ///
    /// # Errors
    /// Never in practice (HMAC takes keys of any length).
    pub fn seal(mut self, secret: Option<&str>) -> Result<Vec<u8>> {
        self.signature = match secret {
            Some(secret) => mac(secret, &self)?.finalize().into_bytes().to_vec(),
            None => Vec::new(),
        };
        Ok(Envelope {
            type_url: RESULT_TICKET_TYPE.to_string(),
            value: self.encode_to_vec(),
        }
        .encode_to_vec())
    }

    /// The ticket in `bytes` (made by [`Self::seal`]), checked: signed with `secret` when the
    /// worker has one, and not expired.
    ///
    /// # Errors
    /// When `bytes` is not a result ticket, its signature does not match, or it expired.
    pub fn open(bytes: &[u8], secret: Option<&str>) -> Result<Self> {
        let envelope = Envelope::decode(bytes)
            .ok()
            .filter(|envelope| envelope.type_url == RESULT_TICKET_TYPE)
            .ok_or_else(|| Error::invalid("not a result ticket"))?;
        let ticket = ResultTicket::decode(envelope.value.as_slice())
            .map_err(|e| Error::invalid(format!("not a result ticket: {e}")))?;
        if let Some(secret) = secret
            && mac(secret, &ticket)?
                .verify_slice(&ticket.signature)
                .is_err()
        {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                "the result ticket was not issued by a node of this cluster (its signature \
                 does not match the cluster secret)",
            ));
        }
        if ticket.expires_ms < now_ms() {
            return Err(Error::invalid(
                "the result ticket expired (tickets live 5 minutes): run the query again",
            ));
        }
        if ticket
            .task
            .as_ref()
            .is_none_or(|task| task.query.is_empty())
        {
            return Err(Error::invalid("a result ticket names no stage task"));
        }
        Ok(ticket)
    }
}

/// Whether `bytes` is a result ticket (checked or not): such tickets carry their own
/// authorization.
pub fn is_result_ticket(bytes: &[u8]) -> bool {
    Envelope::decode(bytes).is_ok_and(|envelope| envelope.type_url == RESULT_TICKET_TYPE)
}

/// Endpoints reading `plan`'s rows from the workers of its last stage, one per task, when the
/// plan qualifies (see the module documentation; `EXPLAIN` shows
/// `flight_sql_results_from=[…]` on its `DistributedExec`); `None` otherwise (read them where
/// the plan was made).
///
/// # Errors
/// When the stage's plan cannot be encoded.
pub fn result_endpoints(
    plan: &Arc<dyn ExecutionPlan>,
    context: &TaskContext,
) -> DfResult<Option<Vec<ResultEndpoint>>> {
    let config = context.session_config();
    let (Some(root), Some(network)) = (
        plan.downcast_ref::<DistributedExec>(),
        config.get_extension::<NetworkContext>(),
    ) else {
        return Ok(None);
    };
    let Some(gather) = root.client_gather() else {
        return Ok(None);
    };
    let stage = gather.stage();
    let plan_bytes = gather.producer_bytes(network.codec.as_ref())?;
    let expires_ms = now_ms().saturating_add(RESULT_TICKET_LIFETIME.as_millis() as u64);
    let entries = config_entries(config.options());
    let mut endpoints = Vec::with_capacity(stage.workers.len());
    for (task, worker) in stage.workers.iter().enumerate() {
        let ticket = ResultTicket {
            task: Some(TaskTicket {
                plan: plan_bytes.as_ref().clone(),
                config: entries.clone(),
                partition: 0,
                query: stage.query.clone(),
                stage: stage.stage as u32,
                task: task as u32,
                tasks: stage.workers.len() as u32,
            }),
            workers: root.workers().to_vec(),
            expires_ms,
            signature: Vec::new(),
        };
        endpoints.push(ResultEndpoint {
            location: worker.clone(),
            ticket: ticket
                .seal(network.channels.secret())
                .map_err(Error::into_datafusion)?,
        });
    }
    Ok(Some(endpoints))
}
