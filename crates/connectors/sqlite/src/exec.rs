//! Running one SQL statement in SQLite and streaming its rows as Arrow batches.
//!
//! ```text
//!   DataFusion task (RemoteStream)          blocking thread (spawn_blocking)
//!   ───────────────                         ─────────────────────────────────
//!   RemoteStream::poll_next ◀── channel ─── step rows, decode into builders,
//!        (bounded, 2 batches)               send a batch every `batch_size` rows
//!   drop(RemoteStream) ──── interrupt ───▶  statement ends with SQLITE_INTERRUPT
//! ```
//!
//! At most two decoded batches wait in the channel, so a slow consumer slows the reader instead
//! of growing memory. The connection goes back to the pool when the statement ends. Each column
//! is decoded by the kind its Arrow type asks for ([`ColumnType::for_arrow`]) and cast to that
//! exact type.

use crate::pool::Pool;
use crate::types::{ColumnBuilder, ColumnType};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{DataFusionError, Result, exec_datafusion_err};
use datafusion::execution::SendableRecordBatchStream;
use flotilla_federation::stream::{BatchSender, RemoteStream, Running, batch};
use rusqlite::InterruptHandle;
use std::sync::Arc;

/// Starts `sql` on a pooled connection and returns the stream of its rows with `schema`.
pub(crate) fn stream(
    source: &str,
    pool: &Arc<Pool>,
    sql: &str,
    schema: SchemaRef,
    batch_size: usize,
) -> Result<SendableRecordBatchStream> {
    let column_types = schema
        .fields()
        .iter()
        .map(|f| {
            ColumnType::for_arrow(f.data_type()).ok_or_else(|| {
                exec_datafusion_err!(
                    "source '{source}': column '{}': SQLite cannot return {}",
                    f.name(),
                    f.data_type()
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let conn = pool
        .get()
        .map_err(|e| exec_datafusion_err!("source '{source}': cannot open SQLite: {e}"))?;
    let running = Running::default();
    running.start(conn.get_interrupt_handle());
    let reader = Reader {
        source: source.to_string(),
        pool: Arc::clone(pool),
        sql: sql.to_string(),
        column_types,
        schema: Arc::clone(&schema),
        batch_size: batch_size.max(1),
        running: running.clone(),
    };
    Ok(Box::pin(RemoteStream::spawn_blocking(
        schema,
        move |tx| reader.run(conn, &tx),
        move || running.stop(|handle| handle.interrupt()),
    )))
}

/// The blocking side: runs the statement and sends batches.
struct Reader {
    source: String,
    pool: Arc<Pool>,
    sql: String,
    column_types: Vec<ColumnType>,
    schema: SchemaRef,
    batch_size: usize,
    running: Running<InterruptHandle>,
}

impl Reader {
    fn run(self, conn: rusqlite::Connection, tx: &BatchSender) -> Result<()> {
        let read = self.read(&conn, tx);
        // Take the interrupt handle back before the connection can serve another statement.
        self.running.end();
        self.pool.put(conn);
        read
    }

    fn read(&self, conn: &rusqlite::Connection, tx: &BatchSender) -> Result<()> {
        let sqlite_err = |e: rusqlite::Error| {
            DataFusionError::Execution(format!(
                "source '{}': SQLite: {e} (query: {})",
                self.source, self.sql
            ))
        };
        let mut statement = conn.prepare(&self.sql).map_err(sqlite_err)?;
        let mut rows = statement.query([]).map_err(sqlite_err)?;
        let mut builders: Vec<_> = self
            .column_types
            .iter()
            .map(|t| ColumnBuilder::new(*t, self.batch_size))
            .collect();
        let mut buffered = 0;
        while let Some(row) = rows.next().map_err(sqlite_err)? {
            for (i, builder) in builders.iter_mut().enumerate() {
                let value = row.get_ref(i).map_err(sqlite_err)?;
                builder.append(value).map_err(|why| {
                    DataFusionError::Execution(format!(
                        "source '{}': column '{}' ({:?}): {why}",
                        self.source,
                        self.schema.field(i).name(),
                        self.column_types[i]
                    ))
                })?;
            }
            buffered += 1;
            if buffered == self.batch_size {
                if !self.send(&mut builders, buffered, tx)? {
                    return Ok(());
                }
                buffered = 0;
            }
        }
        if buffered > 0 {
            self.send(&mut builders, buffered, tx)?;
        }
        Ok(())
    }

    /// Sends the buffered rows; `false` when the consumer has gone away.
    fn send(&self, builders: &mut [ColumnBuilder], rows: usize, tx: &BatchSender) -> Result<bool> {
        let columns = builders
            .iter_mut()
            .zip(self.schema.fields())
            .map(|(b, field)| {
                let column = b.finish();
                if column.data_type() == field.data_type() {
                    Ok(column)
                } else {
                    cast(&column, field.data_type()).map_err(|e| {
                        exec_datafusion_err!(
                            "source '{}': column '{}': {e}",
                            self.source,
                            field.name()
                        )
                    })
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(tx.blocking_send(batch(&self.schema, columns, rows)).is_ok())
    }
}
