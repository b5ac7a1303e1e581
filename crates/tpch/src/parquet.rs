//! Parquet output: one zstd-compressed file per table.

use crate::{Progress, Table, table_error};
use flotilla_common::{Error, Result};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::fs::File;
use std::path::Path;

/// Rows per row group: small enough that a scan of SF 0.1 lineitem has several to split across
/// partitions.
const ROW_GROUP_SIZE: usize = 128 * 1024;

pub(crate) fn write_table(
    path: &Path,
    table: Table,
    scale: f64,
    progress: Progress<'_>,
) -> Result<u64> {
    let file =
        File::create(path).map_err(|e| Error::from(e).with_source(path.display().to_string()))?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(ROW_GROUP_SIZE))
        .build();
    let mut writer = ArrowWriter::try_new(file, table.schema(), Some(properties))
        .map_err(|e| table_error(table, e))?;
    let mut rows = 0;
    for batch in table.batches(scale) {
        let batch = batch.map_err(|e| table_error(table, e))?;
        writer.write(&batch).map_err(|e| table_error(table, e))?;
        rows += batch.num_rows() as u64;
        progress(table, batch.num_rows() as u64);
    }
    writer.close().map_err(|e| table_error(table, e))?;
    Ok(rows)
}
