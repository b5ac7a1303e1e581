//! PostgreSQL types: what Arrow type a column gets, and decoding binary-protocol values into
//! Arrow builders.
//!
//! | PostgreSQL | Arrow |
//! | --- | --- |
//! | `boolean` | Boolean |
//! | `smallint`, `integer`, `bigint`, `oid` | Int16, Int32, Int64, Int64 |
//! | `real`, `double precision` | Float32, Float64 |
//! | `numeric(p,s)`, p ≤ 38 | Decimal128(p, s) |
//! | `numeric` without precision (or p > 38) | [`NumericMapping`]: Decimal128(38, 10) by default |
//! | `text`, `varchar`, `char(n)` (trailing blanks removed, as PostgreSQL's `::text` does), `name`, enums | Utf8 |
//! | `json`, `jsonb` | Utf8 (the JSON text) |
//! | `uuid` | Utf8 (`8-4-4-4-12` hex) |
//! | `bytea` | Binary |
//! | `date` | Date32 |
//! | `time` | Time64(µs) |
//! | `timestamp` | Timestamp(µs) |
//! | `timestamptz` | Timestamp(µs, "UTC") |
//! | `interval` | Interval(MonthDayNano) |
//! | one-dimensional arrays of the above | List |
//! | domains | as their base type |
//!
//! The decoder turns a value of a wire type into the Arrow type the plan asks for, converting
//! where the meaning is kept (an `integer` into Int64, a `numeric` sum into Int64 when it is whole,
//! a `numeric` average into Float64 or a decimal with rounding); anything else is an error that
//! names the column.

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, Field, IntervalUnit, TimeUnit};
use flotilla_federation::column::{ColumnBuilder, parse_decimal};
use std::sync::Arc;
use tokio_postgres::types::{FromSql, Kind, Type};

/// Microseconds from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
const EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;
/// Days from 1970-01-01 to 2000-01-01.
const EPOCH_OFFSET_DAYS: i32 = 10_957;

/// How values arrive on the wire, by the column's PostgreSQL type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Wire {
    Bool,
    Int2,
    Int4,
    Int8,
    Oid,
    Float4,
    Float8,
    Numeric,
    /// UTF-8 text: text, varchar, name, enums, json.
    Text,
    /// `char(n)`: text padded with blanks.
    Bpchar,
    /// `"char"`: one byte.
    Char,
    Jsonb,
    Uuid,
    Bytea,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Interval,
    Array(Box<Wire>),
}

impl Wire {
    /// The wire form of `ty`, or `None` for a type Flotilla cannot read.
    pub(crate) fn of(ty: &Type) -> Option<Wire> {
        match ty.kind() {
            Kind::Enum(_) => return Some(Wire::Text),
            Kind::Domain(base) => return Wire::of(base),
            Kind::Array(element) => {
                return match Wire::of(element)? {
                    Wire::Array(_) => None,
                    element => Some(Wire::Array(Box::new(element))),
                };
            }
            Kind::Simple => {}
            _ => return None,
        }
        Some(match *ty {
            Type::BOOL => Wire::Bool,
            Type::INT2 => Wire::Int2,
            Type::INT4 => Wire::Int4,
            Type::INT8 => Wire::Int8,
            Type::OID => Wire::Oid,
            Type::FLOAT4 => Wire::Float4,
            Type::FLOAT8 => Wire::Float8,
            Type::NUMERIC => Wire::Numeric,
            Type::TEXT | Type::VARCHAR | Type::NAME | Type::JSON | Type::UNKNOWN => Wire::Text,
            Type::BPCHAR => Wire::Bpchar,
            Type::CHAR => Wire::Char,
            Type::JSONB => Wire::Jsonb,
            Type::UUID => Wire::Uuid,
            Type::BYTEA => Wire::Bytea,
            Type::DATE => Wire::Date,
            Type::TIME => Wire::Time,
            Type::TIMESTAMP => Wire::Timestamp,
            Type::TIMESTAMPTZ => Wire::TimestampTz,
            Type::INTERVAL => Wire::Interval,
            _ => return None,
        })
    }

    /// The Arrow type of a column of this wire type; `numeric` gets `precision_scale` (from the
    /// column's type modifier) or the configured mapping.
    pub(crate) fn arrow_type(
        &self,
        precision_scale: Option<(u8, i8)>,
        numeric: NumericMapping,
    ) -> DataType {
        match self {
            Wire::Bool => DataType::Boolean,
            Wire::Int2 => DataType::Int16,
            Wire::Int4 => DataType::Int32,
            Wire::Int8 | Wire::Oid => DataType::Int64,
            Wire::Float4 => DataType::Float32,
            Wire::Float8 => DataType::Float64,
            Wire::Numeric => match precision_scale {
                Some((p, s)) if (1..=38).contains(&p) => DataType::Decimal128(p, s),
                _ => numeric.data_type(),
            },
            Wire::Text | Wire::Bpchar | Wire::Char | Wire::Jsonb | Wire::Uuid => DataType::Utf8,
            Wire::Bytea => DataType::Binary,
            Wire::Date => DataType::Date32,
            Wire::Time => DataType::Time64(TimeUnit::Microsecond),
            Wire::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Wire::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Wire::Interval => DataType::Interval(IntervalUnit::MonthDayNano),
            Wire::Array(element) => DataType::List(Arc::new(Field::new(
                "item",
                element.arrow_type(None, numeric),
                true,
            ))),
        }
    }

    /// Whether PostgreSQL compares values of this type differently from how DataFusion compares
    /// the decoded values (so no filter, key or function over it is sent).
    pub(crate) fn is_opaque(&self) -> bool {
        matches!(
            self,
            // json: text vs jsonb equality; uuid: no text comparison; interval: '1 month' =
            // '30 days' in PostgreSQL; arrays: element-wise rules.
            Wire::Jsonb | Wire::Uuid | Wire::Interval | Wire::Array(_) | Wire::Char
        )
    }
}

/// The Arrow type of `numeric` columns without a precision of at most 38 digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumericMapping {
    /// Decimal128 with this precision and scale; a value that does not fit is an error.
    Decimal(u8, i8),
    /// Float64 (approximate).
    Float,
}

impl Default for NumericMapping {
    fn default() -> Self {
        NumericMapping::Decimal(38, 10)
    }
}

impl std::str::FromStr for NumericMapping {
    type Err = String;

    /// `float` or `decimal(P,S)` with P ≤ 38 (`numeric = "…"` in flotilla.toml).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parsed = || {
            let text = text.trim().to_ascii_lowercase();
            if text == "float" {
                return Some(NumericMapping::Float);
            }
            let inner = text.strip_prefix("decimal(")?.strip_suffix(')')?;
            let (p, s) = inner.split_once(',')?;
            let (p, s): (u8, i8) = (p.trim().parse().ok()?, s.trim().parse().ok()?);
            ((1..=38).contains(&p) && s >= 0 && s as u8 <= p)
                .then_some(NumericMapping::Decimal(p, s))
        };
        parsed().ok_or_else(|| {
            format!("expected \"float\" or \"decimal(P,S)\" with P ≤ 38, got '{text}'")
        })
    }
}

impl<'de> serde::Deserialize<'de> for NumericMapping {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl NumericMapping {
    fn data_type(self) -> DataType {
        match self {
            NumericMapping::Decimal(p, s) => DataType::Decimal128(p, s),
            NumericMapping::Float => DataType::Float64,
        }
    }
}

/// Precision and scale from a `numeric` column's type modifier (`atttypmod`), if it has them.
pub(crate) fn numeric_modifier(typmod: i32) -> Option<(u8, i8)> {
    if typmod < 4 {
        return None;
    }
    let packed = typmod - 4;
    let precision = (packed >> 16) & 0xffff;
    // PostgreSQL 15 stores the scale as an 11-bit signed number.
    let scale = ((packed & 0x7ff) ^ 1024) - 1024;
    Some((u8::try_from(precision).ok()?, i8::try_from(scale).ok()?))
}

/// A value as the server sent it (binary format), whatever its type.
pub(crate) struct Raw<'a>(pub(crate) &'a [u8]);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Appends values of one wire type to a builder of one Arrow type.
pub(crate) struct Decoder {
    wire: Wire,
    column: ColumnBuilder,
}

impl Decoder {
    /// A decoder from `wire` into `target`, or `None` when there is no faithful conversion.
    pub(crate) fn new(wire: &Wire, target: &DataType, capacity: usize) -> Option<Decoder> {
        if !compatible(wire, target) {
            return None;
        }
        Some(Decoder {
            wire: wire.clone(),
            column: ColumnBuilder::new(target, capacity)?,
        })
    }

    /// Appends one value (`None` is SQL NULL). The error says what is wrong with the value.
    pub(crate) fn append(&mut self, raw: Option<&[u8]>) -> Result<(), String> {
        append(&self.wire, &mut self.column, raw)
    }

    /// The values appended since the last call, as an array.
    pub(crate) fn finish(&mut self) -> ArrayRef {
        self.column.finish()
    }
}

/// Whether values of `wire` keep their meaning as `target`.
fn compatible(wire: &Wire, target: &DataType) -> bool {
    use Wire as W;
    match target {
        DataType::Boolean => *wire == W::Bool,
        DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::Decimal128(..) => {
            matches!(wire, W::Int2 | W::Int4 | W::Int8 | W::Oid | W::Numeric)
        }
        DataType::Float32 | DataType::Float64 => matches!(
            wire,
            W::Int2 | W::Int4 | W::Int8 | W::Oid | W::Numeric | W::Float4 | W::Float8
        ),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => matches!(
            wire,
            W::Text | W::Bpchar | W::Char | W::Jsonb | W::Uuid | W::Numeric
        ),
        DataType::Binary => *wire == W::Bytea,
        DataType::Date32 => *wire == W::Date,
        DataType::Time64(TimeUnit::Microsecond) => *wire == W::Time,
        // A timestamptz is an instant: it needs a zone; a timestamp is wall time.
        DataType::Timestamp(_, tz) => match wire {
            W::TimestampTz => tz.is_some(),
            W::Timestamp | W::Date => tz.is_none(),
            _ => false,
        },
        DataType::Interval(IntervalUnit::MonthDayNano) => *wire == W::Interval,
        DataType::List(field) => match wire {
            W::Array(element) => compatible(element, field.data_type()),
            _ => false,
        },
        _ => false,
    }
}

/// Decodes one binary-format value of `wire` into `column`.
fn append(wire: &Wire, column: &mut ColumnBuilder, raw: Option<&[u8]>) -> Result<(), String> {
    let Some(raw) = raw else {
        column.append_null();
        return Ok(());
    };
    match wire {
        Wire::Bool => column.append_bool(fixed::<1>(raw)?[0] != 0),
        Wire::Int2 => column.append_i64(i64::from(i16::from_be_bytes(fixed(raw)?))),
        Wire::Int4 => column.append_i64(i64::from(i32::from_be_bytes(fixed(raw)?))),
        Wire::Int8 => column.append_i64(i64::from_be_bytes(fixed(raw)?)),
        Wire::Oid => column.append_i64(i64::from(u32::from_be_bytes(fixed(raw)?))),
        Wire::Float4 => column.append_f64(f64::from(f32::from_be_bytes(fixed(raw)?))),
        Wire::Float8 => column.append_f64(f64::from_be_bytes(fixed(raw)?)),
        Wire::Numeric => match column.decimal_scale() {
            // Round once, straight to the column's scale.
            Some(scale) => column.append_decimal(NumericParts::parse(raw)?.scaled(scale)?, scale),
            None => {
                let text = numeric_text(raw)?;
                let (unscaled, scale) =
                    parse_decimal(&text).ok_or_else(|| format!("{text} is not a number"))?;
                column.append_decimal(unscaled, scale)
            }
        },
        Wire::Text | Wire::Bpchar | Wire::Char | Wire::Jsonb | Wire::Uuid => {
            column.append_str(&text(wire, raw)?)
        }
        Wire::Bytea => column.append_bytes(raw),
        Wire::Date => {
            let days = i32::from_be_bytes(fixed(raw)?);
            if days == i32::MAX || days == i32::MIN {
                return Err("an infinite date has no Arrow value".into());
            }
            column.append_date(
                days.checked_add(EPOCH_OFFSET_DAYS)
                    .ok_or("date out of range")?,
            )
        }
        Wire::Time => column.append_time_micros(i64::from_be_bytes(fixed(raw)?)),
        Wire::Timestamp | Wire::TimestampTz => {
            let micros = i64::from_be_bytes(fixed(raw)?);
            if micros == i64::MAX || micros == i64::MIN {
                return Err("an infinite timestamp has no Arrow value".into());
            }
            column.append_timestamp_micros(
                micros
                    .checked_add(EPOCH_OFFSET_MICROS)
                    .ok_or("timestamp out of range")?,
            )
        }
        Wire::Interval => {
            let bytes: [u8; 16] = fixed(raw)?;
            let micros = i64::from_be_bytes(bytes[0..8].try_into().unwrap_or_default());
            let days = i32::from_be_bytes(bytes[8..12].try_into().unwrap_or_default());
            let months = i32::from_be_bytes(bytes[12..16].try_into().unwrap_or_default());
            column.append_interval(months, days, micros)
        }
        Wire::Array(element) => {
            let items = column
                .list_items()
                .ok_or("an array value for a column that is not a list")?;
            let count = array_elements(raw, |value| append(element, items, value))?;
            column.end_list(count)
        }
    }
}

fn fixed<const N: usize>(raw: &[u8]) -> Result<[u8; N], String> {
    raw.try_into()
        .map_err(|_| format!("expected {N} bytes, got {}", raw.len()))
}

fn text<'a>(wire: &Wire, raw: &'a [u8]) -> Result<std::borrow::Cow<'a, str>, String> {
    let utf8 = |bytes: &'a [u8]| std::str::from_utf8(bytes).map_err(|e| e.to_string());
    Ok(match wire {
        Wire::Bpchar => utf8(raw)?.trim_end_matches(' ').into(),
        Wire::Jsonb => match raw.split_first() {
            Some((1, json)) => utf8(json)?.into(),
            _ => return Err("unknown jsonb version".into()),
        },
        Wire::Uuid => {
            let bytes: [u8; 16] = fixed(raw)?;
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            format!(
                "{}-{}-{}-{}-{}",
                &hex[0..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..32]
            )
            .into()
        }
        Wire::Char => String::from_utf8_lossy(raw).into_owned().into(),
        Wire::Numeric => numeric_text(raw)?.into(),
        _ => utf8(raw)?.into(),
    })
}

/// Calls `element` for each element of a one-dimensional array value; returns the count.
fn array_elements(
    raw: &[u8],
    mut element: impl FnMut(Option<&[u8]>) -> Result<(), String>,
) -> Result<usize, String> {
    let mut reader = Reader(raw);
    let dimensions = reader.i32()?;
    let _has_nulls = reader.i32()?;
    let _element_oid = reader.i32()?;
    let count = match dimensions {
        0 => 0,
        1 => {
            let length = reader.i32()?;
            let _lower_bound = reader.i32()?;
            usize::try_from(length).map_err(|_| "negative array length")?
        }
        n => return Err(format!("{n}-dimensional arrays are not supported")),
    };
    for _ in 0..count {
        let length = reader.i32()?;
        if length < 0 {
            element(None)?;
        } else {
            element(Some(reader.take(length as usize)?))?;
        }
    }
    Ok(count)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("value truncated".into());
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(fixed(self.take(4)?)?))
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_be_bytes(fixed(self.take(2)?)?))
    }
}

/// A `numeric` value as sent: base-10000 digits (borrowed, big-endian u16 each), the weight of
/// the first, sign, display scale. Parsed per value, so it allocates nothing.
struct NumericParts<'a> {
    negative: bool,
    weight: i32,
    display_scale: u16,
    digit_bytes: &'a [u8],
}

const NUMERIC_NEGATIVE: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PLUS_INFINITY: u16 = 0xD000;
const NUMERIC_MINUS_INFINITY: u16 = 0xF000;

impl<'a> NumericParts<'a> {
    fn parse(raw: &'a [u8]) -> Result<Self, String> {
        let mut reader = Reader(raw);
        let count = reader.u16()?;
        let weight = i32::from(reader.u16()? as i16);
        let sign = reader.u16()?;
        let display_scale = reader.u16()?;
        match sign {
            NUMERIC_NAN => return Err("NaN has no decimal value".into()),
            NUMERIC_PLUS_INFINITY | NUMERIC_MINUS_INFINITY => {
                return Err("infinity has no decimal value".into());
            }
            _ => {}
        }
        let digit_bytes = reader.take(2 * usize::from(count))?;
        Ok(NumericParts {
            negative: sign == NUMERIC_NEGATIVE,
            weight,
            display_scale,
            digit_bytes,
        })
    }

    /// The base-10000 digits, most significant first.
    fn digits(&self) -> impl ExactSizeIterator<Item = u16> + '_ {
        self.digit_bytes
            .chunks_exact(2)
            .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
    }

    /// The value times 10^`scale`, rounded half away from zero. Only the digits down to the
    /// rounding digit are read, so a value with more digits than 38 still converts when its
    /// rounded value fits.
    fn scaled(&self, scale: i8) -> Result<i128, String> {
        let scale = i32::from(scale);
        let overflow = || "numeric out of range".to_string();
        let mut mantissa: i128 = 0;
        // The base-10 exponent of the last digit taken into the mantissa.
        let mut last_exponent = None;
        let mut round_up = false;
        'groups: for (i, group) in self.digits().enumerate() {
            let group_exponent = 4 * (self.weight - i as i32);
            for k in 0..4 {
                let exponent = group_exponent + 3 - k;
                let digit = i128::from(group / 10u16.pow(3 - k as u32) % 10);
                if exponent >= -scale {
                    mantissa = mantissa
                        .checked_mul(10)
                        .and_then(|m| m.checked_add(digit))
                        .ok_or_else(overflow)?;
                    last_exponent = Some(exponent);
                } else {
                    round_up = exponent == -scale - 1 && digit >= 5;
                    break 'groups;
                }
            }
        }
        if let Some(exponent) = last_exponent {
            // Trailing zero groups are not sent: scale up to the wanted scale.
            let shift = u32::try_from(exponent + scale).map_err(|_| overflow())?;
            mantissa = 10i128
                .checked_pow(shift)
                .and_then(|p| mantissa.checked_mul(p))
                .ok_or_else(overflow)?;
        }
        if round_up {
            mantissa = mantissa.checked_add(1).ok_or_else(overflow)?;
        }
        Ok(if self.negative { -mantissa } else { mantissa })
    }
}

/// The value of a `numeric` as decimal text, e.g. `-12.50`.
fn numeric_text(raw: &[u8]) -> Result<String, String> {
    let parts = NumericParts::parse(raw)?;
    let mut integer = String::new();
    let mut fraction = String::new();
    for (i, digit) in parts.digits().enumerate() {
        let position = parts.weight - i as i32;
        if position >= 0 {
            integer.push_str(&format!("{digit:04}"));
        } else {
            // Leading zero groups right of the point that were stripped.
            while (fraction.len() as i32) < 4 * (-position - 1) {
                fraction.push('0');
            }
            fraction.push_str(&format!("{digit:04}"));
        }
    }
    // Zero groups between the last digit and the point that were stripped.
    if parts.weight >= 0 {
        let groups_written = parts.digits().len().min(parts.weight as usize + 1);
        for _ in groups_written..=(parts.weight as usize) {
            integer.push_str("0000");
        }
    }
    let integer = integer.trim_start_matches('0');
    let mut text = String::new();
    if parts.negative {
        text.push('-');
    }
    text.push_str(if integer.is_empty() { "0" } else { integer });
    let scale = usize::from(parts.display_scale);
    if scale > 0 {
        while fraction.len() < scale {
            fraction.push('0');
        }
        text.push('.');
        text.push_str(&fraction[..scale]);
    }
    Ok(text)
}

/// `numeric` into a decimal with `scale`.
#[cfg(test)]
fn numeric_scaled(raw: &[u8], scale: i8) -> Result<i128, String> {
    NumericParts::parse(raw)?.scaled(scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, ListArray};

    /// The binary form of a numeric, as PostgreSQL's `numeric_send` writes it.
    fn numeric(negative: bool, weight: i16, scale: u16, digits: &[u16]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend((digits.len() as u16).to_be_bytes());
        out.extend(weight.to_be_bytes());
        out.extend((if negative { NUMERIC_NEGATIVE } else { 0 }).to_be_bytes());
        out.extend(scale.to_be_bytes());
        for d in digits {
            out.extend(d.to_be_bytes());
        }
        out
    }

    #[test]
    fn numerics_convert_exactly_and_round_half_away_from_zero() {
        // 12345.6789
        let v = numeric(false, 1, 4, &[1, 2345, 6789]);
        assert_eq!(numeric_text(&v).unwrap(), "12345.6789");
        assert_eq!(numeric_scaled(&v, 4).unwrap(), 123_456_789);
        assert_eq!(numeric_scaled(&v, 2).unwrap(), 1_234_568);
        assert_eq!(numeric_scaled(&v, 0).unwrap(), 12_346);
        // -0.005 → -0.01 at scale 2
        let v = numeric(true, -1, 3, &[50]);
        assert_eq!(numeric_text(&v).unwrap(), "-0.005");
        assert_eq!(numeric_scaled(&v, 2).unwrap(), -1);
        // 40 digits, rounded to 38
        let v = numeric(
            false,
            6,
            12,
            &[9999, 9999, 9999, 9999, 9999, 9999, 9999, 9999, 9999, 9949],
        );
        assert_eq!(
            numeric_scaled(&v, 10).unwrap(),
            99_999_999_999_999_999_999_999_999_999_999_999_999_i128
        );
        assert!(numeric_scaled(&v, 11).is_err());
        // 1e8 (trailing zero groups stripped)
        let v = numeric(false, 2, 0, &[1]);
        assert_eq!(numeric_text(&v).unwrap(), "100000000");
        let mut d = Decoder::new(&Wire::Numeric, &DataType::Int64, 2).unwrap();
        d.append(Some(&v)).unwrap();
        assert!(d.append(Some(&numeric(false, 0, 1, &[1, 5000]))).is_err());
        // 0.00000001
        let v = numeric(false, -2, 8, &[1]);
        assert_eq!(numeric_text(&v).unwrap(), "0.00000001");
        assert_eq!(numeric_scaled(&v, 8).unwrap(), 1);
        assert_eq!(numeric_scaled(&v, 2).unwrap(), 0);
        // zero
        assert_eq!(numeric_text(&numeric(false, 0, 2, &[])).unwrap(), "0.00");
    }

    #[test]
    fn decimals_that_do_not_fit_are_errors() {
        let mut d = Decoder::new(&Wire::Numeric, &DataType::Decimal128(5, 2), 4).unwrap();
        assert!(d.append(Some(&numeric(false, 0, 2, &[999, 9900]))).is_ok());
        let e = d.append(Some(&numeric(false, 1, 0, &[1, 0]))).unwrap_err();
        assert!(e.contains("10000.00 does not fit decimal(5,2)"), "{e}");
    }

    #[test]
    fn arrays_become_lists_with_nulls() {
        let mut raw = Vec::new();
        for v in [1i32, 0, 23, 2, 1] {
            raw.extend(v.to_be_bytes()); // 1 dim, has nulls, oid 23, length 2, lower bound 1
        }
        raw.extend(8i32.to_be_bytes());
        raw.extend(7i64.to_be_bytes());
        raw.extend((-1i32).to_be_bytes());
        let target = DataType::List(Arc::new(Field::new("item", DataType::Int64, true)));
        let mut d = Decoder::new(&Wire::Array(Box::new(Wire::Int8)), &target, 2).unwrap();
        d.append(Some(&raw)).unwrap();
        d.append(None).unwrap();
        let array = d.finish();
        assert_eq!(array.len(), 2);
        let list = array.as_any().downcast_ref::<ListArray>().unwrap();
        assert_eq!(list.value_length(0), 2);
        assert!(list.is_null(1));
    }

    #[test]
    fn numeric_modifiers_give_precision_and_scale() {
        // numeric(15,2): ((15 << 16) | 2) + 4
        assert_eq!(numeric_modifier((15 << 16 | 2) + 4), Some((15, 2)));
        assert_eq!(numeric_modifier(-1), None);
    }
}
