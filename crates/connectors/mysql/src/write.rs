//! Writing rows into MySQL/MariaDB: multi-row `INSERT … VALUES (?, …), (?, …)` prepared
//! statements in one transaction.
//!
//! `CREATE TABLE … AS` creates the table first (DDL commits by itself in MySQL), then inserts in
//! a transaction, and drops the table again when anything fails, so no half-written table is
//! left. Created columns:
//!
//! | Arrow | column created as |
//! | --- | --- |
//! | Boolean | `BOOLEAN` |
//! | Int8 … Int64, UInt8 … UInt64 | `TINYINT` … `BIGINT` (`UNSIGNED`) |
//! | Float16, Float32 / Float64 | `FLOAT` / `DOUBLE` |
//! | Decimal(p, s), p ≤ 65 | `DECIMAL(p,s)` |
//! | Utf8, LargeUtf8, Utf8View, Null | `LONGTEXT` in utf8mb4 with the binary collation (compares like DataFusion) |
//! | Binary, LargeBinary, BinaryView, FixedSizeBinary | `LONGBLOB` |
//! | Date32, Date64 / Time32, Time64 | `DATE` / `TIME(6)` |
//! | Timestamp (UTC for zoned ones; sessions run in UTC) | `DATETIME(6)` |
//!
//! A field that is not nullable gets `NOT NULL`.

use crate::pool::error;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array,
    Float32Array, Float64Array, Int64Array, RecordBatch, StringArray, Time64MicrosecondArray,
    TimestampMicrosecondArray, UInt64Array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::execution::SendableRecordBatchStream;
use flotilla_common::{Error, Result};
use flotilla_federation::write::create_table_sql;
use flotilla_federation::{Dialect, WriteTarget};
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, TxOpts, Value};
use std::sync::Arc;

/// At most this many rows go into one `INSERT`.
const MAX_ROWS_PER_INSERT: usize = 2_000;
/// MySQL numbers placeholders with 16 bits.
const MAX_PLACEHOLDERS: usize = 65_535;
/// An `INSERT` is sent once its values reach about this size (below the server's default
/// `max_allowed_packet` of 16 MiB).
const MAX_INSERT_BYTES: usize = 4 << 20;

/// Writes `data` into `target`; returns the rows written.
pub(crate) async fn write(
    mut conn: Conn,
    dialect: &dyn Dialect,
    target: &WriteTarget,
    data: SendableRecordBatchStream,
) -> Result<u64> {
    let (schema, table, columns) = (target.schema(), target.table(), target.columns());
    let names = target.sql(dialect);
    let qualified = names.table;
    let into = format!("{qualified} ({})", names.columns);
    let WriteTarget::Create { columns, .. } = target else {
        return insert(&mut conn, &into, columns, data).await;
    };
    let ddl = create_table_sql(dialect, &qualified, columns, "MySQL", column_type)?;
    conn.query_drop(&ddl)
        .await
        .map_err(|e| error(&e, &format!("creating table {schema}.{table}")))?;
    match insert(&mut conn, &into, columns, data).await {
        Ok(written) => Ok(written),
        Err(e) => {
            // MySQL commits DDL at once: take the table away again.
            let dropped = conn.query_drop(format!("DROP TABLE {qualified}")).await;
            Err(match dropped {
                Ok(()) => e,
                Err(drop_error) => Error::new(
                    e.kind(),
                    format!(
                        "{}; the new table {schema}.{table} could not be dropped again: {}",
                        e.message(),
                        error(&drop_error, "dropping").message()
                    ),
                ),
            })
        }
    }
}

/// Inserts every row of `data` into `into` (`table (columns)`) in one transaction.
async fn insert(
    conn: &mut Conn,
    into: &str,
    columns: &SchemaRef,
    mut data: SendableRecordBatchStream,
) -> Result<u64> {
    let width = columns.fields().len().max(1);
    let rows_per_insert = MAX_ROWS_PER_INSERT.min(MAX_PLACEHOLDERS / width).max(1);
    let row_placeholders = format!("({})", vec!["?"; width].join(", "));
    let statement = |rows: usize| {
        format!(
            "INSERT INTO {into} VALUES {}",
            vec![row_placeholders.as_str(); rows].join(", ")
        )
    };
    let mut tx = conn
        .start_transaction(TxOpts::default())
        .await
        .map_err(|e| error(&e, "starting a transaction"))?;
    let mut pending: Vec<Value> = Vec::with_capacity(rows_per_insert * width);
    let mut pending_rows = 0;
    let mut pending_bytes = 0;
    let mut written = 0u64;
    let outcome: Result<()> = async {
        while let Some(batch) = data.next().await {
            let batch = batch.map_err(Error::from)?;
            let arrays = cast_columns(&batch, columns)?;
            let values: Vec<Values> = arrays.iter().map(Values::of).collect();
            for row in 0..batch.num_rows() {
                for column in &values {
                    let value = column.value(row)?;
                    pending_bytes += value_size(&value);
                    pending.push(value);
                }
                pending_rows += 1;
                if pending_rows == rows_per_insert || pending_bytes >= MAX_INSERT_BYTES {
                    let params = std::mem::take(&mut pending);
                    tx.exec_drop(statement(pending_rows), params)
                        .await
                        .map_err(|e| error(&e, "inserting rows"))?;
                    written += tx.affected_rows();
                    pending_rows = 0;
                    pending_bytes = 0;
                }
            }
        }
        if pending_rows > 0 {
            tx.exec_drop(statement(pending_rows), std::mem::take(&mut pending))
                .await
                .map_err(|e| error(&e, "inserting rows"))?;
            written += tx.affected_rows();
        }
        Ok(())
    }
    .await;
    match outcome {
        Ok(()) => {
            tx.commit().await.map_err(|e| error(&e, "committing"))?;
            Ok(written)
        }
        Err(e) => {
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

/// The MySQL column type for values of `data_type`.
fn column_type(data_type: &DataType) -> Option<String> {
    use DataType as D;
    Some(match data_type {
        D::Boolean => "BOOLEAN".into(),
        D::Int8 => "TINYINT".into(),
        D::Int16 => "SMALLINT".into(),
        D::Int32 => "INT".into(),
        D::Int64 => "BIGINT".into(),
        D::UInt8 => "TINYINT UNSIGNED".into(),
        D::UInt16 => "SMALLINT UNSIGNED".into(),
        D::UInt32 => "INT UNSIGNED".into(),
        D::UInt64 => "BIGINT UNSIGNED".into(),
        D::Float16 | D::Float32 => "FLOAT".into(),
        D::Float64 => "DOUBLE".into(),
        D::Decimal32(p, s) | D::Decimal64(p, s) | D::Decimal128(p, s) | D::Decimal256(p, s)
            if *p <= 65 && (0..=30).contains(s) =>
        {
            format!("DECIMAL({p},{s})")
        }
        D::Utf8 | D::LargeUtf8 | D::Utf8View | D::Null => {
            "LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin".into()
        }
        D::Binary | D::LargeBinary | D::BinaryView | D::FixedSizeBinary(_) => "LONGBLOB".into(),
        D::Date32 | D::Date64 => "DATE".into(),
        D::Time32(_) | D::Time64(_) => "TIME(6)".into(),
        D::Timestamp(..) => "DATETIME(6)".into(),
        D::Dictionary(_, value) => return column_type(value),
        _ => return None,
    })
}

/// One column of a batch, cast to the form its values are sent in and downcast once.
enum Values<'a> {
    Signed(&'a Int64Array),
    Unsigned(&'a UInt64Array),
    Float(&'a Float32Array),
    Double(&'a Float64Array),
    Decimal(&'a Decimal128Array),
    Text(&'a StringArray),
    Bytes(&'a BinaryArray),
    Date(&'a Date32Array),
    Time(&'a Time64MicrosecondArray),
    Timestamp(&'a TimestampMicrosecondArray),
    Bool(&'a BooleanArray),
    Null,
}

/// The columns of `batch` cast to the types their values are sent from.
fn cast_columns(batch: &RecordBatch, columns: &SchemaRef) -> Result<Vec<ArrayRef>> {
    batch
        .columns()
        .iter()
        .zip(columns.fields())
        .map(|(column, field)| {
            sendable(column).map_err(|e| Error::invalid(format!("column '{}': {e}", field.name())))
        })
        .collect()
}

/// `column` cast to the type its values are sent from (see [`Values::of`]).
fn sendable(column: &ArrayRef) -> std::result::Result<ArrayRef, String> {
    use DataType as D;
    let target = match column.data_type() {
        D::Null | D::Boolean | D::Float64 | D::Decimal128(..) => return Ok(Arc::clone(column)),
        D::Int8 | D::Int16 | D::Int32 | D::Int64 => D::Int64,
        D::UInt8 | D::UInt16 | D::UInt32 | D::UInt64 => D::UInt64,
        D::Float16 | D::Float32 => D::Float32,
        D::Decimal32(p, s) | D::Decimal64(p, s) => D::Decimal128(*p, *s),
        D::Decimal256(_, s) => D::Decimal128(38, *s),
        D::Utf8 | D::LargeUtf8 | D::Utf8View | D::Dictionary(..) => D::Utf8,
        D::Binary | D::LargeBinary | D::BinaryView | D::FixedSizeBinary(_) => D::Binary,
        D::Date32 | D::Date64 => D::Date32,
        D::Time32(_) | D::Time64(_) => D::Time64(TimeUnit::Microsecond),
        // Zoned instants keep their UTC value: sessions run with time_zone = '+00:00'.
        D::Timestamp(_, zone) => D::Timestamp(TimeUnit::Microsecond, zone.clone()),
        other => return Err(format!("cannot write values of type {other} to MySQL")),
    };
    cast(column, &target).map_err(|e| e.to_string())
}

impl<'a> Values<'a> {
    /// `array` as cast by [`sendable`].
    fn of(array: &'a ArrayRef) -> Values<'a> {
        use DataType as D;
        match array.data_type() {
            D::Boolean => Values::Bool(array.as_boolean()),
            D::Int64 => Values::Signed(array.as_primitive()),
            D::UInt64 => Values::Unsigned(array.as_primitive()),
            D::Float32 => Values::Float(array.as_primitive()),
            D::Float64 => Values::Double(array.as_primitive()),
            D::Decimal128(..) => Values::Decimal(array.as_primitive()),
            D::Utf8 => Values::Text(array.as_string()),
            D::Binary => Values::Bytes(array.as_binary()),
            D::Date32 => Values::Date(array.as_primitive()),
            D::Time64(_) => Values::Time(array.as_primitive()),
            D::Timestamp(..) => Values::Timestamp(array.as_primitive()),
            _ => Values::Null,
        }
    }

    fn is_null(&self, row: usize) -> bool {
        match self {
            Values::Null => true,
            Values::Signed(a) => a.is_null(row),
            Values::Unsigned(a) => a.is_null(row),
            Values::Float(a) => a.is_null(row),
            Values::Double(a) => a.is_null(row),
            Values::Decimal(a) => a.is_null(row),
            Values::Text(a) => a.is_null(row),
            Values::Bytes(a) => a.is_null(row),
            Values::Date(a) => a.is_null(row),
            Values::Time(a) => a.is_null(row),
            Values::Timestamp(a) => a.is_null(row),
            Values::Bool(a) => a.is_null(row),
        }
    }

    fn value(&self, row: usize) -> Result<Value> {
        if self.is_null(row) {
            return Ok(Value::NULL);
        }
        Ok(match self {
            Values::Null => Value::NULL,
            Values::Bool(a) => Value::Int(i64::from(a.value(row))),
            Values::Signed(a) => Value::Int(a.value(row)),
            Values::Unsigned(a) => Value::UInt(a.value(row)),
            Values::Float(a) => Value::Float(a.value(row)),
            Values::Double(a) => Value::Double(a.value(row)),
            Values::Decimal(a) => Value::Bytes(a.value_as_string(row).into_bytes()),
            Values::Text(a) => Value::Bytes(a.value(row).as_bytes().to_vec()),
            Values::Bytes(a) => Value::Bytes(a.value(row).to_vec()),
            Values::Date(a) => {
                let (y, m, d) = civil_from_days(a.value(row));
                let year = u16::try_from(y)
                    .map_err(|_| Error::invalid(format!("year {y} is outside MySQL's dates")))?;
                Value::Date(year, m, d, 0, 0, 0, 0)
            }
            Values::Time(a) => {
                let micros = a.value(row);
                let negative = micros < 0;
                let micros = micros.unsigned_abs();
                let seconds = micros / 1_000_000;
                Value::Time(
                    negative,
                    (seconds / 86_400) as u32,
                    ((seconds / 3_600) % 24) as u8,
                    ((seconds / 60) % 60) as u8,
                    (seconds % 60) as u8,
                    (micros % 1_000_000) as u32,
                )
            }
            Values::Timestamp(a) => {
                let micros = a.value(row);
                let days = micros.div_euclid(86_400_000_000);
                let of_day = micros.rem_euclid(86_400_000_000);
                let (y, m, d) = civil_from_days(i32::try_from(days).unwrap_or(i32::MAX));
                let year = u16::try_from(y).map_err(|_| {
                    Error::invalid(format!("year {y} is outside MySQL's datetimes"))
                })?;
                let seconds = of_day / 1_000_000;
                Value::Date(
                    year,
                    m,
                    d,
                    (seconds / 3_600) as u8,
                    ((seconds / 60) % 60) as u8,
                    (seconds % 60) as u8,
                    (of_day % 1_000_000) as u32,
                )
            }
        })
    }
}

/// Roughly how many bytes a value takes in an `INSERT`.
fn value_size(value: &Value) -> usize {
    match value {
        Value::Bytes(b) => b.len() + 9,
        _ => 9,
    }
}

/// Year, month and day of a count of days since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(days: i32) -> (i32, u8, u8) {
    // Howard Hinnant's algorithm, in 400-year eras starting in March.
    let z = i64::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year as i32, month as u8, day as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_federation::column::days_from_civil;

    #[test]
    fn civil_dates_round_trip() {
        for (y, m, d) in [
            (1970, 1, 1),
            (2000, 2, 29),
            (1969, 12, 31),
            (1, 1, 1),
            (9999, 12, 31),
        ] {
            let days = days_from_civil(y, m, d);
            assert_eq!(civil_from_days(days), (y, m as u8, d as u8));
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn created_column_types_follow_arrow_types() {
        assert_eq!(column_type(&DataType::UInt64).unwrap(), "BIGINT UNSIGNED");
        assert_eq!(
            column_type(&DataType::Decimal128(15, 2)).unwrap(),
            "DECIMAL(15,2)"
        );
        assert!(column_type(&DataType::Decimal256(70, 2)).is_none());
        assert!(column_type(&DataType::Duration(TimeUnit::Second)).is_none());
    }
}
