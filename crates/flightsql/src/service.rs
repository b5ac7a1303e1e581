//! The Flight SQL commands: statements, prepared statements, updates, metadata and cancel.
//!
//! A query is planned exactly once, by `GetFlightInfo`: the physical plan is kept under the
//! handle the ticket carries, and `DoGet` executes that plan, so the schema in the `FlightInfo`
//! is the schema of the stream. Results stream through `flotilla_common::flight` batch by batch;
//! an error in the middle of a stream reaches the client as the stream's status. `GetSchema`
//! plans logically only; `PollFlightInfo` answers complete at once (planning runs nothing).
//!
//! Errors map to gRPC codes by their [`flotilla_common::ErrorKind`]: bad SQL is
//! `InvalidArgument`, an unknown table `NotFound`, an unreachable database `Unavailable`, a
//! memory limit `ResourceExhausted`.

use crate::fallback::FlightFallback;
use crate::layer::Peer;
use crate::limits::{Admission, Limited};
use crate::metadata;
use crate::metered::{self, MeteredQuery};
use crate::registry::{Cancellable, Cancelled, Prepared, Registry};
use crate::session::{Session, Sessions, no_session};
use crate::{ingest, options};
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, XdbcTypeInfoData};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionCancelQueryRequest, ActionCancelQueryResult, ActionClosePreparedStatementRequest,
    ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, Any,
    CommandGetCatalogs, CommandGetCrossReference, CommandGetDbSchemas, CommandGetExportedKeys,
    CommandGetImportedKeys, CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes,
    CommandGetTables, CommandGetXdbcTypeInfo, CommandPreparedStatementQuery,
    CommandPreparedStatementUpdate, CommandStatementIngest, CommandStatementQuery,
    CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    Action, ActionType, CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus, FlightData,
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage,
    SchemaAsIpc, Ticket,
};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_plan::execute_stream;
use flotilla_common::metrics::metrics;
use flotilla_common::spans::InSpan;
use flotilla_common::{Error, ErrorKind};
use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use tonic::{Request, Response, Status, Streaming};

/// The Flight SQL service of a node. Build one with [`crate::FlightSqlServer`].
pub struct FlotillaFlightSql {
    pub(crate) registry: Arc<Registry>,
    /// Turns to run queries (`[server] max_concurrent_queries`).
    pub(crate) admission: Arc<Admission>,
    sessions: Arc<Sessions>,
    sql_info: SqlInfoData,
    xdbc_types: XdbcTypeInfoData,
    pub(crate) fallback: Option<Arc<dyn FlightFallback>>,
    /// The node has a cluster secret: the fallback answers only calls carrying it.
    peers_only: bool,
}

impl FlotillaFlightSql {
    pub(crate) fn new(
        registry: Arc<Registry>,
        admission: Arc<Admission>,
        sessions: Arc<Sessions>,
        fallback: Option<Arc<dyn FlightFallback>>,
        peers_only: bool,
    ) -> flotilla_common::Result<Self> {
        Ok(Self {
            registry,
            admission,
            sessions,
            sql_info: metadata::sql_info()?,
            xdbc_types: metadata::xdbc_type_info()?,
            fallback,
            peers_only,
        })
    }

    /// Whether the fallback takes `ticket` from any caller (see
    /// [`FlightFallback::carries_authorization`]).
    pub(crate) fn carries_authorization(&self, ticket: &Ticket) -> bool {
        self.fallback
            .as_ref()
            .is_some_and(|fallback| fallback.carries_authorization(ticket))
    }

    /// Refuses a call for the fallback that does not come from a node of the cluster, when
    /// the node has a cluster secret.
    fn check_peer<T>(&self, request: &Request<T>) -> flotilla_common::Result<()> {
        if self.peers_only && request.extensions().get::<Peer>().is_none() {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                "tasks and actions of other nodes need the cluster secret ([cluster] secret_env)",
            ));
        }
        Ok(())
    }
}

type DoGetStream = <FlotillaFlightSql as FlightService>::DoGetStream;

/// A DataFusion or Flotilla error as the status a client sees.
pub(crate) fn status(e: impl Into<flotilla_common::Error>) -> Status {
    Status::from(e.into())
}

/// The session the layer admitted this call into.
pub(crate) fn session_of<T>(request: &Request<T>) -> flotilla_common::Result<Arc<Session>> {
    request
        .extensions()
        .get::<Arc<Session>>()
        .cloned()
        .ok_or_else(no_session)
}

/// An Arrow schema as the IPC bytes Flight SQL messages carry.
fn schema_bytes(schema: &Schema) -> flotilla_common::Result<prost::bytes::Bytes> {
    let message: IpcMessage = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e| Error::internal(format!("encoding a schema: {e}")))?;
    Ok(message.0)
}

/// Streams record batches as Flight data, sending the schema first even when there are none.
fn flight_stream(
    schema: SchemaRef,
    batches: impl Stream<Item = Result<RecordBatch, Status>> + Send + 'static,
) -> BoxStream<'static, Result<FlightData, Status>> {
    flotilla_common::flight::flight_data(
        schema,
        batches.map_err(|s| FlightError::Tonic(Box::new(s))),
        IpcWriteOptions::default(),
    )
    .map_err(Status::from)
    .boxed()
}

/// One batch as a DoGet response.
fn one_batch(batch: RecordBatch) -> Response<DoGetStream> {
    let schema = batch.schema();
    Response::new(flight_stream(schema, stream::iter([Ok(batch)])))
}

/// A FlightInfo whose one ticket is `ticket` (a metadata command, answered by DoGet as is).
fn info_for(
    ticket: Any,
    schema: &Schema,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let endpoint = FlightEndpoint::new().with_ticket(Ticket::new(ticket.encode_to_vec()));
    let info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Error::internal(format!("encoding a schema: {e}")))?
        .with_endpoint(endpoint)
        .with_descriptor(descriptor);
    Ok(Response::new(info))
}

/// The statement handle a ticket carries, as text.
fn handle_text(bytes: &[u8]) -> flotilla_common::Result<&str> {
    std::str::from_utf8(bytes).map_err(|_| Error::not_found("unknown ticket"))
}

#[tonic::async_trait]
impl FlightSqlService for FlotillaFlightSql {
    type FlightService = FlotillaFlightSql;

    /// The layer has already checked the credentials and opened the session; the handshake
    /// returns its token (in the `authorization` header and as the payload).
    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        let session = session_of(&request)?;
        let token = session.token().to_string();
        let reply = HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into_bytes().into(),
        };
        let mut response: Response<
            Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>,
        > = Response::new(Box::pin(stream::iter([Ok(reply)])));
        if let Ok(value) = format!("Bearer {token}").parse() {
            response.metadata_mut().insert("authorization", value);
        }
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let session = session_of(&request)?;
        let planned = async {
            let planned = self.planned(&session, &query.query).await?;
            self.plan_query(
                Arc::clone(&session),
                query.query,
                planned.plan,
                Some(planned.state),
                request.into_inner(),
            )
            .await
        };
        planned
            .await
            .map_err(Status::from)
            .inspect_err(metered::failed_to_start)
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let planned = async {
            let prepared = self.registry.prepared(&query.prepared_statement_handle)?;
            let plan = prepared.plan_with(None)?;
            let session = Arc::clone(&prepared.session);
            let sql = prepared.sql.clone();
            self.plan_query(session, sql, plan, None, request.into_inner())
                .await
        };
        planned
            .await
            .map_err(Status::from)
            .inspect_err(metered::failed_to_start)
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let rows = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&rows);
        let started = async {
            let handle = handle_text(&ticket.statement_handle)?;
            let (query, cancel) = self.registry.start(handle)?;
            let run = self.run_of(handle, &query).await?;
            query.listed.started();
            let listed = Arc::clone(&query.listed);
            let counting = Arc::clone(&listed);
            let schema = query.plan.schema();
            let batches = match query.partition {
                Some(partition) => query.plan.execute(partition, Arc::clone(&run.task)),
                None => execute_stream(query.plan, Arc::clone(&run.task)),
            }
            .map_err(status)?
            .map_err(status)
            .inspect_ok(move |batch| {
                metrics().result_rows.inc_by(batch.num_rows() as u64);
                counter.fetch_add(batch.num_rows() as u64, AtomicOrdering::Relaxed);
                counting.sent(batch.num_rows() as u64, 0);
            });
            // A query served as several endpoints counts once, with its first.
            let counted = query.partition.unwrap_or(0) == 0;
            let id = handle.to_string();
            let flight = flight_stream(schema, batches);
            Ok::<_, Status>((flight, cancel, run, counted, id, listed))
        };
        let (flight, cancel, run, counted, id, listed) =
            started.await.inspect_err(metered::failed_to_start)?;
        // Polled inside `query`: what runs in its polls logs with its id.
        let span = tracing::info_span!(target: "flotilla::query", "query", query = %id);
        let flight = MeteredQuery::new(
            Limited::new(Cancellable::new(flight, cancel), run),
            id,
            rows,
            counted,
        )
        .listed_as(listed);
        Ok(Response::new(Box::pin(InSpan::new(flight, span))))
    }

    async fn do_put_statement_update(
        &self,
        command: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let session = session_of(&request)?;
        let plan = self.logical_plan(&session, &command.query).await?;
        Ok(self.run_update(&session, plan).await?)
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let session = session_of(&request)?;
        // A statement that cannot be prepared is a query that failed (ADBC prepares each).
        let prepared = async {
            let plan = self.logical_plan(&session, &query.query).await?;
            let dataset = Self::logical_schema(&session, plan.clone()).await?;
            Prepared::new(session, query.query, plan, dataset).map_err(Error::from)
        };
        let prepared = prepared
            .await
            .map_err(Status::from)
            .inspect_err(metered::failed_to_start)?;
        let dataset_schema = schema_bytes(&prepared.dataset_schema())?;
        let parameter_schema = schema_bytes(&prepared.parameters)?;
        let handle = self.registry.prepare(prepared);
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into(),
            dataset_schema,
            parameter_schema,
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        _request: Request<Action>,
    ) -> Result<(), Status> {
        // Closing twice is harmless; clients close on every code path.
        self.registry
            .close_prepared(&query.prepared_statement_handle);
        Ok(())
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        // Clients bind through this command for updates too (several rows: one execution
        // each), so every row is kept; a query checks for exactly one when it runs.
        let prepared = self.registry.prepared(&query.prepared_statement_handle)?;
        let rows = Self::parameter_rows(request, &prepared).await?;
        if !rows.is_empty() {
            prepared.bind(rows);
        }
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(query.prepared_statement_handle),
        })
    }

    async fn do_put_prepared_statement_update(
        &self,
        query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let prepared = self.registry.prepared(&query.prepared_statement_handle)?;
        let mut rows = Self::parameter_rows(request, &prepared).await?;
        if rows.is_empty() {
            rows = prepared.bound_rows();
        }
        let session = Arc::clone(&prepared.session);
        if rows.is_empty() {
            return Ok(self.run_update(&session, prepared.plan_with(None)?).await?);
        }
        let mut total = 0i64;
        for row in rows {
            let plan = prepared.plan_with(Some(row))?;
            total = total.saturating_add(self.run_update(&session, plan).await?);
        }
        Ok(total)
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        info_for(query.as_any(), &schema, request.into_inner())
    }

    async fn do_get_catalogs(
        &self,
        _query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let session = session_of(&request)?;
        let batch = metadata::catalogs(session.context()).map_err(status)?;
        Ok(one_batch(batch))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        info_for(query.as_any(), &schema, request.into_inner())
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let session = session_of(&request)?;
        let batch = metadata::db_schemas(session.context(), &query).map_err(status)?;
        Ok(one_batch(batch))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = metadata::tables_schema(&query);
        info_for(query.as_any(), &schema, request.into_inner())
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let session = session_of(&request)?;
        let batch = metadata::tables(session.context(), &query)
            .await
            .map_err(status)?;
        Ok(one_batch(batch))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        info_for(query.as_any(), &schema, request.into_inner())
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let mut builder = query.into_builder();
        for table_type in metadata::TABLE_TYPES {
            builder.append(table_type);
        }
        Ok(one_batch(builder.build().map_err(status_arrow)?))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = self.sql_info.schema();
        info_for(query.as_any(), &schema, request.into_inner())
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let batch = query
            .into_builder(&self.sql_info)
            .build()
            .map_err(status_arrow)?;
        Ok(one_batch(batch))
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = self.xdbc_types.schema();
        info_for(query.as_any(), &schema, request.into_inner())
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let batch = query
            .into_builder(&self.xdbc_types)
            .build()
            .map_err(status_arrow)?;
        Ok(one_batch(batch))
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        info_for(
            query.as_any(),
            &metadata::PRIMARY_KEYS_SCHEMA,
            request.into_inner(),
        )
    }

    /// Keys are not known for federated tables: the answer is empty, with the right schema.
    async fn do_get_primary_keys(
        &self,
        _query: CommandGetPrimaryKeys,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let schema = Arc::clone(&metadata::PRIMARY_KEYS_SCHEMA);
        Ok(one_batch(RecordBatch::new_empty(schema)))
    }

    async fn get_flight_info_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        info_for(
            query.as_any(),
            &metadata::FOREIGN_KEYS_SCHEMA,
            request.into_inner(),
        )
    }

    async fn do_get_exported_keys(
        &self,
        _query: CommandGetExportedKeys,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let schema = Arc::clone(&metadata::FOREIGN_KEYS_SCHEMA);
        Ok(one_batch(RecordBatch::new_empty(schema)))
    }

    async fn get_flight_info_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        info_for(
            query.as_any(),
            &metadata::FOREIGN_KEYS_SCHEMA,
            request.into_inner(),
        )
    }

    async fn do_get_imported_keys(
        &self,
        _query: CommandGetImportedKeys,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let schema = Arc::clone(&metadata::FOREIGN_KEYS_SCHEMA);
        Ok(one_batch(RecordBatch::new_empty(schema)))
    }

    async fn get_flight_info_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        info_for(
            query.as_any(),
            &metadata::FOREIGN_KEYS_SCHEMA,
            request.into_inner(),
        )
    }

    async fn do_get_cross_reference(
        &self,
        _query: CommandGetCrossReference,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let schema = Arc::clone(&metadata::FOREIGN_KEYS_SCHEMA);
        Ok(one_batch(RecordBatch::new_empty(schema)))
    }

    /// The deprecated Flight SQL cancel: cancels the query of each ticket in the FlightInfo.
    async fn do_action_cancel_query(
        &self,
        query: ActionCancelQueryRequest,
        _request: Request<Action>,
    ) -> Result<ActionCancelQueryResult, Status> {
        let info = FlightInfo::decode(query.info)
            .map_err(|e| Error::invalid(format!("malformed FlightInfo: {e}")))?;
        let outcome = self.cancel_info(&info).await?;
        Ok(ActionCancelQueryResult {
            result: outcome as i32,
        })
    }

    /// Tickets that are not Flight SQL commands: the fallback's (a worker's tasks), if any.
    async fn do_get_fallback(
        &self,
        request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        match &self.fallback {
            Some(fallback) => {
                if !fallback.carries_authorization(request.get_ref()) {
                    self.check_peer(&request)?;
                }
                Ok(Response::new(fallback.do_get(request.into_inner()).await?))
            }
            None => {
                Err(Error::invalid(format!("unknown ticket type '{}'", message.type_url)).into())
            }
        }
    }

    /// The Flight actions beyond Flight SQL's: `CancelFlightInfo` (which replaced
    /// CancelQuery) and the session actions.
    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        const SESSION_ACTIONS: [&str; 4] = [
            "CancelFlightInfo",
            "SetSessionOptions",
            "GetSessionOptions",
            "CloseSession",
        ];
        // Other nodes' actions go to the fallback (when the node has a cluster secret, only
        // calls carrying it: a client's unknown action stays unknown).
        if !SESSION_ACTIONS.contains(&request.get_ref().r#type.as_str())
            && let Some(fallback) = &self.fallback
            && self.check_peer(&request).is_ok()
            && let Some(answer) = fallback.do_action(request.get_ref().clone()).await
        {
            return Ok(Response::new(answer?));
        }
        let session = session_of(&request)?;
        let action = request.into_inner();
        let kind = action.r#type.clone();
        let malformed =
            |e: prost::DecodeError| Error::invalid(format!("malformed {kind} request: {e}"));
        let answer = match action.r#type.as_str() {
            "CancelFlightInfo" => {
                let cancel = CancelFlightInfoRequest::decode(action.body).map_err(malformed)?;
                let info = cancel.info.ok_or_else(|| {
                    Error::invalid("CancelFlightInfoRequest without a FlightInfo")
                })?;
                let status = self.cancel_info(&info).await?;
                CancelFlightInfoResult {
                    status: status as i32,
                }
                .encode_to_vec()
            }
            "SetSessionOptions" => {
                let set =
                    options::SetSessionOptionsRequest::decode(action.body).map_err(malformed)?;
                options::set(&session, set).encode_to_vec()
            }
            "GetSessionOptions" => options::get(&session).encode_to_vec(),
            "CloseSession" => {
                self.sessions.close(session.token());
                options::CloseSessionResult { status: 1 }.encode_to_vec()
            }
            other => {
                return Err(Error::invalid(format!(
                    "unknown action '{other}' (the server knows the Flight SQL actions, \
                     CancelFlightInfo, SetSessionOptions, GetSessionOptions and CloseSession)"
                ))
                .into());
            }
        };
        let body = arrow_flight::Result {
            body: answer.into(),
        };
        Ok(Response::new(Box::pin(stream::iter([Ok(body)]))))
    }

    async fn list_custom_actions(&self) -> Option<Vec<Result<ActionType, Status>>> {
        let actions = [
            ("CancelFlightInfo", "Cancel the queries of a FlightInfo"),
            (
                "SetSessionOptions",
                "Set options of this session (its DataFusion configuration)",
            ),
            ("GetSessionOptions", "The options of this session"),
            ("CloseSession", "End this session"),
        ];
        let actions = actions.into_iter().map(|(name, description)| {
            Ok(ActionType {
                r#type: name.to_string(),
                description: description.to_string(),
            })
        });
        Some(actions.collect())
    }

    async fn do_put_statement_ingest(
        &self,
        command: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let session = session_of(&request)?;
        Ok(ingest::ingest(&session, command, request).await?)
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

fn status_arrow(e: FlightError) -> Error {
    Error::internal(format!("building a metadata result: {e}"))
}

impl FlotillaFlightSql {
    /// Cancels the query behind every statement ticket of `info`.
    async fn cancel_info(&self, info: &FlightInfo) -> Result<CancelStatus, Status> {
        let mut outcome = CancelStatus::NotCancellable;
        for endpoint in &info.endpoint {
            let Some(ticket) = &endpoint.ticket else {
                continue;
            };
            if let Some(fallback) = &self.fallback
                && fallback.cancel(ticket).await?
            {
                outcome = CancelStatus::Cancelled;
                continue;
            }
            let Ok(any) = Any::decode(ticket.ticket.clone()) else {
                continue;
            };
            let Ok(Some(statement)) = any.unpack::<TicketStatementQuery>() else {
                continue;
            };
            let handle = handle_text(&statement.statement_handle)?;
            match self.registry.cancel(handle) {
                Cancelled::BeforeStart | Cancelled::WhileRunning => {
                    outcome = CancelStatus::Cancelled;
                }
                Cancelled::Unknown => {}
            }
        }
        Ok(outcome)
    }
}
