//! Running one SQL statement in MySQL and streaming its rows as Arrow batches.
//!
//! The statement is prepared (binary protocol: numbers arrive as numbers, decimals as exact
//! text), its rows are decoded into builders of the plan's types on a spawned task and sent in
//! batches through a channel holding at most two. Dropping the stream aborts the task and sends
//! `KILL QUERY` for the statement's connection from another one, so the server stops working.

use crate::pool::{error, get_connection};
use crate::types::Decoder;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::execution::SendableRecordBatchStream;
use flotilla_common::{Error, ErrorKind};
use flotilla_federation::stream::{BatchSender, RemoteStream, Running, batch};
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{Pool, Row};
use std::sync::Arc;

/// Runs `sql` on a connection of `pool` (the source `name`), streaming its rows.
pub(crate) fn stream(
    pool: &Pool,
    name: &str,
    zero_dates: crate::types::ZeroDates,
    sql: &str,
    schema: SchemaRef,
    batch_size: usize,
) -> DfResult<SendableRecordBatchStream> {
    let running = Running::default();
    let reader = Reader {
        pool: pool.clone(),
        sql: sql.to_string(),
        schema: Arc::clone(&schema),
        batch_size: batch_size.max(1),
        zero_dates,
        running: running.clone(),
    };
    let name = name.to_string();
    let pool = pool.clone();
    Ok(Box::pin(RemoteStream::spawn(
        schema,
        |tx| async move {
            reader
                .run(&tx)
                .await
                .map_err(|e| DataFusionError::External(Box::new(e.with_source(name))))
        },
        // Still running: stop the statement from another connection, so the server does not
        // run on after nobody reads it.
        move || {
            running.stop_async(|id| async move {
                if let Ok(mut conn) = get_connection(&pool).await {
                    let _ = conn.query_drop(format!("KILL QUERY {id}")).await;
                }
            });
        },
    )))
}

/// The reading side: runs the statement and sends batches.
struct Reader {
    pool: Pool,
    sql: String,
    schema: SchemaRef,
    batch_size: usize,
    zero_dates: crate::types::ZeroDates,
    /// The connection id of the running statement, for `KILL QUERY`.
    running: Running<u32>,
}

impl Reader {
    async fn run(self, tx: &BatchSender) -> Result<(), Error> {
        let mut conn = get_connection(&self.pool).await?;
        self.running.start(conn.id());
        let mut result = conn
            .exec_iter(self.sql.as_str(), ())
            .await
            .map_err(|e| error(&e, "running the query"))?;
        let columns = result.columns().unwrap_or_default();
        if columns.len() != self.schema.fields().len() {
            return Err(Error::internal(format!(
                "the query returns {} columns, the plan expects {}",
                columns.len(),
                self.schema.fields().len()
            )));
        }
        let mut decoders = Vec::with_capacity(columns.len());
        for (column, field) in columns.iter().zip(self.schema.fields()) {
            let decoder = Decoder::new(
                column.column_type(),
                field.data_type(),
                self.zero_dates,
                self.batch_size,
            )
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Unsupported,
                    format!(
                        "column '{}': cannot read {}",
                        field.name(),
                        field.data_type()
                    ),
                )
            })?;
            decoders.push(decoder);
        }
        let Some(mut rows) = result
            .stream::<Row>()
            .await
            .map_err(|e| error(&e, "reading rows"))?
        else {
            return Ok(());
        };
        let mut pending = 0;
        while let Some(row) = rows.next().await {
            let row = row.map_err(|e| error(&e, "reading rows"))?;
            for (i, (decoder, value)) in decoders.iter_mut().zip(row.unwrap()).enumerate() {
                decoder.append(value).map_err(|e| {
                    Error::invalid(format!("column '{}': {e}", self.schema.field(i).name()))
                })?;
            }
            pending += 1;
            if pending == self.batch_size {
                if !self.send(tx, &mut decoders, pending).await {
                    return Ok(());
                }
                pending = 0;
            }
        }
        drop(rows);
        drop(result);
        self.running.end();
        if pending > 0 {
            self.send(tx, &mut decoders, pending).await;
        }
        Ok(())
    }

    async fn send(&self, tx: &BatchSender, decoders: &mut [Decoder], rows: usize) -> bool {
        let columns = decoders.iter_mut().map(Decoder::finish).collect();
        tx.send(batch(&self.schema, columns, rows)).await.is_ok()
    }
}
