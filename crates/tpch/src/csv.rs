//! CSV output: one comma-separated file per table, with a header line, dates as `YYYY-MM-DD`
//! and decimals with their scale (`21168.23`), which PostgreSQL's `COPY` and MariaDB's
//! `LOAD DATA` read as they are.

use crate::{Progress, Table, table_error};
use arrow::csv::WriterBuilder;
use flotilla_common::{Error, Result};
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

pub(crate) fn write_table(
    path: &Path,
    table: Table,
    scale: f64,
    progress: Progress<'_>,
) -> Result<u64> {
    let file =
        File::create(path).map_err(|e| Error::from(e).with_source(path.display().to_string()))?;
    let mut writer = WriterBuilder::new()
        .with_header(true)
        .build(BufWriter::with_capacity(1 << 20, file));
    let mut rows = 0;
    for batch in table.batches(scale) {
        let batch = batch.map_err(|e| table_error(table, e))?;
        writer.write(&batch).map_err(|e| table_error(table, e))?;
        rows += batch.num_rows() as u64;
        progress(table, batch.num_rows() as u64);
    }
    Ok(rows)
}
