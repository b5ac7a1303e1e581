//! `flotilla datagen tpch`: TPC-H data with a progress bar.

use crate::progress;
use flotilla_common::Result;
use flotilla_tpch::{Format, GenerateOptions, Table};
use std::time::Instant;

/// Generates TPC-H data as `options` say, drawing progress on stderr. Returns rows per table.
pub fn generate_with_progress(options: &GenerateOptions, label: &str) -> Result<Vec<(Table, u64)>> {
    let tables: Vec<Table> = if options.tables.is_empty() {
        Table::ALL.to_vec()
    } else {
        options.tables.clone()
    };
    let total: u64 = tables.iter().map(|t| t.expected_rows(options.scale)).sum();
    let bar = progress::bar(total, label);
    let started = Instant::now();
    let written = flotilla_tpch::generate(options, &|table, rows| {
        bar.set_message(format!("{label} {}", table.name()));
        bar.inc(rows);
    })?;
    bar.finish_and_clear();
    let rows: u64 = written.iter().map(|(_, n)| n).sum();
    let what = match options.format {
        Format::Parquet => "Parquet files",
        Format::Csv => "CSV files",
        Format::Sqlite => "a SQLite database",
    };
    eprintln!(
        "wrote {rows} rows of TPC-H SF {} as {what} to {} in {:.1}s",
        options.scale,
        options.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(written)
}
