//! SQLite output: one database file with the 8 tables, declared column types that say what the
//! values are (`INTEGER`, `DECIMAL(15,2)`, `DATE`, `TEXT`), primary keys and an index on every
//! foreign key, loaded with one prepared statement per table inside one large transaction per
//! table.
//!
//! Values are stored as SQLite stores them best: decimals as REAL (exact for TPC-H's two
//! decimal places when read back at the declared scale), dates as ISO-8601 text.

use crate::{Progress, Table, table_error};
use arrow::array::{Array, AsArray, RecordBatch, temporal_conversions::as_date};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float64Type, Int32Type, Int64Type, Schema,
};
use flotilla_common::{Error, Result};
use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};
use std::path::Path;

/// The SQLite type to declare for a column of Arrow type `data_type`, or `None` when the TPC-H
/// writer has no mapping for it.
fn sqlite_declared_type(data_type: &DataType) -> Option<String> {
    Some(match data_type {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => "INTEGER".into(),
        DataType::Float32 | DataType::Float64 => "REAL".into(),
        DataType::Decimal128(p, s) => format!("DECIMAL({p},{s})"),
        DataType::Date32 => "DATE".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => "TEXT".into(),
        DataType::Binary | DataType::BinaryView | DataType::LargeBinary => "BLOB".into(),
        _ => return None,
    })
}

/// `CREATE TABLE` for `name` with `schema`'s columns and the given primary key.
fn sqlite_create_table(name: &str, schema: &Schema, primary_key: &[&str]) -> Result<String> {
    let mut columns = Vec::new();
    for field in schema.fields() {
        let declared = sqlite_declared_type(field.data_type()).ok_or_else(|| {
            Error::invalid(format!(
                "column {}.{}: no SQLite type for {}",
                name,
                field.name(),
                field.data_type()
            ))
        })?;
        let null = if field.is_nullable() { "" } else { " NOT NULL" };
        columns.push(format!("{} {declared}{null}", quote(field.name())));
    }
    if !primary_key.is_empty() {
        let key: Vec<_> = primary_key.iter().map(|c| quote(c)).collect();
        columns.push(format!("PRIMARY KEY ({})", key.join(", ")));
    }
    Ok(format!(
        "CREATE TABLE {} (\n  {}\n)",
        quote(name),
        columns.join(",\n  ")
    ))
}

fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// Writes `tables` into a new database at `path` (replacing any file there). The database is
/// built under a temporary name and renamed at the end, so a failure leaves no half-written
/// database behind.
pub(crate) fn write_database(
    path: &Path,
    tables: &[Table],
    scale: f64,
    progress: Progress<'_>,
) -> Result<Vec<(Table, u64)>> {
    let partial = path.with_extension("sqlite.partial");
    let _ = std::fs::remove_file(&partial);
    let sqlite_error = |e: rusqlite::Error| Error::internal(format!("{}: {e}", partial.display()));
    let mut conn = Connection::open(&partial).map_err(sqlite_error)?;
    conn.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")
        .map_err(sqlite_error)?;
    let mut written = Vec::new();
    for &table in tables {
        let rows = write_table(&mut conn, table, scale, progress)?;
        written.push((table, rows));
    }
    // No ANALYZE: measured at SF 1, SQLite's planner with sqlite_stat1 chose slower plans for
    // TPC-H q9, q10, q12 and q14 (total 192 s against 156 s without).
    drop(conn);
    std::fs::rename(&partial, path)
        .map_err(|e| Error::from(e).with_source(path.display().to_string()))?;
    Ok(written)
}

fn write_table(
    conn: &mut Connection,
    table: Table,
    scale: f64,
    progress: Progress<'_>,
) -> Result<u64> {
    let schema = table.schema();
    let sqlite_error = |e: rusqlite::Error| table_error(table, e);
    let tx = conn.transaction().map_err(sqlite_error)?;
    tx.execute_batch(&sqlite_create_table(
        table.name(),
        &schema,
        table.primary_key(),
    )?)
    .map_err(sqlite_error)?;
    let placeholders = vec!["?"; schema.fields().len()].join(", ");
    let mut rows = 0;
    {
        let mut insert = tx
            .prepare(&format!(
                "INSERT INTO {} VALUES ({placeholders})",
                quote(table.name())
            ))
            .map_err(sqlite_error)?;
        for batch in table.batches(scale) {
            let batch = batch.map_err(|e| table_error(table, e))?;
            let columns = batch_values(&batch).map_err(|e| table_error(table, e))?;
            for row in 0..batch.num_rows() {
                insert
                    .execute(params_from_iter(columns.iter().map(|c| &c[row])))
                    .map_err(sqlite_error)?;
            }
            rows += batch.num_rows() as u64;
            progress(table, batch.num_rows() as u64);
        }
    }
    for column in table.foreign_keys() {
        tx.execute_batch(&format!(
            "CREATE INDEX {} ON {} ({})",
            quote(&format!("{}_{column}", table.name())),
            quote(table.name()),
            quote(column)
        ))
        .map_err(sqlite_error)?;
    }
    tx.commit().map_err(sqlite_error)?;
    Ok(rows)
}

/// Converts each column of `batch` to SQLite values, once per batch.
fn batch_values(batch: &RecordBatch) -> std::result::Result<Vec<Vec<Value>>, String> {
    batch
        .columns()
        .iter()
        .map(|array| to_values(array.as_ref()))
        .collect()
}

fn to_values(array: &dyn Array) -> std::result::Result<Vec<Value>, String> {
    let n = array.len();
    let mut values: Vec<Value> = match array.data_type() {
        DataType::Int64 => {
            let a = array.as_primitive::<Int64Type>();
            (0..n).map(|i| Value::Integer(a.value(i))).collect()
        }
        DataType::Int32 => {
            let a = array.as_primitive::<Int32Type>();
            (0..n).map(|i| Value::Integer(a.value(i) as i64)).collect()
        }
        DataType::Float64 => {
            let a = array.as_primitive::<Float64Type>();
            (0..n).map(|i| Value::Real(a.value(i))).collect()
        }
        DataType::Decimal128(_, scale) => {
            let a = array.as_primitive::<Decimal128Type>();
            let divisor = 10f64.powi(*scale as i32);
            (0..n)
                .map(|i| Value::Real(a.value(i) as f64 / divisor))
                .collect()
        }
        DataType::Date32 => {
            let a = array.as_primitive::<Date32Type>();
            (0..n)
                .map(|i| match as_date::<Date32Type>(a.value(i) as i64) {
                    Some(date) => Value::Text(date.format("%Y-%m-%d").to_string()),
                    None => Value::Null,
                })
                .collect()
        }
        DataType::Utf8View => {
            let a = array.as_string_view();
            (0..n)
                .map(|i| Value::Text(a.value(i).to_string()))
                .collect()
        }
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            (0..n)
                .map(|i| Value::Text(a.value(i).to_string()))
                .collect()
        }
        other => return Err(format!("no SQLite conversion for {other}")),
    };
    for (i, value) in values.iter_mut().enumerate() {
        if array.is_null(i) {
            *value = Value::Null;
        }
    }
    Ok(values)
}
