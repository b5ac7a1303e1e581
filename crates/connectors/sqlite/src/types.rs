//! SQLite declared types → Arrow types, and decoding of SQLite values into Arrow builders.
//!
//! SQLite stores each value with its own storage class; the declared type of a column is a
//! promise about what the values mean. Flotilla reads the declared type (case-insensitive):
//!
//! | declared type                          | Arrow type                  |
//! | -------------------------------------- | --------------------------- |
//! | `BOOLEAN`, `BOOL`                      | Boolean                     |
//! | `DATETIME`, `TIMESTAMP…`               | Timestamp(µs), no time zone |
//! | `DATE`                                 | Date32                      |
//! | `DECIMAL(p,s)`, `NUMERIC(p,s)` (p ≤ 38)| Decimal128(p, s)            |
//! | contains `INT`                         | Int64                       |
//! | contains `CHAR`, `CLOB` or `TEXT`      | Utf8                        |
//! | contains `BLOB`                        | Binary                      |
//! | contains `REAL`, `FLOA` or `DOUB`      | Float64                     |
//! | empty (no declared type, e.g. a view's computed column) | Utf8       |
//! | anything else (`NUMERIC`, `DECIMAL`)   | Float64                     |
//!
//! Values are converted when they mean the same thing (an INTEGER 2 in a DECIMAL(15,2) column is
//! 2.00; the text '1996-03-13' in a DATE column is that date). A value that does not fit its
//! declared type (text that is not a date, a fraction in an INTEGER column) is an error that
//! names the column; it is never silently turned into NULL.

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder,
    Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::compute::kernels::cast_utils::Parser;
use datafusion::arrow::compute::kernels::cast_utils::parse_decimal;
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, TimeUnit, TimestampMicrosecondType,
};
use rusqlite::types::ValueRef;
use std::sync::Arc;

/// What a column's declared type says its values are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Boolean,
    Int64,
    Float64,
    Decimal { precision: u8, scale: i8 },
    Date,
    Timestamp,
    Text,
    Blob,
}

impl ColumnType {
    /// Classifies a declared type as SQLite's `PRAGMA table_info` reports it.
    pub fn from_declared(declared: &str) -> ColumnType {
        let upper = declared.trim().to_ascii_uppercase();
        let base = upper.split('(').next().unwrap_or("").trim();
        match base {
            "BOOLEAN" | "BOOL" => return ColumnType::Boolean,
            "DATE" => return ColumnType::Date,
            "DATETIME" => return ColumnType::Timestamp,
            _ if base.starts_with("TIMESTAMP") => return ColumnType::Timestamp,
            "DECIMAL" | "NUMERIC" => {
                if let Some((precision, scale)) = precision_and_scale(&upper) {
                    return ColumnType::Decimal { precision, scale };
                }
            }
            _ => {}
        }
        // SQLite's own affinity rules, in its order (https://sqlite.org/datatype3.html §3.1).
        if upper.contains("INT") {
            ColumnType::Int64
        } else if upper.contains("CHAR") || upper.contains("CLOB") || upper.contains("TEXT") {
            ColumnType::Text
        } else if upper.contains("BLOB") {
            ColumnType::Blob
        } else if upper.is_empty() {
            ColumnType::Text
        } else {
            ColumnType::Float64
        }
    }

    /// How to decode a result column that must have the Arrow type `data_type`: decode as the
    /// returned kind, then cast. `None` for types SQLite results cannot hold.
    pub fn for_arrow(data_type: &DataType) -> Option<ColumnType> {
        Some(match data_type {
            DataType::Boolean => ColumnType::Boolean,
            t if t.is_integer() => ColumnType::Int64,
            DataType::Float16 | DataType::Float32 | DataType::Float64 => ColumnType::Float64,
            DataType::Decimal128(precision, scale) if *scale >= 0 => ColumnType::Decimal {
                precision: *precision,
                scale: *scale,
            },
            DataType::Date32 => ColumnType::Date,
            DataType::Timestamp(_, _) => ColumnType::Timestamp,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ColumnType::Text,
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => ColumnType::Blob,
            _ => return None,
        })
    }

    /// The Arrow type of the column.
    pub fn arrow_type(self) -> DataType {
        match self {
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::Decimal { precision, scale } => DataType::Decimal128(precision, scale),
            ColumnType::Date => DataType::Date32,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            ColumnType::Text => DataType::Utf8,
            ColumnType::Blob => DataType::Binary,
        }
    }
}

/// `(p, s)` of `DECIMAL(p, s)` / `NUMERIC(p)`, when they fit Decimal128.
fn precision_and_scale(upper: &str) -> Option<(u8, i8)> {
    let inner = upper.split_once('(')?.1.split_once(')')?.0;
    let mut parts = inner.split(',').map(|p| p.trim().parse::<u8>());
    let precision = parts.next()?.ok()?;
    let scale = match parts.next() {
        Some(s) => s.ok()?,
        None => 0,
    };
    (1..=38).contains(&precision).then_some(())?;
    (scale <= precision).then_some((precision, scale as i8))
}

/// Builds one Arrow column from SQLite values.
pub enum ColumnBuilder {
    Boolean(BooleanBuilder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Decimal(Decimal128Builder, u8, i8),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Text(StringBuilder),
    Blob(BinaryBuilder),
}

impl ColumnBuilder {
    /// A builder for `column_type` with room for `capacity` rows.
    pub fn new(column_type: ColumnType, capacity: usize) -> Self {
        match column_type {
            ColumnType::Boolean => ColumnBuilder::Boolean(BooleanBuilder::with_capacity(capacity)),
            ColumnType::Int64 => ColumnBuilder::Int64(Int64Builder::with_capacity(capacity)),
            ColumnType::Float64 => ColumnBuilder::Float64(Float64Builder::with_capacity(capacity)),
            ColumnType::Decimal { precision, scale } => {
                ColumnBuilder::Decimal(Decimal128Builder::with_capacity(capacity), precision, scale)
            }
            ColumnType::Date => ColumnBuilder::Date(Date32Builder::with_capacity(capacity)),
            ColumnType::Timestamp => {
                ColumnBuilder::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity))
            }
            ColumnType::Text => {
                ColumnBuilder::Text(StringBuilder::with_capacity(capacity, capacity * 16))
            }
            ColumnType::Blob => {
                ColumnBuilder::Blob(BinaryBuilder::with_capacity(capacity, capacity * 16))
            }
        }
    }

    /// Appends one value. On a value that does not fit, returns a description of why.
    pub fn append(&mut self, value: ValueRef<'_>) -> Result<(), String> {
        if let ValueRef::Null = value {
            self.append_null();
            return Ok(());
        }
        match self {
            ColumnBuilder::Boolean(b) => b.append_value(to_bool(value)?),
            ColumnBuilder::Int64(b) => b.append_value(to_i64(value)?),
            ColumnBuilder::Float64(b) => b.append_value(to_f64(value)?),
            ColumnBuilder::Decimal(b, precision, scale) => {
                b.append_value(to_decimal(value, *precision, *scale)?)
            }
            ColumnBuilder::Date(b) => b.append_value(to_date(value)?),
            ColumnBuilder::Timestamp(b) => b.append_value(to_timestamp(value)?),
            ColumnBuilder::Text(b) => match value {
                ValueRef::Text(t) | ValueRef::Blob(t) => b.append_value(utf8(t)?),
                ValueRef::Integer(i) => b.append_value(i.to_string()),
                ValueRef::Real(f) => b.append_value(f.to_string()),
                ValueRef::Null => unreachable!("handled above"),
            },
            ColumnBuilder::Blob(b) => match value {
                ValueRef::Text(t) | ValueRef::Blob(t) => b.append_value(t),
                other => return Err(format!("{} is not a blob", describe(other))),
            },
        }
        Ok(())
    }

    fn append_null(&mut self) {
        match self {
            ColumnBuilder::Boolean(b) => b.append_null(),
            ColumnBuilder::Int64(b) => b.append_null(),
            ColumnBuilder::Float64(b) => b.append_null(),
            ColumnBuilder::Decimal(b, ..) => b.append_null(),
            ColumnBuilder::Date(b) => b.append_null(),
            ColumnBuilder::Timestamp(b) => b.append_null(),
            ColumnBuilder::Text(b) => b.append_null(),
            ColumnBuilder::Blob(b) => b.append_null(),
        }
    }

    /// Finishes the column; the builder can be reused for the next batch.
    pub fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Boolean(b) => Arc::new(b.finish()),
            ColumnBuilder::Int64(b) => Arc::new(b.finish()),
            ColumnBuilder::Float64(b) => Arc::new(b.finish()),
            ColumnBuilder::Decimal(b, precision, scale) => Arc::new(
                b.finish()
                    .with_precision_and_scale(*precision, *scale)
                    .expect("precision and scale were validated when the type was read"),
            ),
            ColumnBuilder::Date(b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp(b) => Arc::new(b.finish()),
            ColumnBuilder::Text(b) => Arc::new(b.finish()),
            ColumnBuilder::Blob(b) => Arc::new(b.finish()),
        }
    }
}

fn describe(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => format!("integer {i}"),
        ValueRef::Real(f) => format!("real {f}"),
        ValueRef::Text(t) => format!("text '{}'", String::from_utf8_lossy(t)),
        ValueRef::Blob(b) => format!("a blob of {} bytes", b.len()),
    }
}

fn utf8(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|e| format!("text is not valid UTF-8: {e}"))
}

fn to_bool(value: ValueRef<'_>) -> Result<bool, String> {
    match value {
        ValueRef::Integer(0) => Ok(false),
        ValueRef::Integer(1) => Ok(true),
        ValueRef::Text(t) => match utf8(t)?.to_ascii_lowercase().as_str() {
            "true" | "t" | "1" => Ok(true),
            "false" | "f" | "0" => Ok(false),
            _ => Err(format!("{} is not a boolean", describe(value))),
        },
        other => Err(format!("{} is not a boolean", describe(other))),
    }
}

fn to_i64(value: ValueRef<'_>) -> Result<i64, String> {
    match value {
        ValueRef::Integer(i) => Ok(i),
        ValueRef::Real(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(f as i64),
        ValueRef::Text(t) => utf8(t)?
            .trim()
            .parse()
            .map_err(|_| format!("{} is not an integer", describe(value))),
        other => Err(format!("{} is not an integer", describe(other))),
    }
}

fn to_f64(value: ValueRef<'_>) -> Result<f64, String> {
    match value {
        ValueRef::Integer(i) => Ok(i as f64),
        ValueRef::Real(f) => Ok(f),
        ValueRef::Text(t) => utf8(t)?
            .trim()
            .parse()
            .map_err(|_| format!("{} is not a number", describe(value))),
        other => Err(format!("{} is not a number", describe(other))),
    }
}

fn to_decimal(value: ValueRef<'_>, precision: u8, scale: i8) -> Result<i128, String> {
    let out_of_range = || {
        format!(
            "{} does not fit DECIMAL({precision},{scale})",
            describe(value)
        )
    };
    let unscaled = match value {
        ValueRef::Integer(i) => (i as i128)
            .checked_mul(10i128.pow(scale as u32))
            .ok_or_else(out_of_range)?,
        ValueRef::Real(f) => {
            let scaled = (f * 10f64.powi(scale as i32)).round();
            if !scaled.is_finite() || scaled.abs() >= 1e38 {
                return Err(out_of_range());
            }
            scaled as i128
        }
        ValueRef::Text(t) => parse_decimal::<Decimal128Type>(utf8(t)?.trim(), precision, scale)
            .map_err(|_| format!("{} is not a DECIMAL({precision},{scale})", describe(value)))?,
        other => return Err(format!("{} is not a decimal", describe(other))),
    };
    if unscaled.unsigned_abs() >= 10u128.pow(precision as u32) {
        return Err(out_of_range());
    }
    Ok(unscaled)
}

fn to_date(value: ValueRef<'_>) -> Result<i32, String> {
    match value {
        ValueRef::Text(t) => Date32Type::parse(utf8(t)?.trim())
            .ok_or_else(|| format!("{} is not a date (expected YYYY-MM-DD)", describe(value))),
        other => Err(format!(
            "{} is not a date (expected YYYY-MM-DD text)",
            describe(other)
        )),
    }
}

fn to_timestamp(value: ValueRef<'_>) -> Result<i64, String> {
    match value {
        ValueRef::Text(t) => TimestampMicrosecondType::parse(utf8(t)?.trim()).ok_or_else(|| {
            format!(
                "{} is not a timestamp (expected YYYY-MM-DD HH:MM:SS[.ffffff])",
                describe(value)
            )
        }),
        // SQLite's date functions treat an integer as seconds since the Unix epoch.
        ValueRef::Integer(seconds) => seconds
            .checked_mul(1_000_000)
            .ok_or_else(|| format!("{} is out of the timestamp range", describe(value))),
        other => Err(format!("{} is not a timestamp", describe(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_follow_sqlite_affinity_and_our_extensions() {
        assert_eq!(ColumnType::from_declared("INTEGER"), ColumnType::Int64);
        assert_eq!(ColumnType::from_declared("bigint"), ColumnType::Int64);
        assert_eq!(ColumnType::from_declared("VARCHAR(25)"), ColumnType::Text);
        assert_eq!(ColumnType::from_declared(""), ColumnType::Text);
        assert_eq!(
            ColumnType::from_declared("double precision"),
            ColumnType::Float64
        );
        assert_eq!(
            ColumnType::from_declared("DECIMAL(15, 2)"),
            ColumnType::Decimal {
                precision: 15,
                scale: 2
            }
        );
        assert_eq!(ColumnType::from_declared("NUMERIC"), ColumnType::Float64);
        assert_eq!(
            ColumnType::from_declared("DECIMAL(40,2)"),
            ColumnType::Float64
        );
        assert_eq!(ColumnType::from_declared("date"), ColumnType::Date);
        assert_eq!(
            ColumnType::from_declared("TIMESTAMP(3)"),
            ColumnType::Timestamp
        );
        assert_eq!(ColumnType::from_declared("BOOLEAN"), ColumnType::Boolean);
        assert_eq!(ColumnType::from_declared("BLOB"), ColumnType::Blob);
    }

    #[test]
    fn decimals_convert_exactly_and_reject_overflow() {
        assert_eq!(to_decimal(ValueRef::Real(21168.23), 15, 2), Ok(2116823));
        assert_eq!(to_decimal(ValueRef::Integer(17), 15, 2), Ok(1700));
        assert_eq!(to_decimal(ValueRef::Text(b"0.05"), 15, 2), Ok(5));
        assert!(to_decimal(ValueRef::Integer(1000), 4, 2).is_err());
        assert!(to_decimal(ValueRef::Text(b"abc"), 15, 2).is_err());
    }

    #[test]
    fn values_that_do_not_fit_are_errors_not_nulls() {
        let mut b = ColumnBuilder::new(ColumnType::Date, 2);
        assert!(b.append(ValueRef::Text(b"1996-03-13")).is_ok());
        let err = b.append(ValueRef::Text(b"yesterday")).unwrap_err();
        assert!(err.contains("'yesterday'"), "{err}");
        assert!(to_i64(ValueRef::Real(1.5)).is_err());
        assert!(to_bool(ValueRef::Integer(2)).is_err());
    }
}
