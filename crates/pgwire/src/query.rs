//! Statements over the simple and the extended query protocol, run in the connection's session.
//!
//! ```text
//!  Query "s1; s2"        ──▶ each statement: plan ──▶ run ──▶ rows or a command tag; the first
//!                            error ends the list (as PostgreSQL does)
//!  Parse "… $1 …"        ──▶ Planned: the logical plan and its parameters' inferred types
//!  Bind (values)         ──▶ params.rs: each value as its parameter's type
//!  Describe / Execute    ──▶ the plan's columns / the plan with the values put in, run
//! ```
//!
//! SQL is parsed in PostgreSQL's dialect whatever the session's `datafusion.sql_parser.dialect`:
//! these clients write PostgreSQL.

use crate::errors::{query_error, sqlstate, user_error};
use crate::limits::Watch;
use crate::login::{Connection, session_of};
use crate::params::bind;
use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch, into_pg_type};
use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt64Array};
use datafusion::arrow::compute::{cast, max, min};
use datafusion::arrow::datatypes::Date32Type;
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::logical_expr::{
    DdlStatement, LogicalPlan, Statement, TransactionAccessMode, TransactionConclusion,
    TransactionEnd, TransactionIsolationLevel, TransactionStart, WriteOp,
};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArguments, Query, SelectItem, SetExpr, Statement as Sql, visit_expressions_mut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser as SqlParser;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use flotilla_common::activity::Asked;
use flotilla_common::options::QueryLimits;
use flotilla_flightsql::positional_parameters;
use futures::{Sink, StreamExt, stream};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldFormat, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, Type};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::types::format::FormatOptions;
use std::fmt::Debug;
use std::ops::ControlFlow;
use std::sync::{Arc, OnceLock};

/// A statement prepared with Parse: its plan (`None`: an empty statement) and the inferred
/// types of its parameters `$1`, `$2`, … in order (`None` where nothing says).
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    plan: Option<LogicalPlan>,
    parameters: Vec<Option<DataType>>,
    /// The statement as the client sent it (the node's console lists it so).
    sql: String,
}

/// Both query protocols.
pub(crate) struct Queries;

/// The statements of `sql`, parsed as PostgreSQL, with what DataFusion does not plan of
/// PostgreSQL's own syntax rewritten (`OPERATOR(pg_catalog.~)`, `COLLATE pg_catalog.default`,
/// `'t'::regclass`, … as psql's `\d` commands send them) and the known metadata queries of
/// tools that DataFusion cannot run at all replaced by equivalent ones
/// (`datafusion-pg-catalog`'s rewriter). Statements of DataFusion's own (`CREATE EXTERNAL
/// TABLE`, `COPY … TO`, `EXPLAIN`) keep DataFusion's parse, with the rewrites applied to the
/// SQL statements inside.
fn parse(sql: &str) -> PgWireResult<Vec<DfStatement>> {
    static REWRITER: OnceLock<PostgresCompatibilityParser> = OnceLock::new();
    let rewriter = REWRITER.get_or_init(PostgresCompatibilityParser::new);
    let sql_only = |statements: Vec<Sql>| {
        statements
            .into_iter()
            .map(|s| DfStatement::Statement(Box::new(s)))
            .collect::<Vec<_>>()
    };
    let statements = match DFParser::parse_sql_with_dialect(sql, &PostgreSqlDialect {}) {
        Ok(statements) => Vec::from(statements),
        // The rewriter substitutes tokens before parsing (`ABORT` becomes `ROLLBACK`).
        Err(error) => {
            return rewriter
                .parse(sql)
                .map(sql_only)
                .map_err(|_| query_error(error));
        }
    };
    if statements
        .iter()
        .all(|statement| matches!(statement, DfStatement::Statement(_)))
        && let Ok(mut rewritten) = rewriter.parse(sql)
        && rewritten.len() == statements.len()
    {
        rewritten.iter_mut().for_each(postgres_only);
        return Ok(sql_only(rewritten));
    }
    Ok(statements
        .into_iter()
        .map(|statement| match statement {
            DfStatement::Statement(s) => {
                let mut s = rewriter.rewrite(*s);
                postgres_only(&mut s);
                DfStatement::Statement(Box::new(s))
            }
            other => other,
        })
        .collect())
}

/// What DataFusion does not plan of PostgreSQL beyond `datafusion-pg-catalog`'s rewrites:
/// `ARRAY(subquery)`, `SHOW` of PostgreSQL's settings, and `information_schema.columns` with
/// PostgreSQL's type names.
fn postgres_only(statement: &mut Sql) {
    array_subqueries(statement);
    crate::settings::answer_show(statement);
    crate::information_schema::columns_as_postgres(statement);
}

/// `ARRAY(SELECT x FROM … WHERE …)` (psql's `\du` lists the roles each role is a member of so)
/// as the scalar subquery `(SELECT array_agg(x) FROM … WHERE …)`, which DataFusion plans,
/// correlated or not. Where the subquery finds no rows it gives NULL, not PostgreSQL's `{}`.
/// A subquery with an ORDER BY, LIMIT or more than one column is left as it is.
fn array_subqueries(statement: &mut Sql) {
    let _ = visit_expressions_mut(statement, |expr| {
        if let Expr::Function(function) = expr
            && function.name.to_string().eq_ignore_ascii_case("array")
            && let FunctionArguments::Subquery(query) = &function.args
            && let Some(aggregated) = aggregated(query)
        {
            *expr = Expr::Subquery(Box::new(aggregated));
        }
        ControlFlow::<()>::Continue(())
    });
}

/// `query` with its one column `x` replaced by `array_agg(x)`.
fn aggregated(query: &Query) -> Option<Query> {
    if query.order_by.is_some() || query.limit_clause.is_some() || query.fetch.is_some() {
        return None;
    }
    let mut query = query.clone();
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    let [SelectItem::UnnamedExpr(item) | SelectItem::ExprWithAlias { expr: item, .. }] =
        select.projection.as_mut_slice()
    else {
        return None;
    };
    *item = SqlParser::new(&PostgreSqlDialect {})
        .try_with_sql(&format!("array_agg({item})"))
        .and_then(|mut parser| parser.parse_expr())
        .ok()?;
    Some(query)
}

async fn plan(ctx: &SessionContext, statement: DfStatement) -> PgWireResult<LogicalPlan> {
    // DataFusion does not plan PostgreSQL's `BEGIN`; transaction statements are written here.
    if let DfStatement::Statement(sql) = &statement {
        let end = |conclusion| {
            Ok(LogicalPlan::Statement(Statement::TransactionEnd(
                TransactionEnd {
                    conclusion,
                    chain: false,
                },
            )))
        };
        match sql.as_ref() {
            Sql::StartTransaction { .. } => {
                return Ok(LogicalPlan::Statement(Statement::TransactionStart(
                    TransactionStart {
                        access_mode: TransactionAccessMode::ReadWrite,
                        isolation_level: TransactionIsolationLevel::ReadCommitted,
                    },
                )));
            }
            Sql::Commit { .. } => return end(TransactionConclusion::Commit),
            Sql::Rollback { .. } => return end(TransactionConclusion::Rollback),
            _ => {}
        }
    }
    ctx.state()
        .statement_to_plan(statement)
        .await
        .map_err(query_error)
}

/// The inferred types of `plan`'s parameters, `$1` first; a position the statement skips
/// counts too (as PostgreSQL counts `$3` as the third parameter), untyped.
fn parameter_types(plan: &LogicalPlan) -> PgWireResult<Vec<Option<DataType>>> {
    let numbered = positional_parameters(plan).map_err(query_error)?;
    let count = numbered.last().map_or(0, |(n, _)| *n);
    // A Bind message counts its values in 16 bits.
    if count > usize::from(u16::MAX) {
        return Err(user_error(
            "54000",
            &format!("${count}: a statement takes at most 65535 parameters"),
        ));
    }
    let mut ordered = vec![None; count];
    for (n, data_type) in numbered {
        if let Some(slot) = n.checked_sub(1).and_then(|i| ordered.get_mut(i)) {
            *slot = data_type;
        }
    }
    Ok(ordered)
}

/// The columns of `schema` as PostgreSQL fields in `format`; a format list of the wrong length
/// is the client's error, not a panic.
fn fields(
    schema: &Schema,
    format: &Format,
    options: Arc<FormatOptions>,
) -> PgWireResult<Vec<FieldInfo>> {
    if let Format::Individual(codes) = format
        && codes.len() != schema.fields().len()
    {
        return Err(user_error(
            "08P01",
            &format!(
                "{} result format codes for {} columns",
                codes.len(),
                schema.fields().len()
            ),
        ));
    }
    arrow_schema_to_pg_fields(schema, format, Some(options))
}

/// Whether `plan` answers with rows (else with a command tag). `EXECUTE name(…)` answers with
/// the rows of the statement prepared as `name`.
fn returns_rows(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Statement(statement) => matches!(statement, Statement::Execute(_)),
        LogicalPlan::Dml(_) | LogicalPlan::Ddl(_) | LogicalPlan::Copy(_) => false,
        _ => true,
    }
}

/// The command tag PostgreSQL sends after a statement that returns no rows.
fn tag_of(plan: &LogicalPlan) -> &'static str {
    match plan {
        LogicalPlan::Dml(dml) => match dml.op {
            WriteOp::Insert(_) => "INSERT",
            WriteOp::Update => "UPDATE",
            WriteOp::Delete => "DELETE",
            WriteOp::Ctas => "SELECT",
            WriteOp::Truncate => "TRUNCATE TABLE",
            _ => "OK",
        },
        LogicalPlan::Ddl(ddl) => match ddl {
            DdlStatement::CreateExternalTable(_) | DdlStatement::CreateMemoryTable(_) => {
                "CREATE TABLE"
            }
            DdlStatement::CreateView(_) => "CREATE VIEW",
            DdlStatement::CreateCatalogSchema(_) => "CREATE SCHEMA",
            DdlStatement::CreateCatalog(_) => "CREATE DATABASE",
            DdlStatement::CreateIndex(_) => "CREATE INDEX",
            DdlStatement::DropTable(_) => "DROP TABLE",
            DdlStatement::DropView(_) => "DROP VIEW",
            DdlStatement::DropCatalogSchema(_) => "DROP SCHEMA",
            DdlStatement::CreateFunction(_) => "CREATE FUNCTION",
            DdlStatement::DropFunction(_) => "DROP FUNCTION",
        },
        LogicalPlan::Statement(statement) => match statement {
            Statement::TransactionStart(_) => "BEGIN",
            Statement::TransactionEnd(_) => "COMMIT",
            Statement::SetVariable(_) => "SET",
            Statement::ResetVariable(_) => "RESET",
            Statement::Prepare(_) => "PREPARE",
            Statement::Execute(_) => "EXECUTE",
            Statement::Deallocate(_) => "DEALLOCATE",
        },
        LogicalPlan::Copy(_) => "COPY",
        _ => "SELECT",
    }
}

/// Runs `plan` (of statement `sql`) in `ctx`: rows stream in `format`; other statements run to
/// the end and answer with their tag (with the rows written, for writes).
async fn run(
    connection: &Connection,
    sql: &str,
    plan: LogicalPlan,
    format: &Format,
    options: Arc<FormatOptions>,
) -> PgWireResult<Response> {
    let ctx = &connection.ctx;
    // Flotilla has no transactions: each statement takes effect as it runs. BEGIN, COMMIT and
    // ROLLBACK are accepted so that clients that wrap statements in them (psycopg, JDBC with
    // autocommit off) work.
    if let LogicalPlan::Statement(statement) = &plan {
        match statement {
            Statement::TransactionStart(_) => {
                return Ok(Response::TransactionStart(Tag::new("BEGIN")));
            }
            Statement::TransactionEnd(end) => {
                let tag = match end.conclusion {
                    TransactionConclusion::Commit => "COMMIT",
                    TransactionConclusion::Rollback => "ROLLBACK",
                };
                return Ok(Response::TransactionEnd(Tag::new(tag)));
            }
            Statement::SetVariable(set) if !set.variable.contains('.') => {
                // A PostgreSQL setting DataFusion has no counterpart of (extra_float_digits,
                // client_encoding …, which drivers set on connecting) is accepted and ignored;
                // one it knows (time zone) is set.
                let _ = flotilla_federation::execute_logical_plan(ctx, plan.clone()).await;
                return Ok(Response::Execution(Tag::new("SET")));
            }
            _ => {}
        }
    }
    let mut watch = Watch::start(
        &connection.canceller,
        &QueryLimits::of(ctx.state_ref().read().config_options()),
    );
    // A turn of the node's (shared with Flight SQL): waits in its queue, within the timeout.
    let turn = watch
        .guard(async {
            connection
                .admission
                .admit()
                .await
                .map_err(|e| user_error(sqlstate(e.kind()), &e.to_string()))
        })
        .await?;
    let rows = returns_rows(&plan);
    let tag = tag_of(&plan);
    let insert = matches!(&plan, LogicalPlan::Dml(dml) if matches!(dml.op, WriteOp::Insert(_)));
    let counts = matches!(plan, LogicalPlan::Dml(_) | LogicalPlan::Copy(_))
        || matches!(plan, LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(_)));
    let frame = watch
        .guard(async {
            flotilla_federation::execute_logical_plan(ctx, plan)
                .await
                .map_err(query_error)
        })
        .await?;
    if !rows {
        let batches = watch
            .guard(async { frame.collect().await.map_err(query_error) })
            .await?;
        let written = batches
            .first()
            .and_then(|batch| batch.column_by_name("count"))
            .and_then(|count| count.as_any().downcast_ref::<UInt64Array>().cloned())
            .filter(|count| !count.is_empty())
            .map(|count| count.value(0) as usize);
        let mut tag = Tag::new(tag);
        if insert {
            // An INSERT's tag carries an oid (always 0) before the row count.
            tag = tag.with_oid(0);
        }
        if let (true, Some(written)) = (counts, written) {
            tag = tag.with_rows(written);
        }
        return Ok(Response::Execution(tag));
    }
    let iso_dates = options
        .date_style
        .trim_start()
        .to_ascii_uppercase()
        .starts_with("ISO");
    let fields = Arc::new(fields(frame.schema().as_arrow(), format, options)?);
    let asked = Asked {
        protocol: "postgres",
        user: connection.user.clone(),
        sql: sql.to_string(),
    };
    let batches = crate::limits::execute(frame, watch, turn, asked).await?;
    let encoded = Arc::clone(&fields);
    let rows = batches
        .map(move |batch| {
            let batch = batch.and_then(|batch| preformatted(batch, &encoded, iso_dates));
            let rows: Box<dyn Iterator<Item = PgWireResult<_>> + Send + Sync> = match batch {
                Ok(batch) => encode_recordbatch(Arc::clone(&encoded), batch),
                Err(e) => Box::new(std::iter::once(Err(e))),
            };
            stream::iter(rows)
        })
        .flatten();
    Ok(Response::Query(QueryResponse::new(fields, rows)))
}

/// `batch` with the columns sent as text that are faster written here, a column at a time,
/// than value by value by the encoder, cast to their PostgreSQL text: decimals, and dates
/// under an ISO DateStyle when every one is within years 1–9999 (pgwire formats each date
/// through chrono's strftime, parsing the DateStyle again per value: a fifth of the time of
/// sending lineitem). The fields announced keep their PostgreSQL types.
fn preformatted(
    batch: RecordBatch,
    fields: &[FieldInfo],
    iso_dates: bool,
) -> PgWireResult<RecordBatch> {
    let as_text = |i: usize, array: &ArrayRef| {
        if fields
            .get(i)
            .is_none_or(|f| f.format() != FieldFormat::Text)
        {
            return false;
        }
        match array.data_type() {
            DataType::Decimal128(_, scale) => *scale >= 0,
            DataType::Date32 if iso_dates => {
                let dates = array.as_primitive::<Date32Type>();
                let in_range =
                    |days: Option<i32>| days.is_none_or(|d| (FIRST_AD..=LAST_Y9999).contains(&d));
                in_range(min(dates)) && in_range(max(dates))
            }
            _ => false,
        }
    };
    let text: Vec<bool> = (0..batch.num_columns())
        .map(|i| as_text(i, batch.column(i)))
        .collect();
    if !text.contains(&true) {
        return Ok(batch);
    }
    let schema = batch.schema();
    let mut columns = Vec::with_capacity(batch.num_columns());
    let mut schema_fields = Vec::with_capacity(batch.num_columns());
    for ((column, field), text) in batch.columns().iter().zip(schema.fields()).zip(text) {
        if text {
            columns.push(cast(column, &DataType::Utf8).map_err(|e| query_error(e.into()))?);
            schema_fields.push(Arc::new(
                field.as_ref().clone().with_data_type(DataType::Utf8),
            ));
        } else {
            columns.push(Arc::clone(column));
            schema_fields.push(Arc::clone(field));
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(schema_fields)), columns)
        .map_err(|e| query_error(e.into()))
}

/// Days from 1970-01-01 to 0001-01-01 and to 9999-12-31: dates between print the same in
/// Arrow and PostgreSQL's ISO style (outside, PostgreSQL writes `BC` or more digits).
const FIRST_AD: i32 = -719_162;
const LAST_Y9999: i32 = 2_932_896;

fn format_options<C: ClientInfo>(client: &C) -> Arc<FormatOptions> {
    Arc::new(FormatOptions::from_client_metadata(client.metadata()))
}

#[async_trait]
impl SimpleQueryHandler for Queries {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let connection = session_of(client)?;
        let options = format_options(client);
        let mut responses = Vec::new();
        for statement in parse(query)? {
            let sql = statement.to_string();
            let outcome = match plan(&connection.ctx, statement).await {
                Ok(plan) => {
                    run(
                        &connection,
                        &sql,
                        plan,
                        &Format::UnifiedText,
                        Arc::clone(&options),
                    )
                    .await
                }
                Err(e) => Err(e),
            };
            match outcome {
                Ok(response) => responses.push(response),
                // The statements after a failed one do not run.
                Err(PgWireError::UserError(info)) => {
                    responses.push(Response::Error(info));
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        if responses.is_empty() {
            responses.push(Response::EmptyQuery);
        }
        Ok(responses)
    }
}

/// Plans statements for Parse and describes them.
pub(crate) struct Parser;

#[async_trait]
impl QueryParser for Parser {
    type Statement = Planned;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Planned>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let connection = session_of(client)?;
        let mut statements = parse(sql)?;
        if statements.len() > 1 {
            return Err(user_error(
                "42601",
                "cannot insert multiple commands into a prepared statement",
            ));
        }
        let Some(statement) = statements.pop() else {
            return Ok(None);
        };
        let plan = plan(&connection.ctx, statement).await?;
        let parameters = parameter_types(&plan)?;
        Ok(Some(Planned {
            plan: Some(plan),
            parameters,
            sql: sql.to_string(),
        }))
    }

    fn get_parameter_types(&self, statement: &Planned) -> PgWireResult<Vec<Type>> {
        statement
            .parameters
            .iter()
            .map(|data_type| match data_type {
                Some(data_type) => into_pg_type(data_type),
                None => Ok(Type::UNKNOWN),
            })
            .collect()
    }

    fn get_result_schema(
        &self,
        statement: &Planned,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        match &statement.plan {
            Some(plan) if returns_rows(plan) => fields(
                plan.schema().as_arrow(),
                format.unwrap_or(&Format::UnifiedText),
                Arc::new(FormatOptions::default()),
            ),
            _ => Ok(Vec::new()),
        }
    }
}

#[async_trait]
impl ExtendedQueryHandler for Queries {
    type Statement = Planned;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        Arc::new(Parser)
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Planned>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Planned>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let connection = session_of(client)?;
        let statement = &portal.statement.statement;
        let Some(plan) = &statement.plan else {
            return Ok(Response::EmptyQuery);
        };
        let plan = if statement.parameters.is_empty() {
            plan.clone()
        } else {
            let values = bind(portal, &statement.parameters)?;
            plan.clone()
                .replace_params_with_values(&values)
                .map_err(query_error)?
        };
        run(
            &connection,
            &statement.sql,
            plan,
            &portal.result_column_format,
            format_options(client),
        )
        .await
    }
}
