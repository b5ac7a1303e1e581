//! MySQL/MariaDB types: what Arrow type a column gets, and decoding binary-protocol values.
//!
//! | MySQL / MariaDB | Arrow |
//! | --- | --- |
//! | `tinyint`, `smallint`, `mediumint`, `int`, `bigint` | Int8, Int16, Int32, Int32, Int64 |
//! | the same `unsigned` | UInt8, UInt16, UInt32, UInt32, UInt64 |
//! | `decimal(p,s)`, p ≤ 38 | Decimal128(p, s) (p > 38: Float64) |
//! | `float`, `double` | Float32, Float64 |
//! | `char`, `varchar`, `text` kinds, `json`, `enum`, `set` | Utf8 |
//! | `binary`, `varbinary`, `blob` kinds | Binary |
//! | `date` | Date32 |
//! | `datetime(n)` | Timestamp(µs) |
//! | `timestamp(n)` | Timestamp(µs, "UTC") (sessions run with `time_zone = '+00:00'`) |
//! | `time(n)` | Time64(µs) (values outside 00:00–24:00 are errors) |
//! | `year` | Int16 |
//! | `bit(n)` | UInt64 |
//!
//! Zero dates (`0000-00-00`) have no Arrow value: by [`ZeroDates`], an error naming the column
//! (default) or NULL.

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use flotilla_federation::column::{ColumnBuilder, days_from_civil, parse_decimal};
use mysql_async::Value;
use mysql_async::consts::ColumnType;

/// What a zero date (`0000-00-00`, or one with a zero month or day) becomes
/// (`zero_dates = "error" | "null"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ZeroDates {
    /// An error naming the column.
    #[default]
    Error,
    /// NULL.
    Null,
}

/// A column as `information_schema.COLUMNS` describes it.
pub(crate) struct DeclaredColumn<'a> {
    pub data_type: &'a str,
    pub column_type: &'a str,
    pub precision: Option<u64>,
    pub scale: Option<u64>,
}

/// The Arrow type of a declared column and whether it is opaque (compared differently inside
/// the database), or `None` for a type Flotilla cannot read.
pub(crate) fn arrow_type(column: &DeclaredColumn) -> Option<(DataType, bool)> {
    let unsigned = column.column_type.to_ascii_lowercase().contains("unsigned");
    let data_type = column.data_type.to_ascii_lowercase();
    Some(match (data_type.as_str(), unsigned) {
        ("tinyint", false) => (DataType::Int8, false),
        ("tinyint", true) => (DataType::UInt8, false),
        ("smallint", false) => (DataType::Int16, false),
        ("smallint", true) => (DataType::UInt16, false),
        ("mediumint" | "int" | "integer", false) => (DataType::Int32, false),
        ("mediumint" | "int" | "integer", true) => (DataType::UInt32, false),
        ("bigint", false) => (DataType::Int64, false),
        ("bigint", true) => (DataType::UInt64, false),
        ("decimal" | "numeric", _) => {
            let precision = column.precision.unwrap_or(10);
            let scale = column.scale.unwrap_or(0);
            if precision <= 38 {
                (DataType::Decimal128(precision as u8, scale as i8), false)
            } else {
                (DataType::Float64, true)
            }
        }
        ("float", _) => (DataType::Float32, false),
        ("double" | "real", _) => (DataType::Float64, false),
        ("char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext", _) => {
            (DataType::Utf8, false)
        }
        // JSON is compared as JSON, enums by their index, sets as bit masks.
        ("json" | "enum" | "set", _) => (DataType::Utf8, true),
        // BINARY(n) pads with zero bytes.
        ("binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob", _) => {
            (DataType::Binary, true)
        }
        ("date", _) => (DataType::Date32, false),
        ("datetime", _) => (DataType::Timestamp(TimeUnit::Microsecond, None), false),
        ("timestamp", _) => (
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        ("time", _) => (DataType::Time64(TimeUnit::Microsecond), true),
        ("year", _) => (DataType::Int16, false),
        ("bit", _) => (DataType::UInt64, true),
        _ => return None,
    })
}

/// Appends binary-protocol values of one result column to a builder of its Arrow type.
pub(crate) struct Decoder {
    column_type: ColumnType,
    zero_dates: ZeroDates,
    column: ColumnBuilder,
}

impl Decoder {
    pub(crate) fn new(
        column_type: ColumnType,
        target: &DataType,
        zero_dates: ZeroDates,
        capacity: usize,
    ) -> Option<Self> {
        Some(Self {
            column_type,
            zero_dates,
            column: ColumnBuilder::new(target, capacity)?,
        })
    }

    /// Appends one value; the error says what is wrong with it.
    pub(crate) fn append(&mut self, value: Value) -> Result<(), String> {
        let column = &mut self.column;
        match value {
            Value::NULL => {
                column.append_null();
                Ok(())
            }
            Value::Int(v) => column.append_i64(v),
            Value::UInt(v) => column.append_u64(v),
            Value::Float(v) => column.append_f64(f64::from(v)),
            Value::Double(v) => column.append_f64(v),
            Value::Bytes(bytes) => match self.column_type {
                ColumnType::MYSQL_TYPE_NEWDECIMAL | ColumnType::MYSQL_TYPE_DECIMAL => {
                    let text = std::str::from_utf8(&bytes).map_err(|e| e.to_string())?;
                    let (unscaled, scale) =
                        parse_decimal(text).ok_or_else(|| format!("'{text}' is not a number"))?;
                    column.append_decimal(unscaled, scale)
                }
                ColumnType::MYSQL_TYPE_BIT => {
                    if bytes.len() > 8 {
                        return Err("bit value wider than 64 bits".into());
                    }
                    let value = bytes.iter().fold(0u64, |v, b| (v << 8) | u64::from(*b));
                    column.append_u64(value)
                }
                _ if matches!(column.data_type(), DataType::Binary) => column.append_bytes(&bytes),
                _ => match std::str::from_utf8(&bytes) {
                    Ok(text) => column.append_str(text),
                    Err(_) => Err("text that is not valid UTF-8".into()),
                },
            },
            Value::Date(year, month, day, hour, minute, second, micros) => {
                if month == 0 || day == 0 {
                    return match self.zero_dates {
                        ZeroDates::Null => {
                            column.append_null();
                            Ok(())
                        }
                        ZeroDates::Error => Err(format!(
                            "the zero date {year:04}-{month:02}-{day:02} has no Arrow value \
                             (zero_dates = \"null\" reads it as NULL)"
                        )),
                    };
                }
                let days = days_from_civil(i32::from(year), u32::from(month), u32::from(day));
                if matches!(column.data_type(), DataType::Date32) {
                    return column.append_date(days);
                }
                let time = (i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second))
                    * 1_000_000
                    + i64::from(micros);
                column.append_timestamp_micros(i64::from(days) * 86_400_000_000 + time)
            }
            Value::Time(negative, days, hours, minutes, seconds, micros) => {
                let micros = ((i64::from(days) * 24 + i64::from(hours)) * 3600
                    + i64::from(minutes) * 60
                    + i64::from(seconds))
                    * 1_000_000
                    + i64::from(micros);
                column.append_time_micros(if negative { -micros } else { micros })
            }
        }
    }

    pub(crate) fn finish(&mut self) -> datafusion::arrow::array::ArrayRef {
        self.column.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(data_type: &str, column_type: &str) -> Option<(DataType, bool)> {
        arrow_type(&DeclaredColumn {
            data_type,
            column_type,
            precision: Some(15),
            scale: Some(2),
        })
    }

    #[test]
    fn declared_types_map_with_signedness() {
        assert_eq!(declared("int", "int(11)"), Some((DataType::Int32, false)));
        assert_eq!(
            declared("bigint", "bigint(20) unsigned"),
            Some((DataType::UInt64, false))
        );
        assert_eq!(
            declared("decimal", "decimal(15,2)"),
            Some((DataType::Decimal128(15, 2), false))
        );
        assert_eq!(declared("geometry", "geometry"), None);
    }

    #[test]
    fn values_decode_by_target_and_zero_dates_follow_the_setting() {
        let mut d = Decoder::new(
            ColumnType::MYSQL_TYPE_DATE,
            &DataType::Date32,
            ZeroDates::Error,
            2,
        )
        .unwrap();
        d.append(Value::Date(2000, 1, 1, 0, 0, 0, 0)).unwrap();
        let e = d.append(Value::Date(0, 0, 0, 0, 0, 0, 0)).unwrap_err();
        assert!(e.contains("zero date"), "{e}");
        let mut d = Decoder::new(
            ColumnType::MYSQL_TYPE_DATE,
            &DataType::Date32,
            ZeroDates::Null,
            2,
        )
        .unwrap();
        d.append(Value::Date(0, 0, 0, 0, 0, 0, 0)).unwrap();
        assert_eq!(d.finish().null_count(), 1);
        let mut d = Decoder::new(
            ColumnType::MYSQL_TYPE_NEWDECIMAL,
            &DataType::Int64,
            ZeroDates::Error,
            2,
        )
        .unwrap();
        d.append(Value::Bytes(b"42".to_vec())).unwrap();
        assert!(d.append(Value::Bytes(b"4.5".to_vec())).is_err());
    }
}
