//! Statements: a query planned once for its tickets, a change run under the node's limits,
//! `GetSchema` and `PollFlightInfo` without running anything, and the parameters a client binds.

use crate::limits::{self, Run};
use crate::registry::{PlannedQuery, Prepared};
use crate::service::{FlotillaFlightSql, session_of};
use crate::serving::FlightOptions;
use crate::session::Session;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::Command;
use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::sql::{Any, ProstMessageExt, TicketStatementQuery};
use arrow_flight::{
    FlightDescriptor, FlightEndpoint, FlightInfo, PollInfo, SchemaAsIpc, SchemaResult, Ticket,
};
use datafusion::arrow::array::{Array, UInt64Array};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{DdlStatement, LogicalPlan, Statement};
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast;
use flotilla_common::options::QueryLimits;
use flotilla_common::{Error, Result};
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use std::ops::ControlFlow;
use std::sync::Arc;
use tokio::time::Instant;
use tonic::{Request, Response};

/// A statement's logical plan, and the copy of the session's state it was planned in.
pub(crate) struct Planned {
    pub(crate) state: SessionState,
    pub(crate) plan: LogicalPlan,
}

/// The number of rows a DML statement reports (the sum of its `count` column).
fn rows_affected(batches: &[RecordBatch]) -> i64 {
    let mut total = 0u64;
    for batch in batches {
        if let Some(counts) = batch
            .column_by_name("count")
            .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
        {
            total += counts.iter().flatten().sum::<u64>();
        }
    }
    i64::try_from(total).unwrap_or(i64::MAX)
}

/// Whether a plan writes rows and reports how many (INSERT, COPY, CREATE TABLE … AS).
fn writes_rows(plan: &LogicalPlan) -> bool {
    matches!(
        plan,
        LogicalPlan::Dml(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(_))
    )
}

/// Whether a plan returns rows to read (a query) rather than changing something.
fn returns_rows(plan: &LogicalPlan) -> bool {
    !matches!(
        plan,
        LogicalPlan::Dml(_)
            | LogicalPlan::Ddl(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::Statement(_)
    )
}

impl FlotillaFlightSql {
    /// Plans a logical plan (of statement `sql`) physically in `session` and returns the
    /// FlightInfo of its ticket.
    pub(crate) async fn plan_query(
        &self,
        session: Arc<Session>,
        sql: String,
        plan: LogicalPlan,
        state: Option<SessionState>,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>> {
        // A change sent as a query (DB-API `execute`, JDBC `executeQuery`) runs now, like DDL,
        // not when (or if) the client fetches its row count.
        let changes = writes_rows(&plan);
        let physical: Arc<dyn ExecutionPlan> = match state {
            // A query is planned physically in the copy of the session's state its statement
            // was planned in, not in another copy.
            Some(state) if returns_rows(&plan) => state.create_physical_plan(&plan).await?,
            _ => {
                let frame =
                    flotilla_federation::execute_logical_plan(session.context(), plan).await?;
                if changes {
                    let schema = Arc::clone(frame.schema().inner());
                    let counts = self
                        .under_limits(&session, async {
                            frame.collect().await.map_err(Error::from)
                        })
                        .await?;
                    MemorySourceConfig::try_new_exec(&[counts], schema, None)?
                } else {
                    frame.create_physical_plan().await?
                }
            }
        };
        let schema = physical.schema();
        if !changes
            && let Some(fallback) = &self.fallback
            && let Some(endpoints) =
                fallback.result_endpoints(&physical, &session.context().task_ctx())?
        {
            // Other nodes serve the rows, in no particular order across endpoints. The console
            // lists the query as handed over: this node sees neither its rows nor its end.
            let asked = flotilla_common::activity::Asked {
                protocol: "flightsql",
                user: session.user().map(str::to_string),
                sql,
            };
            flotilla_common::activity::activity()
                .begin(asked, Arc::clone(&physical), Box::new(|| {}))
                .ended("served by workers", None);
            let mut info = FlightInfo::new()
                .try_with_schema(&schema)
                .map_err(|e| Error::internal(format!("encoding a schema: {e}")))?
                .with_descriptor(descriptor);
            for endpoint in endpoints {
                info = info.with_endpoint(endpoint);
            }
            return Ok(Response::new(info));
        }
        // Rows in several partitions have no order among them: each partition is an endpoint
        // of its own, which clients read concurrently.
        let per_partition = physical.output_partitioning().partition_count() > 1
            && FlightOptions::of(&session.options()).partitioned_results;
        let handles = self.registry.plan(physical, session, sql, per_partition);
        let mut info = FlightInfo::new()
            .try_with_schema(&schema)
            .map_err(|e| Error::internal(format!("encoding a schema: {e}")))?
            .with_descriptor(descriptor)
            .with_ordered(!per_partition);
        for handle in handles {
            let ticket = TicketStatementQuery {
                statement_handle: handle.into(),
            };
            info = info.with_endpoint(
                FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec())),
            );
        }
        Ok(Response::new(info))
    }

    /// Runs a statement that changes something and returns how many rows it changed (0 for
    /// DDL and `SET`).
    pub(crate) async fn run_update(&self, session: &Session, plan: LogicalPlan) -> Result<i64> {
        if returns_rows(&plan) {
            return Err(Error::invalid(
                "this statement returns rows: run it as a query (executeQuery), not as an update",
            ));
        }
        let counts = writes_rows(&plan);
        let frame = flotilla_federation::execute_logical_plan(session.context(), plan).await?;
        let batches = self
            .under_limits(session, async {
                frame.collect().await.map_err(Error::from)
            })
            .await?;
        Ok(if counts { rows_affected(&batches) } else { 0 })
    }

    /// The run of `query`: the one its other endpoints started, or a new one — with a turn
    /// (waiting in the queue, within the statement timeout, which counts from here) and the
    /// context its partitions execute in.
    pub(crate) async fn run_of(&self, handle: &str, query: &PlannedQuery) -> Result<Arc<Run>> {
        let mut slot = query.run.lock().await;
        if let Some(run) = slot.upgrade() {
            return Ok(run);
        }
        let deadline = QueryLimits::of(&query.session.options())
            .statement_timeout
            .map(|timeout| (Instant::now() + timeout, timeout));
        let turn = match deadline {
            Some((at, timeout)) => tokio::time::timeout_at(at, self.admission.admit())
                .await
                .map_err(|_| limits::timed_out(timeout))??,
            None => self.admission.admit().await?,
        };
        let task = query.session.query_task_context(handle);
        let run = Arc::new(Run::new(turn, task, deadline));
        *slot = Arc::downgrade(&run);
        Ok(run)
    }

    /// Runs `work` (a statement that changes rows) under the session's limits: with a turn
    /// of the node's, stopped at its statement timeout.
    pub(crate) async fn under_limits<T>(
        &self,
        session: &Session,
        work: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let run = async {
            let _turn = self.admission.admit().await?;
            work.await
        };
        match QueryLimits::of(&session.options()).statement_timeout {
            Some(timeout) => tokio::time::timeout(timeout, run)
                .await
                .map_err(|_| limits::timed_out(timeout))?,
            None => run.await,
        }
    }

    /// `GetSchema`: the schema of the rows a command returns, without running anything. A
    /// statement or prepared statement is planned logically (an `INSERT` is not run, an
    /// `EXECUTE name(…)` is resolved to the prepared statement's rows); a metadata command
    /// answers with the schema its `GetFlightInfo` announces.
    pub(crate) async fn schema_of(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>> {
        let any = Any::decode(&*request.get_ref().cmd)
            .map_err(|_| Error::invalid("GetSchema takes a Flight SQL command descriptor"))?;
        let command = Command::try_from(any)
            .map_err(|e| Error::invalid(format!("not a Flight SQL command: {e}")))?;
        let schema: SchemaRef = match command {
            Command::CommandStatementQuery(query) => {
                let session = session_of(&request)?;
                let plan = self.logical_plan(&session, &query.query).await?;
                Self::logical_schema(&session, plan).await?
            }
            Command::CommandPreparedStatementQuery(query) => {
                let prepared = self.registry.prepared(&query.prepared_statement_handle)?;
                prepared.dataset_schema()
            }
            _ => {
                let info = self.get_flight_info(request).await?.into_inner();
                let schema = info
                    .try_decode_schema()
                    .map_err(|e| Error::internal(format!("decoding a schema: {e}")))?;
                Arc::new(schema)
            }
        };
        let result: SchemaResult = SchemaAsIpc::new(&schema, &IpcWriteOptions::default())
            .try_into()
            .map_err(|e| Error::internal(format!("encoding a schema: {e}")))?;
        Ok(Response::new(result))
    }

    /// `PollFlightInfo`: a query is planned, not run, by `GetFlightInfo`, so its FlightInfo is
    /// complete at once (progress 1, nothing to poll again); the rows stream with `DoGet`.
    pub(crate) async fn poll_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>> {
        let info = self.get_flight_info(request).await?.into_inner();
        Ok(Response::new(PollInfo {
            info: Some(info),
            flight_descriptor: None,
            progress: Some(1.0),
            expiration_time: None,
        }))
    }

    /// The logical plan of `sql` in `session`. JDBC-style `?` parameters become `$1`, `$2`, …
    /// in the order they appear (DataFusion numbers only `$n` parameters).
    pub(crate) async fn logical_plan(&self, session: &Session, sql: &str) -> Result<LogicalPlan> {
        Ok(self.planned(session, sql).await?.plan)
    }

    /// [`Self::logical_plan`], with the copy of the session's state it was planned in.
    pub(crate) async fn planned(&self, session: &Session, sql: &str) -> Result<Planned> {
        let state = session.context().state();
        let dialect = state.config().options().sql_parser.dialect;
        let mut statement = state.sql_to_statement(sql, &dialect)?;
        if let DFStatement::Statement(inner) = &mut statement {
            number_placeholders(inner);
        }
        let plan = state.statement_to_plan(statement).await?;
        Ok(Planned { state, plan })
    }
}

impl FlotillaFlightSql {
    /// The schema of the rows `plan` returns when run in `session`; `EXECUTE name(…)` returns the
    /// rows of the statement prepared as `name`.
    pub(crate) async fn logical_schema(session: &Session, plan: LogicalPlan) -> Result<SchemaRef> {
        let plan = match plan {
            LogicalPlan::Statement(Statement::Execute(_)) => {
                let frame = session.context().execute_logical_plan(plan).await?;
                frame.logical_plan().clone()
            }
            plan => plan,
        };
        Ok(Arc::new(plan.schema().as_arrow().clone()))
    }

    /// The rows of parameter values a client sent with DoPut, each row one execution.
    pub(crate) async fn parameter_rows(
        request: Request<PeekableFlightDataStream>,
        prepared: &Prepared,
    ) -> Result<Vec<Vec<ScalarValue>>> {
        // A message with only the command descriptor (no IPC message) carries no parameters;
        // clients send one to run with what they bound before.
        let data = request
            .into_inner()
            .try_filter(|d| futures::future::ready(!d.data_header.is_empty()))
            .map_err(FlightError::from);
        let mut batches = arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(data);
        let expected = prepared.parameters.fields().len();
        let mut rows = Vec::new();
        while let Some(batch) = batches.next().await {
            let batch = batch.map_err(|e| {
                Error::invalid(format!("the parameter data could not be read: {e}"))
            })?;
            if batch.num_columns() != expected {
                return Err(Error::invalid(format!(
                    "the statement has {expected} parameter(s); the bound data has {} column(s)",
                    batch.num_columns()
                )));
            }
            for row in 0..batch.num_rows() {
                let values = batch
                    .columns()
                    .iter()
                    .map(|column| ScalarValue::try_from_array(column, row))
                    .collect::<Result<Vec<_>, _>>()?;
                rows.push(values);
            }
        }
        Ok(rows)
    }
}

/// Renames each `?` placeholder to `$1`, `$2`, … in order.
fn number_placeholders(statement: &mut ast::Statement) {
    let mut count = 0;
    let _ = ast::visit_expressions_mut(statement, |expr| {
        if let ast::Expr::Value(value) = expr
            && let ast::Value::Placeholder(name) = &mut value.value
            && name == "?"
        {
            count += 1;
            *name = format!("${count}");
        }
        ControlFlow::<()>::Continue(())
    });
}
