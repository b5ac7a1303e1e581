//! Writing into sources: `INSERT INTO src.schema.t …` and `CREATE TABLE src.schema.t AS …`.
//!
//! ```text
//!  INSERT INTO pg.public.t SELECT …  ─▶ FederatedTable::insert_into ─▶ DataSinkExec(FederatedSink)
//!  CREATE TABLE pg.public.t AS …     ─▶ execute_logical_plan (here) ─┘   └▶ Source::write(target, rows)
//! ```
//!
//! DataFusion plans `INSERT` through the table provider, so a federated table answers it with a
//! sink that hands the rows to its source. `CREATE TABLE … AS` is different: DataFusion runs it
//! into an in-memory table and registers that in the catalog, so [`execute_logical_plan`] takes
//! it over when the target catalog is a source's, and the source creates the table and streams
//! the rows into it in one statement. Each write is atomic (see [`Source::write`]) and returns
//! the rows written, like DataFusion's `INSERT`.

use crate::catalog::SourceCatalog;
use crate::dialect::Dialect;
use crate::source::{Source, WriteTarget};
use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{Result as DfResult, TableReference, exec_err, plan_err};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::sink::DataSink;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::TaskContext;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::{CreateMemoryTable, DdlStatement, LogicalPlan};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};
use flotilla_common::{Error, ErrorKind};
use std::fmt;
use std::sync::Arc;

/// The sink of an `INSERT` into a federated table.
#[derive(Debug)]
pub struct FederatedSink {
    source: Arc<dyn Source>,
    target: WriteTarget,
    schema: SchemaRef,
}

impl FederatedSink {
    pub fn new(source: Arc<dyn Source>, target: WriteTarget, schema: SchemaRef) -> Self {
        Self {
            source,
            target,
            schema,
        }
    }
}

impl DisplayAs for FederatedSink {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "FederatedSink: source={}, table={}",
            self.source.name(),
            self.target.display_name()
        )
    }
}

#[async_trait]
impl DataSink for FederatedSink {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(
        &self,
        data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> DfResult<u64> {
        self.source
            .write(self.target.clone(), data)
            .await
            .map_err(|e| named(e, self.source.name()).into_datafusion())
    }
}

fn named(e: Error, source: &str) -> Error {
    match e.source_name() {
        Some(_) => e,
        None => e.with_source(source),
    }
}

/// `CREATE TABLE qualified (<column> <type> [NOT NULL], …)` for `columns`, each type from
/// `column_type` (the database's closest type for an Arrow type). A field without one is an
/// `Unsupported` error naming the column and `database` (e.g. `PostgreSQL`).
pub fn create_table_sql(
    dialect: &dyn Dialect,
    qualified: &str,
    columns: &Schema,
    database: &str,
    column_type: impl Fn(&DataType) -> Option<String>,
) -> flotilla_common::Result<String> {
    let definitions = columns
        .fields()
        .iter()
        .map(|field| {
            let ty = column_type(field.data_type()).ok_or_else(|| {
                Error::new(
                    ErrorKind::Unsupported,
                    format!(
                        "column '{}': no {database} type for Arrow type {}",
                        field.name(),
                        field.data_type()
                    ),
                )
            })?;
            let not_null = if field.is_nullable() { "" } else { " NOT NULL" };
            Ok(format!(
                "{} {ty}{not_null}",
                dialect.quote_identifier(field.name())
            ))
        })
        .collect::<flotilla_common::Result<Vec<_>>>()?;
    Ok(format!(
        "CREATE TABLE {qualified} ({})",
        definitions.join(", ")
    ))
}

/// Runs `plan` as [`SessionContext::execute_logical_plan`] does, except that
/// `CREATE TABLE … [AS SELECT …]` naming a table in a source's catalog creates the table in that
/// database and writes the rows there (right away, like DataFusion's own `CREATE TABLE … AS`).
/// The result is the number of rows written, in a `count` column like `INSERT`'s.
///
/// # Errors
/// As DataFusion's, plus a source's refusal or failure, naming the source.
pub async fn execute_logical_plan(ctx: &SessionContext, plan: LogicalPlan) -> DfResult<DataFrame> {
    match plan {
        LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)) => {
            match source_catalog_of(ctx, &create.name) {
                Some((catalog, schema, table)) => {
                    create_in_source(ctx, &catalog, &schema, &table, create).await
                }
                None => {
                    ctx.execute_logical_plan(LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(
                        create,
                    )))
                    .await
                }
            }
        }
        plan => ctx.execute_logical_plan(plan).await,
    }
}

/// Plans and runs one SQL statement like [`SessionContext::sql`], with [`execute_logical_plan`]
/// (so `CREATE TABLE … AS` into a source goes to the source).
///
/// # Errors
/// As [`SessionContext::sql`].
pub async fn sql(ctx: &SessionContext, sql: &str) -> DfResult<DataFrame> {
    let plan = ctx.state().create_logical_plan(sql).await?;
    execute_logical_plan(ctx, plan).await
}

/// The source catalog `name` resolves into, with the schema and table names.
fn source_catalog_of(
    ctx: &SessionContext,
    name: &TableReference,
) -> Option<(SourceCatalog, String, String)> {
    let state = ctx.state();
    let defaults = &state.config().options().catalog;
    let resolved = name
        .clone()
        .resolve(&defaults.default_catalog, &defaults.default_schema);
    let catalog = ctx.catalog(&resolved.catalog)?;
    let catalog = catalog.downcast_ref::<SourceCatalog>()?.clone();
    Some((
        catalog,
        resolved.schema.to_string(),
        resolved.table.to_string(),
    ))
}

async fn create_in_source(
    ctx: &SessionContext,
    catalog: &SourceCatalog,
    schema: &str,
    table: &str,
    create: CreateMemoryTable,
) -> DfResult<DataFrame> {
    let source = Arc::clone(catalog.source());
    let exists = catalog
        .table_in(schema, table)
        .await
        .map_err(|e| named(e, source.name()).into_datafusion())?
        .is_some();
    if exists {
        if create.if_not_exists && !create.or_replace {
            return count_frame(ctx, 0);
        }
        return exec_err!(
            "source '{}': table {schema}.{table} already exists{}",
            source.name(),
            if create.or_replace {
                " (CREATE OR REPLACE is not supported for tables in a database: drop it there first)"
            } else {
                ""
            }
        );
    }
    if create.temporary {
        return plan_err!(
            "source '{}': temporary tables cannot be created in a database",
            source.name()
        );
    }
    if !catalog.has_schema(schema) {
        return plan_err!(
            "source '{}' has no schema '{schema}' (it has: {})",
            source.name(),
            catalog.schema_names_joined()
        );
    }
    let input = Arc::unwrap_or_clone(create.input);
    let columns = Arc::clone(input.schema().inner());
    let data = DataFrame::new(ctx.state(), input).execute_stream().await?;
    let target = WriteTarget::Create {
        schema: schema.to_string(),
        name: table.to_string(),
        columns: Arc::new(Schema::new(columns.fields().clone())),
    };
    let written = source
        .write(target, data)
        .await
        .map_err(|e| named(e, source.name()).into_datafusion())?;
    // The new table is listed now, so the next statement finds it.
    catalog
        .refresh()
        .await
        .map_err(|e| named(e, source.name()).into_datafusion())?;
    count_frame(ctx, written)
}

/// A one-row frame with the `count` column DataFusion's `INSERT` returns.
fn count_frame(ctx: &SessionContext, count: u64) -> DfResult<DataFrame> {
    let schema = Arc::new(Schema::new(vec![Field::new(
        "count",
        DataType::UInt64,
        false,
    )]));
    let column: ArrayRef = Arc::new(UInt64Array::from(vec![count]));
    ctx.read_batch(RecordBatch::try_new(schema, vec![column])?)
}
