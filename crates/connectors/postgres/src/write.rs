//! Writing rows into PostgreSQL: one transaction holding `CREATE TABLE` (for `CREATE TABLE …
//! AS`) and `COPY … FROM STDIN (FORMAT binary)`, with every Arrow batch encoded straight into
//! COPY's binary row format for the column types the server reports.
//!
//! | Arrow | column created as |
//! | --- | --- |
//! | Boolean | `boolean` |
//! | Int8, Int16, UInt8 / Int32, UInt16 / Int64, UInt32 | `smallint` / `integer` / `bigint` |
//! | UInt64 | `numeric(20,0)` |
//! | Float16, Float32 / Float64 | `real` / `double precision` |
//! | Decimal(p, s) | `numeric(p,s)` |
//! | Utf8, LargeUtf8, Utf8View, Null | `text` |
//! | Binary, LargeBinary, BinaryView, FixedSizeBinary | `bytea` |
//! | Date32, Date64 / Time32, Time64 | `date` / `time` |
//! | Timestamp without / with time zone | `timestamp` / `timestamptz` |
//! | Interval | `interval` |
//! | List of the above | an array of it |
//!
//! A field that is not nullable gets `NOT NULL`. Values are cast to the Arrow type that matches
//! the column's wire type (see [`Wire::arrow_type`]), so an `INSERT` may send any type DataFusion
//! can cast; a value the column cannot hold fails the statement and nothing is written.

use crate::dialect::PostgresDialect;
use crate::pool::{Pool, error};
use crate::types::{NumericMapping, Wire};
use bytes::{BufMut, Bytes, BytesMut};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array,
    Float32Array, Float64Array, Int16Array, Int32Array, Int64Array, IntervalMonthDayNanoArray,
    ListArray, StringArray, Time64MicrosecondArray, TimestampMicrosecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::execution::SendableRecordBatchStream;
use flotilla_common::{Error, ErrorKind, Result};
use flotilla_federation::WriteTarget;
use flotilla_federation::write::create_table_sql;
use futures::{SinkExt, StreamExt};
use std::sync::Arc;
use tokio_postgres::types::{Kind, Type};

/// Microseconds from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
const EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;
/// Days from 1970-01-01 to 2000-01-01.
const EPOCH_OFFSET_DAYS: i32 = 10_957;
/// COPY binary's file header: signature, flags, header extension length.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// COPY binary's trailer: a field count of -1.
const TRAILER: &[u8] = &[0xff, 0xff];

/// Writes `data` into `target` in one transaction; returns the rows written.
pub(crate) async fn write(
    pool: &Pool,
    target: &WriteTarget,
    mut data: SendableRecordBatchStream,
) -> Result<u64> {
    let dialect = PostgresDialect;
    let (schema, table) = (target.schema(), target.table());
    let names = target.sql(&dialect);
    let (qualified, column_list) = (names.table, names.columns);

    let mut client = pool.get().await?;
    let transaction = client
        .transaction()
        .await
        .map_err(|e| error(&e, "starting a transaction"))?;
    if let WriteTarget::Create { columns, .. } = target {
        let ddl = create_table_sql(&dialect, &qualified, columns, "PostgreSQL", column_type)?;
        transaction
            .batch_execute(&ddl)
            .await
            .map_err(|e| error(&e, &format!("creating table {schema}.{table}")))?;
    }
    // The server's types for the columns written (domains, enums, arrays resolved).
    let probe = transaction
        .prepare(&format!("SELECT {column_list} FROM {qualified}"))
        .await
        .map_err(|e| error(&e, &format!("describing {schema}.{table}")))?;
    let encoders = probe
        .columns()
        .iter()
        .map(|c| ColumnEncoder::new(c.name(), c.type_()))
        .collect::<Result<Vec<_>>>()?;

    let sink = transaction
        .copy_in::<_, Bytes>(&format!(
            "COPY {qualified} ({column_list}) FROM STDIN (FORMAT binary)"
        ))
        .await
        .map_err(|e| error(&e, &format!("starting COPY into {schema}.{table}")))?;
    let mut sink = std::pin::pin!(sink);
    let copy_failed =
        |e: tokio_postgres::Error| error(&e, &format!("writing into {schema}.{table}"));
    sink.send(Bytes::from_static(HEADER))
        .await
        .map_err(copy_failed)?;
    while let Some(batch) = data.next().await {
        // An error in the rows (a failed cast, a broken source) ends the transaction unwritten.
        let batch = batch.map_err(Error::from)?;
        if batch.num_columns() != encoders.len() {
            return Err(Error::new(
                ErrorKind::Internal,
                format!(
                    "rows to write have {} columns, table {schema}.{table} takes {}",
                    batch.num_columns(),
                    encoders.len()
                ),
            ));
        }
        let mut buffer = BytesMut::with_capacity(batch.get_array_memory_size() + 64);
        encode_batch(&encoders, batch.columns(), &mut buffer)?;
        sink.send(buffer.freeze()).await.map_err(copy_failed)?;
    }
    sink.send(Bytes::from_static(TRAILER))
        .await
        .map_err(copy_failed)?;
    let written = sink.as_mut().finish().await.map_err(copy_failed)?;
    transaction
        .commit()
        .await
        .map_err(|e| error(&e, "committing"))?;
    pool.put(client);
    Ok(written)
}

/// The PostgreSQL column type for values of `data_type`.
fn column_type(data_type: &DataType) -> Option<String> {
    use DataType as D;
    Some(match data_type {
        D::Boolean => "boolean".into(),
        D::Int8 | D::Int16 | D::UInt8 => "smallint".into(),
        D::Int32 | D::UInt16 => "integer".into(),
        D::Int64 | D::UInt32 => "bigint".into(),
        D::UInt64 => "numeric(20,0)".into(),
        D::Float16 | D::Float32 => "real".into(),
        D::Float64 => "double precision".into(),
        D::Decimal32(p, s) | D::Decimal64(p, s) => format!("numeric({p},{s})"),
        D::Decimal128(p, s) | D::Decimal256(p, s) if *s >= 0 => format!("numeric({p},{s})"),
        D::Utf8 | D::LargeUtf8 | D::Utf8View | D::Null => "text".into(),
        D::Binary | D::LargeBinary | D::BinaryView | D::FixedSizeBinary(_) => "bytea".into(),
        D::Date32 | D::Date64 => "date".into(),
        D::Time32(_) | D::Time64(_) => "time".into(),
        D::Timestamp(_, None) => "timestamp".into(),
        D::Timestamp(_, Some(_)) => "timestamptz".into(),
        D::Interval(_) => "interval".into(),
        D::Dictionary(_, value) => return column_type(value),
        D::List(item) | D::LargeList(item) | D::ListView(item) => match item.data_type() {
            D::List(_) | D::LargeList(_) | D::ListView(_) => return None,
            inner => format!("{}[]", column_type(inner)?),
        },
        _ => return None,
    })
}

/// How values of one column are written.
struct ColumnEncoder {
    name: String,
    wire: Wire,
    /// The element type's OID, for arrays.
    element_oid: u32,
    /// What the values are cast to before encoding.
    arrow_type: DataType,
}

impl ColumnEncoder {
    fn new(name: &str, ty: &Type) -> Result<Self> {
        let wire = Wire::of(ty).ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                format!("column '{name}': cannot write values of type {ty}"),
            )
        })?;
        let element_oid = match ty.kind() {
            Kind::Array(element) => element.oid(),
            Kind::Domain(base) => match base.kind() {
                Kind::Array(element) => element.oid(),
                _ => 0,
            },
            _ => 0,
        };
        let arrow_type = encoded_type(&wire);
        Ok(Self {
            name: name.to_string(),
            wire,
            element_oid,
            arrow_type,
        })
    }
}

/// The Arrow type values of `wire` are encoded from.
fn encoded_type(wire: &Wire) -> DataType {
    match wire {
        // Any decimal (or integer) keeps its own scale; see `prepare`.
        Wire::Numeric => DataType::Decimal128(38, 0),
        Wire::Oid => DataType::Int64,
        Wire::Array(element) => {
            DataType::List(Arc::new(Field::new("item", encoded_type(element), true)))
        }
        other => other.arrow_type(None, NumericMapping::default()),
    }
}

/// `column` cast to the type `wire` is encoded from. Decimals keep their precision and scale.
fn prepare(column: &ArrayRef, target: &DataType) -> std::result::Result<ArrayRef, String> {
    let target = match (column.data_type(), target) {
        (DataType::Decimal128(..), DataType::Decimal128(..)) => return Ok(Arc::clone(column)),
        (DataType::Decimal32(p, s) | DataType::Decimal64(p, s), DataType::Decimal128(..)) => {
            DataType::Decimal128(*p, *s)
        }
        (DataType::Decimal256(_, s), DataType::Decimal128(..)) => DataType::Decimal128(38, *s),
        (DataType::Float16 | DataType::Float32 | DataType::Float64, DataType::Decimal128(..)) => {
            DataType::Decimal128(38, 16)
        }
        (_, target) => target.clone(),
    };
    cast(column, &target).map_err(|e| e.to_string())
}

/// Appends the COPY rows of one batch to `out`.
fn encode_batch(
    encoders: &[ColumnEncoder],
    columns: &[ArrayRef],
    out: &mut BytesMut,
) -> Result<()> {
    let prepared = encoders
        .iter()
        .zip(columns)
        .map(|(encoder, column)| {
            let array = prepare(column, &encoder.arrow_type)
                .map_err(|e| Error::invalid(format!("column '{}': {e}", encoder.name)))?;
            Ok(array)
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    let values = encoders
        .iter()
        .zip(&prepared)
        .map(|(encoder, array)| Values::new(&encoder.wire, encoder.element_oid, array))
        .collect::<Vec<_>>();
    let count = i16::try_from(encoders.len())
        .map_err(|_| Error::invalid("a table written to PostgreSQL has at most 1600 columns"))?;
    let rows = columns.first().map_or(0, |c| c.len());
    for row in 0..rows {
        out.put_i16(count);
        for (value, encoder) in values.iter().zip(encoders) {
            value.field(row, out).map_err(|e| {
                Error::invalid(format!("column '{}', value {row}: {e}", encoder.name))
            })?;
        }
    }
    Ok(())
}

/// A column's values, downcast once per batch.
enum Values<'a> {
    Bool(&'a BooleanArray),
    Int2(&'a Int16Array),
    Int4(&'a Int32Array),
    Int8(&'a Int64Array),
    Oid(&'a Int64Array),
    Float4(&'a Float32Array),
    Float8(&'a Float64Array),
    Numeric(&'a Decimal128Array, i8),
    Text(&'a StringArray, TextForm),
    Bytea(&'a BinaryArray),
    Date(&'a Date32Array),
    Time(&'a Time64MicrosecondArray),
    Timestamp(&'a TimestampMicrosecondArray),
    Interval(&'a IntervalMonthDayNanoArray),
    Array(&'a ListArray, Box<Values<'a>>, u32),
}

/// How a text value is laid out for its column type.
#[derive(Clone, Copy)]
enum TextForm {
    Plain,
    /// `jsonb`: a version byte, then the text.
    Jsonb,
    /// `uuid`: 16 bytes parsed from the text.
    Uuid,
    /// `"char"`: one byte.
    Char,
}

impl<'a> Values<'a> {
    /// `array` has the type [`encoded_type`] gives for `wire` (decimals: any scale).
    fn new(wire: &Wire, element_oid: u32, array: &'a ArrayRef) -> Values<'a> {
        Self::of(wire, element_oid, array.as_ref())
    }

    fn of(wire: &Wire, element_oid: u32, array: &'a dyn Array) -> Values<'a> {
        match wire {
            Wire::Bool => Values::Bool(array.as_boolean()),
            Wire::Int2 => Values::Int2(array.as_primitive()),
            Wire::Int4 => Values::Int4(array.as_primitive()),
            Wire::Int8 => Values::Int8(array.as_primitive()),
            Wire::Oid => Values::Oid(array.as_primitive()),
            Wire::Float4 => Values::Float4(array.as_primitive()),
            Wire::Float8 => Values::Float8(array.as_primitive()),
            Wire::Numeric => {
                let scale = match array.data_type() {
                    DataType::Decimal128(_, s) => *s,
                    _ => 0,
                };
                Values::Numeric(array.as_primitive(), scale)
            }
            Wire::Text | Wire::Bpchar => Values::Text(array.as_string(), TextForm::Plain),
            Wire::Jsonb => Values::Text(array.as_string(), TextForm::Jsonb),
            Wire::Uuid => Values::Text(array.as_string(), TextForm::Uuid),
            Wire::Char => Values::Text(array.as_string(), TextForm::Char),
            Wire::Bytea => Values::Bytea(array.as_binary()),
            Wire::Date => Values::Date(array.as_primitive()),
            Wire::Time => Values::Time(array.as_primitive()),
            Wire::Timestamp | Wire::TimestampTz => Values::Timestamp(array.as_primitive()),
            Wire::Interval => Values::Interval(array.as_primitive()),
            Wire::Array(element) => {
                let list = array.as_list::<i32>();
                let items = Values::of(element, 0, list.values().as_ref());
                Values::Array(list, Box::new(items), element_oid)
            }
        }
    }

    fn is_null(&self, row: usize) -> bool {
        match self {
            Values::Bool(a) => a.is_null(row),
            Values::Int2(a) => a.is_null(row),
            Values::Int4(a) => a.is_null(row),
            Values::Int8(a) | Values::Oid(a) => a.is_null(row),
            Values::Float4(a) => a.is_null(row),
            Values::Float8(a) => a.is_null(row),
            Values::Numeric(a, _) => a.is_null(row),
            Values::Text(a, _) => a.is_null(row),
            Values::Bytea(a) => a.is_null(row),
            Values::Date(a) => a.is_null(row),
            Values::Time(a) => a.is_null(row),
            Values::Timestamp(a) => a.is_null(row),
            Values::Interval(a) => a.is_null(row),
            Values::Array(a, _, _) => a.is_null(row),
        }
    }

    /// Appends one field: its length (-1 for NULL) and its bytes.
    fn field(&self, row: usize, out: &mut BytesMut) -> std::result::Result<(), String> {
        if self.is_null(row) {
            out.put_i32(-1);
            return Ok(());
        }
        let at = out.len();
        out.put_i32(0);
        self.value(row, out)?;
        let length = i32::try_from(out.len() - at - 4)
            .map_err(|_| "a value longer than 2 GiB".to_string())?;
        out[at..at + 4].copy_from_slice(&length.to_be_bytes());
        Ok(())
    }

    fn value(&self, row: usize, out: &mut BytesMut) -> std::result::Result<(), String> {
        match self {
            Values::Bool(a) => out.put_u8(u8::from(a.value(row))),
            Values::Int2(a) => out.put_i16(a.value(row)),
            Values::Int4(a) => out.put_i32(a.value(row)),
            Values::Int8(a) => out.put_i64(a.value(row)),
            Values::Oid(a) => {
                let value = a.value(row);
                let oid = u32::try_from(value).map_err(|_| format!("{value} is not an oid"))?;
                out.put_u32(oid);
            }
            Values::Float4(a) => out.put_f32(a.value(row)),
            Values::Float8(a) => out.put_f64(a.value(row)),
            Values::Numeric(a, scale) => numeric(a.value(row), *scale, out)?,
            Values::Text(a, form) => {
                let text = a.value(row);
                match form {
                    TextForm::Plain => out.put_slice(text.as_bytes()),
                    TextForm::Jsonb => {
                        out.put_u8(1);
                        out.put_slice(text.as_bytes());
                    }
                    TextForm::Uuid => out.put_slice(&uuid_bytes(text)?),
                    TextForm::Char => out.put_u8(text.as_bytes().first().copied().unwrap_or(0)),
                }
            }
            Values::Bytea(a) => out.put_slice(a.value(row)),
            Values::Date(a) => out.put_i32(
                a.value(row)
                    .checked_sub(EPOCH_OFFSET_DAYS)
                    .ok_or("date out of range")?,
            ),
            Values::Time(a) => out.put_i64(a.value(row)),
            Values::Timestamp(a) => out.put_i64(
                a.value(row)
                    .checked_sub(EPOCH_OFFSET_MICROS)
                    .ok_or("timestamp out of range")?,
            ),
            Values::Interval(a) => {
                let value = a.value(row);
                if value.nanoseconds % 1_000 != 0 {
                    return Err(format!(
                        "interval with {} ns: PostgreSQL keeps microseconds",
                        value.nanoseconds
                    ));
                }
                out.put_i64(value.nanoseconds / 1_000);
                out.put_i32(value.days);
                out.put_i32(value.months);
            }
            Values::Array(list, items, element_oid) => {
                let offsets = list.value_offsets();
                let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
                let has_null = (start..end).any(|i| items.is_null(i));
                if start == end {
                    out.put_i32(0);
                    out.put_i32(0);
                    out.put_u32(*element_oid);
                    return Ok(());
                }
                out.put_i32(1);
                out.put_i32(i32::from(has_null));
                out.put_u32(*element_oid);
                out.put_i32(i32::try_from(end - start).map_err(|_| "array too long")?);
                out.put_i32(1);
                for i in start..end {
                    items.field(i, out)?;
                }
            }
        }
        Ok(())
    }
}

/// A uuid's 16 bytes from its text (hyphens anywhere, as PostgreSQL accepts; braces too).
fn uuid_bytes(text: &str) -> std::result::Result<[u8; 16], String> {
    let digits: Vec<u8> = text
        .trim_start_matches('{')
        .trim_end_matches('}')
        .bytes()
        .filter(|b| *b != b'-')
        .collect();
    let invalid = || format!("'{text}' is not a uuid");
    if digits.len() != 32 {
        return Err(invalid());
    }
    let mut bytes = [0u8; 16];
    for (i, pair) in digits.chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).map_err(|_| invalid())?;
        bytes[i] = u8::from_str_radix(pair, 16).map_err(|_| invalid())?;
    }
    Ok(bytes)
}

/// A decimal (`unscaled` × 10^-`scale`) in `numeric`'s binary form: digit count, weight of the
/// first digit, sign, display scale, then base-10000 digits. Computed in integers (this runs
/// once per value written).
fn numeric(unscaled: i128, scale: i8, out: &mut BytesMut) -> std::result::Result<(), String> {
    const BASE: u128 = 10_000;
    let negative = unscaled < 0;
    let mut magnitude = unscaled.unsigned_abs();
    // Base-10000 digits, least significant first, and the weight of the most significant.
    let mut digits = [0i16; 24];
    let mut count = 0;
    let mut push = |digit: u128| {
        digits[count] = digit as i16;
        count += 1;
    };
    let fraction_digits = u32::from(scale.max(0).unsigned_abs());
    let mut shift = 0i16;
    if scale < 0 {
        // A whole number times 10^-scale: whole groups of zeros move the weight.
        let zeros = u32::from(scale.unsigned_abs());
        shift = (zeros / 4) as i16;
        magnitude = magnitude
            .checked_mul(10u128.pow(zeros % 4))
            .ok_or_else(|| format!("decimal {unscaled}e{zeros} is too large"))?;
    }
    let unit = 10u128.pow(fraction_digits);
    let (mut whole, mut fraction) = (magnitude / unit, magnitude % unit);
    // Fraction groups: the last one holds the `fraction_digits % 4` lowest digits, padded.
    let fraction_groups = fraction_digits.div_ceil(4);
    let partial = fraction_digits % 4;
    for group in 0..fraction_groups {
        if group == 0 && partial != 0 {
            let low = 10u128.pow(partial);
            push(fraction % low * 10u128.pow(4 - partial));
            fraction /= low;
        } else {
            push(fraction % BASE);
            fraction /= BASE;
        }
    }
    let mut whole_groups = 0i16;
    while whole > 0 {
        push(whole % BASE);
        whole /= BASE;
        whole_groups += 1;
    }
    let digits = &mut digits[..count];
    digits.reverse();
    let mut weight = whole_groups - 1 + shift;
    // Leading zero groups (a number below one) move the weight down; trailing ones are dropped.
    let leading = digits.iter().take_while(|d| **d == 0).count();
    weight -= leading as i16;
    let mut significant = &digits[leading..];
    while let Some((0, rest)) = significant.split_last() {
        significant = rest;
    }
    let display_scale = fraction_digits as u16;
    if significant.is_empty() {
        out.put_i16(0);
        out.put_i16(0);
        out.put_u16(0);
        out.put_u16(display_scale);
        return Ok(());
    }
    out.put_i16(significant.len() as i16);
    out.put_i16(weight);
    out.put_u16(if negative { 0x4000 } else { 0 });
    out.put_u16(display_scale);
    for digit in significant {
        out.put_i16(*digit);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{IntervalUnit, TimeUnit};

    fn encoded(unscaled: i128, scale: i8) -> Vec<i16> {
        let mut out = BytesMut::new();
        numeric(unscaled, scale, &mut out).unwrap();
        out.chunks(2)
            .map(|c| i16::from_be_bytes([c[0], c[1]]))
            .collect()
    }

    #[test]
    fn numerics_encode_as_base_10000_digits() {
        // ndigits, weight, sign, dscale, digits…
        assert_eq!(encoded(0, 2), vec![0, 0, 0, 2]);
        assert_eq!(encoded(12345, 2), vec![2, 0, 0, 2, 123, 4500]);
        assert_eq!(encoded(-12345, 2), vec![2, 0, 0x4000, 2, 123, 4500]);
        assert_eq!(encoded(5, 3), vec![1, -1, 0, 3, 50]);
        assert_eq!(encoded(1, 8), vec![1, -2, 0, 8, 1]);
        assert_eq!(encoded(100_000_000, 0), vec![1, 2, 0, 0, 1]);
        assert_eq!(encoded(12, -3), vec![2, 1, 0, 0, 1, 2000]);
        assert_eq!(encoded(12, -4), vec![1, 1, 0, 0, 12]);
        let max = 10i128.pow(38) - 1;
        assert_eq!(encoded(max, 0)[..4], [10, 9, 0, 0]);
        // 0.999…9 (38 nines): nine full groups and 99 padded to 9900.
        let fraction = encoded(-max, 38);
        assert_eq!(fraction[..4], [10, -1, 0x4000, 38]);
        assert_eq!(fraction[4..13], [9999; 9]);
        assert_eq!(fraction[13], 9900);
        // 1234567.89 with scale 10 drops the trailing zero group.
        assert_eq!(
            encoded(12_345_678_900_000_000, 10),
            vec![3, 1, 0, 10, 123, 4567, 8900]
        );
    }

    #[test]
    fn uuids_parse_with_or_without_hyphens() {
        let bytes = uuid_bytes("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").unwrap();
        assert_eq!(bytes[0], 0xa0);
        assert_eq!(bytes[15], 0x11);
        assert_eq!(
            uuid_bytes("{a0eebc999c0b4ef8bb6d6bb9bd380a11}").unwrap(),
            bytes
        );
        assert!(uuid_bytes("not-a-uuid").is_err());
    }

    #[test]
    fn created_column_types_follow_arrow_types() {
        assert_eq!(column_type(&DataType::UInt64).unwrap(), "numeric(20,0)");
        assert_eq!(
            column_type(&DataType::Timestamp(
                TimeUnit::Nanosecond,
                Some("UTC".into())
            ))
            .unwrap(),
            "timestamptz"
        );
        let list = DataType::List(Arc::new(Field::new("item", DataType::Int32, true)));
        assert_eq!(column_type(&list).unwrap(), "integer[]");
        assert_eq!(
            column_type(&DataType::Interval(IntervalUnit::MonthDayNano)).unwrap(),
            "interval"
        );
        assert!(column_type(&DataType::Duration(TimeUnit::Second)).is_none());
    }
}
