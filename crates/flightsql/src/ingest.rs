//! `CommandStatementIngest` (ADBC's `adbc_ingest`, bulk loading): Arrow batches from DoPut into
//! a table of the client's session, or of any catalog that accepts new tables or inserts.
//!
//! | table exists? | option            | what happens                                   |
//! | ------------- | ----------------- | ---------------------------------------------- |
//! | no            | create (default)  | a new in-memory table with the stream's schema  |
//! | no            | fail              | `NotFound`                                      |
//! | yes           | append (default)  | `INSERT` of the rows (schemas must match)       |
//! | yes           | replace           | the table is replaced by the rows               |
//! | yes           | fail              | `AlreadyExists`                                 |
//!
//! A table without a catalog goes to the session's default catalog and schema; `temporary`
//! tables always go to the session's own catalog ([`crate::session::SESSION_CATALOG`]).

use crate::session::{SESSION_CATALOG, Session};
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::sql::CommandStatementIngest;
use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::sql::{TableExistsOption, TableNotExistOption};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::TableReference;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::datasource::MemTable;
use flotilla_common::{Error, ErrorKind, Result};
use futures::{StreamExt, TryStreamExt};
use std::sync::Arc;
use tonic::Request;

/// Loads the rows of an ingest request; returns how many were written.
pub(crate) async fn ingest(
    session: &Session,
    command: CommandStatementIngest,
    request: Request<PeekableFlightDataStream>,
) -> Result<i64> {
    let options = command.table_definition_options.unwrap_or_default();
    let if_missing = TableNotExistOption::try_from(options.if_not_exist)
        .unwrap_or(TableNotExistOption::Unspecified);
    let if_exists =
        TableExistsOption::try_from(options.if_exists).unwrap_or(TableExistsOption::Unspecified);
    let ctx = session.context();
    let config = ctx.state().config().options().catalog.clone();
    let catalog = match (&command.catalog, command.temporary) {
        (_, true) => SESSION_CATALOG.to_string(),
        (Some(catalog), false) => catalog.clone(),
        (None, false) => config.default_catalog.clone(),
    };
    let schema = match (&command.schema, command.temporary) {
        (_, true) => "public".to_string(),
        (Some(schema), false) => schema.clone(),
        (None, false) => config.default_schema.clone(),
    };
    let name = TableReference::full(catalog, schema, command.table.clone());

    let (schema, batches) = read_batches(request).await?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let exists = ctx.table_exist(name.clone())?;
    match (exists, if_exists, if_missing) {
        (true, TableExistsOption::Fail, _) => {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("table {name} already exists"),
            ));
        }
        (true, TableExistsOption::Replace, _) => {
            ctx.deregister_table(name.clone())?;
            let table = MemTable::try_new(schema, vec![batches])?;
            ctx.register_table(name, Arc::new(table))?;
        }
        (true, _, _) => {
            let frame = ctx.read_batches(batches)?;
            frame
                .write_table(&name.to_string(), DataFrameWriteOptions::new())
                .await?;
        }
        (false, _, TableNotExistOption::Fail) => {
            return Err(Error::not_found(format!("table {name} does not exist")));
        }
        (false, _, _) => {
            let table = MemTable::try_new(schema, vec![batches])?;
            ctx.register_table(name, Arc::new(table))?;
        }
    }
    Ok(i64::try_from(rows).unwrap_or(i64::MAX))
}

/// Every batch of a DoPut stream, and the stream's schema.
async fn read_batches(
    request: Request<PeekableFlightDataStream>,
) -> Result<(datafusion::arrow::datatypes::SchemaRef, Vec<RecordBatch>)> {
    let data = request.into_inner().map_err(FlightError::from);
    let mut stream = FlightRecordBatchStream::new_from_flight_data(data);
    let mut batches = Vec::new();
    while let Some(batch) = stream.next().await {
        batches
            .push(batch.map_err(|e| {
                Error::invalid(format!("the ingested data could not be read: {e}"))
            })?);
    }
    let schema = match (stream.schema(), batches.first()) {
        (Some(schema), _) => Arc::clone(schema),
        (None, Some(batch)) => batch.schema(),
        (None, None) => {
            return Err(Error::invalid(
                "the ingest stream carried no schema and no rows",
            ));
        }
    };
    Ok((schema, batches))
}
