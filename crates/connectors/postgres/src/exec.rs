//! Running one SQL statement in PostgreSQL and streaming its rows as Arrow batches.
//!
//! ```text
//!   DataFusion task                       spawned task (tokio)
//!   ───────────────                       ───────────────────────────────────────────
//!   RemoteStream::poll_next ◀── channel ─ prepare, read rows in binary format, decode
//!        (bounded, 2 batches)              into builders, send a batch every batch_size rows
//!   drop(RemoteStream) ── cancel ───────▶  the server stops the statement; the task ends
//! ```
//!
//! The statement is prepared first, so the decoders know each result column's PostgreSQL type;
//! the rows then arrive in the binary protocol and go straight into Arrow builders for the types
//! the plan asks for. At most two decoded batches wait in the channel: a slow consumer slows the
//! reader (and, through TCP, the server) instead of growing memory.

use crate::pool::{Pool, error};
use crate::types::{Decoder, Raw, Wire};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::execution::SendableRecordBatchStream;
use flotilla_common::{Error, ErrorKind};
use flotilla_federation::stream::{BatchSender, RemoteStream, Running, batch};
use futures::StreamExt;
use std::sync::Arc;
use tokio_postgres::CancelToken;
use tokio_postgres::types::ToSql;

/// Starts `sql` on a pooled connection and returns the stream of its rows with `schema`.
pub(crate) fn stream(
    source: &str,
    pool: &Arc<Pool>,
    sql: &str,
    schema: SchemaRef,
    batch_size: usize,
) -> DfResult<SendableRecordBatchStream> {
    let running = Running::default();
    let reader = Reader {
        pool: Arc::clone(pool),
        sql: sql.to_string(),
        schema: Arc::clone(&schema),
        batch_size: batch_size.max(1),
        running: running.clone(),
    };
    let source = source.to_string();
    let canceller = Arc::clone(pool);
    Ok(Box::pin(RemoteStream::spawn(
        schema,
        |tx| async move {
            reader
                .run(&tx)
                .await
                .map_err(|e| DataFusionError::External(Box::new(e.with_source(source))))
        },
        // Still running: ask the server to stop the statement (over a new connection, as the
        // protocol wants), so it does not run on after nobody reads it.
        move || running.stop_async(|token| async move { canceller.cancel(token).await }),
    )))
}

/// The reading side: runs the statement and sends batches.
struct Reader {
    pool: Arc<Pool>,
    sql: String,
    schema: SchemaRef,
    batch_size: usize,
    /// Set while the statement runs; the stream cancels through it when dropped early.
    running: Running<CancelToken>,
}

impl Reader {
    async fn run(self, tx: &BatchSender) -> Result<(), Error> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare(&self.sql)
            .await
            .map_err(|e| error(&e, "preparing the query"))?;
        let columns = statement.columns();
        if columns.len() != self.schema.fields().len() {
            return Err(Error::internal(format!(
                "the query returns {} columns, the plan expects {}",
                columns.len(),
                self.schema.fields().len()
            )));
        }
        let mut decoders = Vec::with_capacity(columns.len());
        for (column, field) in columns.iter().zip(self.schema.fields()) {
            let decoder = Wire::of(column.type_())
                .and_then(|wire| Decoder::new(&wire, field.data_type(), self.batch_size))
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::Unsupported,
                        format!(
                            "column '{}': PostgreSQL type {} cannot be read as {}",
                            field.name(),
                            column.type_(),
                            field.data_type()
                        ),
                    )
                })?;
            decoders.push(decoder);
        }
        self.running.start(client.cancel_token());
        let rows = client
            .query_raw(&statement, std::iter::empty::<&(dyn ToSql + Sync)>())
            .await
            .map_err(|e| error(&e, "running the query"))?;
        let mut rows = std::pin::pin!(rows);
        let mut pending = 0;
        while let Some(row) = rows.next().await {
            let row = row.map_err(|e| error(&e, "reading rows"))?;
            for (i, decoder) in decoders.iter_mut().enumerate() {
                let value: Option<Raw> = row
                    .try_get(i)
                    .map_err(|e| Error::internal(format!("column {i}: {e}")))?;
                decoder.append(value.map(|v| v.0)).map_err(|e| {
                    Error::invalid(format!("column '{}': {e}", self.schema.field(i).name()))
                })?;
            }
            pending += 1;
            if pending == self.batch_size {
                if !self.send(tx, &mut decoders, pending).await {
                    // The consumer is gone: the stream cancels the statement.
                    return Ok(());
                }
                pending = 0;
            }
        }
        if pending > 0 {
            self.send(tx, &mut decoders, pending).await;
        }
        self.running.end();
        self.pool.put(client);
        Ok(())
    }

    /// Sends the decoded rows as a batch; false when the receiver is gone.
    async fn send(&self, tx: &BatchSender, decoders: &mut [Decoder], rows: usize) -> bool {
        let columns = decoders.iter_mut().map(Decoder::finish).collect();
        tx.send(batch(&self.schema, columns, rows)).await.is_ok()
    }
}
