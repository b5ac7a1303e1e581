//! Running SQL text: split into statements, plan, execute, print.

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::context::SessionContext;
use datafusion::physical_plan::execute_stream;
use datafusion::sql::parser::{DFParserBuilder, Statement};
use datafusion::sql::sqlparser::dialect::dialect_from_str;
use flotilla_common::memory::query_task_context;
use flotilla_common::options::QueryLimits;
use flotilla_common::{Error, ErrorKind, Result};
use futures::StreamExt;
use std::io::Write;
use std::time::{Duration, Instant};

use crate::output::{OutputFormat, Printer};

/// Parses `sql` into statements with the session's SQL dialect.
pub fn parse_statements(ctx: &SessionContext, sql: &str) -> Result<Vec<Statement>> {
    let state = ctx.state();
    let dialect_name = state.config().options().sql_parser.dialect.to_string();
    let dialect = dialect_from_str(&dialect_name)
        .ok_or_else(|| Error::invalid(format!("unknown SQL dialect '{dialect_name}'")))?;
    let statements = DFParserBuilder::new(sql)
        .with_dialect(dialect.as_ref())
        .build()?
        .parse_statements()?;
    Ok(statements.into_iter().collect())
}

/// Plans and executes one statement, streaming its result to `printer`.
/// Returns the number of rows.
pub async fn run_statement(
    ctx: &SessionContext,
    statement: Statement,
    printer: &mut Printer<'_>,
) -> Result<usize> {
    let state = ctx.state();
    let timeout = QueryLimits::of(state.config_options()).statement_timeout;
    let run = async {
        let plan = state.statement_to_plan(statement).await?;
        let frame = flotilla_federation::execute_logical_plan(ctx, plan).await?;
        // The frame's state is the session's after the statement (a `SET` has taken effect).
        let (state, plan) = frame.into_parts();
        let plan = state.create_physical_plan(&plan).await?;
        let mut stream = execute_stream(plan, query_task_context(&state, "cli"))?;
        printer.begin(stream.schema())?;
        let mut rows = 0;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            rows += batch.num_rows();
            printer.batch(batch)?;
        }
        printer.finish()?;
        Ok(rows)
    };
    match timeout {
        Some(timeout) => tokio::time::timeout(timeout, run)
            .await
            .map_err(|_| Error::new(ErrorKind::TimedOut, QueryLimits::timed_out(timeout)))?,
        None => run.await,
    }
}

/// Runs every statement of `sql`, printing results in `format` to `out` and a row count with
/// timing to stderr (unless `quiet`). Stops at the first error.
pub async fn run_sql(
    ctx: &SessionContext,
    sql: &str,
    format: OutputFormat,
    out: &mut dyn Write,
    quiet: bool,
) -> Result<()> {
    for statement in parse_statements(ctx, sql)? {
        let started = Instant::now();
        let spinner = crate::progress::spinner_after(Duration::from_secs(1), "running query");
        let mut printer = Printer::new(format, out);
        let outcome = run_statement(ctx, statement, &mut printer).await;
        spinner.finish();
        let rows = outcome?;
        let seconds = started.elapsed().as_secs_f64();
        if !quiet {
            match printer.is_statement() {
                true => eprintln!("done in {seconds:.3}s"),
                false => eprintln!(
                    "{rows} row{} in {seconds:.3}s",
                    if rows == 1 { "" } else { "s" }
                ),
            }
        }
    }
    Ok(())
}

/// Runs one query and collects its result (for tests and the demo).
pub async fn collect(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    Ok(ctx.sql(sql).await?.collect().await?)
}
