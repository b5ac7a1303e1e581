//! [`ColumnBuilder`]: values decoded by a connector, appended to an Arrow builder of the type the
//! plan asks for.
//!
//! A connector reads a value in its database's own form and hands it over as one of a few plain
//! kinds (an integer, a decimal with its scale, text, a date as days since 1970 …); the builder
//! converts it to the column's Arrow type where the meaning is kept — an integer into a decimal
//! or a float, a whole decimal into an integer, a date into a timestamp — and refuses anything
//! else with a message that says what does not fit. Connectors add the column name.

use datafusion::arrow::array::builder::NullBufferBuilder;
use datafusion::arrow::array::{
    Array, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Float32Builder, Float64Builder, Int8Builder, Int16Builder, Int32Builder, Int64Builder,
    IntervalMonthDayNanoBuilder, LargeStringBuilder, ListArray, StringBuilder, StringViewBuilder,
    Time64MicrosecondBuilder, TimestampMicrosecondArray, TimestampMillisecondArray,
    TimestampNanosecondArray, TimestampSecondArray, UInt8Builder, UInt16Builder, UInt32Builder,
    UInt64Builder,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{
    DataType, FieldRef, IntervalMonthDayNano, IntervalUnit, TimeUnit,
};
use std::sync::Arc;

/// Why a value could not be appended.
pub type AppendResult = Result<(), String>;

/// A builder for one result column.
pub struct ColumnBuilder {
    data_type: DataType,
    builder: Builder,
}

enum Builder {
    Bool(BooleanBuilder),
    Int8(Int8Builder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    UInt8(UInt8Builder),
    UInt16(UInt16Builder),
    UInt32(UInt32Builder),
    UInt64(UInt64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Decimal {
        builder: Decimal128Builder,
        precision: u8,
        scale: i8,
        /// 10^precision: every value's magnitude must stay below it.
        limit: u128,
    },
    Utf8(StringBuilder),
    LargeUtf8(LargeStringBuilder),
    Utf8View(StringViewBuilder),
    Binary(BinaryBuilder),
    Date32(Date32Builder),
    Time64(Time64MicrosecondBuilder),
    /// Timestamps kept as integers in their unit, typed when finished.
    Timestamp(Int64Builder, TimeUnit, Option<Arc<str>>),
    Interval(IntervalMonthDayNanoBuilder),
    List {
        field: FieldRef,
        offsets: Vec<i32>,
        nulls: NullBufferBuilder,
        items: Box<ColumnBuilder>,
    },
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

impl ColumnBuilder {
    /// A builder for `target`, or `None` for a type no connector decodes into.
    pub fn new(target: &DataType, capacity: usize) -> Option<Self> {
        let builder = match target {
            DataType::Boolean => Builder::Bool(BooleanBuilder::with_capacity(capacity)),
            DataType::Int8 => Builder::Int8(Int8Builder::with_capacity(capacity)),
            DataType::Int16 => Builder::Int16(Int16Builder::with_capacity(capacity)),
            DataType::Int32 => Builder::Int32(Int32Builder::with_capacity(capacity)),
            DataType::Int64 => Builder::Int64(Int64Builder::with_capacity(capacity)),
            DataType::UInt8 => Builder::UInt8(UInt8Builder::with_capacity(capacity)),
            DataType::UInt16 => Builder::UInt16(UInt16Builder::with_capacity(capacity)),
            DataType::UInt32 => Builder::UInt32(UInt32Builder::with_capacity(capacity)),
            DataType::UInt64 => Builder::UInt64(UInt64Builder::with_capacity(capacity)),
            DataType::Float32 => Builder::Float32(Float32Builder::with_capacity(capacity)),
            DataType::Float64 => Builder::Float64(Float64Builder::with_capacity(capacity)),
            DataType::Decimal128(p, s) => Builder::Decimal {
                builder: Decimal128Builder::with_capacity(capacity)
                    .with_precision_and_scale(*p, *s)
                    .ok()?,
                precision: *p,
                scale: *s,
                limit: 10u128.checked_pow(u32::from(*p))?,
            },
            DataType::Utf8 => Builder::Utf8(StringBuilder::with_capacity(capacity, 0)),
            DataType::LargeUtf8 => {
                Builder::LargeUtf8(LargeStringBuilder::with_capacity(capacity, 0))
            }
            DataType::Utf8View => Builder::Utf8View(StringViewBuilder::with_capacity(capacity)),
            DataType::Binary => Builder::Binary(BinaryBuilder::with_capacity(capacity, 0)),
            DataType::Date32 => Builder::Date32(Date32Builder::with_capacity(capacity)),
            DataType::Time64(TimeUnit::Microsecond) => {
                Builder::Time64(Time64MicrosecondBuilder::with_capacity(capacity))
            }
            DataType::Timestamp(unit, tz) => {
                Builder::Timestamp(Int64Builder::with_capacity(capacity), *unit, tz.clone())
            }
            DataType::Interval(IntervalUnit::MonthDayNano) => {
                Builder::Interval(IntervalMonthDayNanoBuilder::with_capacity(capacity))
            }
            DataType::List(field) => Builder::List {
                field: Arc::clone(field),
                offsets: vec![0],
                nulls: NullBufferBuilder::new(capacity),
                items: Box::new(ColumnBuilder::new(field.data_type(), capacity)?),
            },
            _ => return None,
        };
        Some(Self {
            data_type: target.clone(),
            builder,
        })
    }

    /// The Arrow type of the column.
    pub fn data_type(&self) -> &DataType {
        &self.data_type
    }

    /// The scale of the decimal column this builder builds, if it builds one (so a connector can
    /// round its decimals once, to the right scale).
    pub fn decimal_scale(&self) -> Option<i8> {
        match &self.builder {
            Builder::Decimal { scale, .. } => Some(*scale),
            _ => None,
        }
    }

    /// The builder of a list column's items.
    pub fn list_items(&mut self) -> Option<&mut ColumnBuilder> {
        match &mut self.builder {
            Builder::List { items, .. } => Some(items),
            _ => None,
        }
    }

    pub fn append_null(&mut self) {
        match &mut self.builder {
            Builder::Bool(b) => b.append_null(),
            Builder::Int8(b) => b.append_null(),
            Builder::Int16(b) => b.append_null(),
            Builder::Int32(b) => b.append_null(),
            Builder::Int64(b) => b.append_null(),
            Builder::UInt8(b) => b.append_null(),
            Builder::UInt16(b) => b.append_null(),
            Builder::UInt32(b) => b.append_null(),
            Builder::UInt64(b) => b.append_null(),
            Builder::Float32(b) => b.append_null(),
            Builder::Float64(b) => b.append_null(),
            Builder::Decimal { builder, .. } => builder.append_null(),
            Builder::Utf8(b) => b.append_null(),
            Builder::LargeUtf8(b) => b.append_null(),
            Builder::Utf8View(b) => b.append_null(),
            Builder::Binary(b) => b.append_null(),
            Builder::Date32(b) => b.append_null(),
            Builder::Time64(b) => b.append_null(),
            Builder::Timestamp(b, ..) => b.append_null(),
            Builder::Interval(b) => b.append_null(),
            Builder::List { offsets, nulls, .. } => {
                offsets.push(offsets.last().copied().unwrap_or(0));
                nulls.append_null();
            }
        }
    }

    pub fn append_bool(&mut self, value: bool) -> AppendResult {
        match &mut self.builder {
            Builder::Bool(b) => b.append_value(value),
            _ => return self.append_i64(i64::from(value)),
        }
        Ok(())
    }

    /// An integer, into any integer (range-checked), decimal, float or boolean (0/1) column.
    pub fn append_i64(&mut self, value: i64) -> AppendResult {
        self.append_i128(i128::from(value))
    }

    /// An unsigned integer, as [`ColumnBuilder::append_i64`].
    pub fn append_u64(&mut self, value: u64) -> AppendResult {
        self.append_i128(i128::from(value))
    }

    fn append_i128(&mut self, value: i128) -> AppendResult {
        fn fit<T: TryFrom<i128>>(value: i128) -> Result<T, String> {
            T::try_from(value).map_err(|_| format!("{value} is out of range"))
        }
        match &mut self.builder {
            Builder::Int8(b) => b.append_value(fit(value)?),
            Builder::Int16(b) => b.append_value(fit(value)?),
            Builder::Int32(b) => b.append_value(fit(value)?),
            Builder::Int64(b) => b.append_value(fit(value)?),
            Builder::UInt8(b) => b.append_value(fit(value)?),
            Builder::UInt16(b) => b.append_value(fit(value)?),
            Builder::UInt32(b) => b.append_value(fit(value)?),
            Builder::UInt64(b) => b.append_value(fit(value)?),
            Builder::Float32(b) => b.append_value(value as f32),
            Builder::Float64(b) => b.append_value(value as f64),
            Builder::Bool(b) => match value {
                0 => b.append_value(false),
                1 => b.append_value(true),
                _ => return Err(format!("{value} is not a boolean")),
            },
            Builder::Decimal { .. } => return self.append_decimal(value, 0),
            _ => return Err(format!("the integer {value} has no {} form", self.kind())),
        }
        Ok(())
    }

    /// A floating-point number, into a float column.
    pub fn append_f64(&mut self, value: f64) -> AppendResult {
        match &mut self.builder {
            Builder::Float32(b) => b.append_value(value as f32),
            Builder::Float64(b) => b.append_value(value),
            _ => return Err(format!("the number {value} has no {} form", self.kind())),
        }
        Ok(())
    }

    /// The decimal `unscaled` × 10^-`scale`, into a decimal column (rounded half away from zero
    /// to its scale, precision checked), an integer column (when whole) or a float column.
    pub fn append_decimal(&mut self, unscaled: i128, scale: i8) -> AppendResult {
        let text = || decimal_text(unscaled, scale);
        match &mut self.builder {
            Builder::Decimal {
                builder,
                precision,
                scale: target,
                limit,
            } => {
                let value = rescale(unscaled, scale, *target)
                    .filter(|v| v.unsigned_abs() < *limit)
                    .ok_or_else(|| {
                        format!("{} does not fit decimal({precision},{target})", text())
                    })?;
                builder.append_value(value);
            }
            Builder::Float32(_) | Builder::Float64(_) => {
                let value: f64 = text().parse().map_err(|e| format!("{}: {e}", text()))?;
                return self.append_f64(value);
            }
            Builder::Utf8(_) | Builder::LargeUtf8(_) | Builder::Utf8View(_) => {
                return self.append_str(&text());
            }
            _ => {
                let whole = rescale(unscaled, scale, 0)
                    .filter(|w| rescale(*w, 0, scale) == Some(unscaled))
                    .ok_or_else(|| format!("{} is not a whole number", text()))?;
                return self.append_i128(whole);
            }
        }
        Ok(())
    }

    /// Text, into a text column.
    pub fn append_str(&mut self, value: &str) -> AppendResult {
        match &mut self.builder {
            Builder::Utf8(b) => b.append_value(value),
            Builder::LargeUtf8(b) => b.append_value(value),
            Builder::Utf8View(b) => b.append_value(value),
            _ => return Err(format!("text has no {} form", self.kind())),
        }
        Ok(())
    }

    /// Bytes, into a binary column.
    pub fn append_bytes(&mut self, value: &[u8]) -> AppendResult {
        match &mut self.builder {
            Builder::Binary(b) => b.append_value(value),
            _ => return Err(format!("bytes have no {} form", self.kind())),
        }
        Ok(())
    }

    /// A date as days since 1970-01-01, into a date or (wall-clock) timestamp column.
    pub fn append_date(&mut self, days: i32) -> AppendResult {
        match &mut self.builder {
            Builder::Date32(b) => b.append_value(days),
            Builder::Timestamp(_, _, None) => {
                return self.append_timestamp_micros(i64::from(days) * MICROS_PER_DAY);
            }
            _ => return Err(format!("a date has no {} form", self.kind())),
        }
        Ok(())
    }

    /// A timestamp as microseconds since 1970-01-01 00:00 (UTC for zoned columns), into a
    /// timestamp column of any unit.
    pub fn append_timestamp_micros(&mut self, micros: i64) -> AppendResult {
        let Builder::Timestamp(b, unit, _) = &mut self.builder else {
            return Err(format!("a timestamp has no {} form", self.kind()));
        };
        b.append_value(match unit {
            TimeUnit::Second => micros.div_euclid(1_000_000),
            TimeUnit::Millisecond => micros.div_euclid(1_000),
            TimeUnit::Microsecond => micros,
            TimeUnit::Nanosecond => micros
                .checked_mul(1_000)
                .ok_or("timestamp out of the nanosecond range (years 1677–2262)")?,
        });
        Ok(())
    }

    /// A time of day in microseconds since midnight, into a time column.
    pub fn append_time_micros(&mut self, micros: i64) -> AppendResult {
        match &mut self.builder {
            Builder::Time64(b) if (0..MICROS_PER_DAY).contains(&micros) => b.append_value(micros),
            Builder::Time64(_) => return Err(format!("{micros} µs is not a time of day")),
            _ => return Err(format!("a time has no {} form", self.kind())),
        }
        Ok(())
    }

    /// An interval, into an interval column.
    pub fn append_interval(&mut self, months: i32, days: i32, micros: i64) -> AppendResult {
        let Builder::Interval(b) = &mut self.builder else {
            return Err(format!("an interval has no {} form", self.kind()));
        };
        let nanos = micros.checked_mul(1_000).ok_or("interval out of range")?;
        b.append_value(IntervalMonthDayNano::new(months, days, nanos));
        Ok(())
    }

    /// Ends a list value whose `count` items were appended to [`ColumnBuilder::list_items`].
    pub fn end_list(&mut self, count: usize) -> AppendResult {
        let Builder::List { offsets, nulls, .. } = &mut self.builder else {
            return Err(format!("a list has no {} form", self.kind()));
        };
        let last = offsets.last().copied().unwrap_or(0);
        let count = i32::try_from(count).map_err(|_| "list too long")?;
        offsets.push(
            last.checked_add(count)
                .ok_or("too many list items in one batch")?,
        );
        nulls.append_non_null();
        Ok(())
    }

    /// The values appended since the last call, as an array.
    pub fn finish(&mut self) -> ArrayRef {
        match &mut self.builder {
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Int8(b) => Arc::new(b.finish()),
            Builder::Int16(b) => Arc::new(b.finish()),
            Builder::Int32(b) => Arc::new(b.finish()),
            Builder::Int64(b) => Arc::new(b.finish()),
            Builder::UInt8(b) => Arc::new(b.finish()),
            Builder::UInt16(b) => Arc::new(b.finish()),
            Builder::UInt32(b) => Arc::new(b.finish()),
            Builder::UInt64(b) => Arc::new(b.finish()),
            Builder::Float32(b) => Arc::new(b.finish()),
            Builder::Float64(b) => Arc::new(b.finish()),
            // The builder carries its precision and scale.
            Builder::Decimal { builder, .. } => Arc::new(builder.finish()),
            Builder::Utf8(b) => Arc::new(b.finish()),
            Builder::LargeUtf8(b) => Arc::new(b.finish()),
            Builder::Utf8View(b) => Arc::new(b.finish()),
            Builder::Binary(b) => Arc::new(b.finish()),
            Builder::Date32(b) => Arc::new(b.finish()),
            Builder::Time64(b) => Arc::new(b.finish()),
            Builder::Timestamp(b, unit, tz) => {
                let array = b.finish();
                let (values, nulls) = (array.values().clone(), array.nulls().cloned());
                let tz = tz.clone();
                match unit {
                    TimeUnit::Second => {
                        Arc::new(TimestampSecondArray::new(values, nulls).with_timezone_opt(tz))
                    }
                    TimeUnit::Millisecond => Arc::new(
                        TimestampMillisecondArray::new(values, nulls).with_timezone_opt(tz),
                    ),
                    TimeUnit::Microsecond => Arc::new(
                        TimestampMicrosecondArray::new(values, nulls).with_timezone_opt(tz),
                    ),
                    TimeUnit::Nanosecond => {
                        Arc::new(TimestampNanosecondArray::new(values, nulls).with_timezone_opt(tz))
                    }
                }
            }
            Builder::Interval(b) => Arc::new(b.finish()),
            Builder::List {
                field,
                offsets,
                nulls,
                items,
            } => {
                let values = items.finish();
                let taken = std::mem::replace(offsets, vec![0]);
                Arc::new(ListArray::new(
                    Arc::clone(field),
                    OffsetBuffer::new(taken.into()),
                    values,
                    nulls.finish(),
                ))
            }
        }
    }

    /// The column's kind, for messages.
    fn kind(&self) -> &'static str {
        match &self.builder {
            Builder::Bool(_) => "boolean",
            Builder::Int8(_)
            | Builder::Int16(_)
            | Builder::Int32(_)
            | Builder::Int64(_)
            | Builder::UInt8(_)
            | Builder::UInt16(_)
            | Builder::UInt32(_)
            | Builder::UInt64(_) => "integer",
            Builder::Float32(_) | Builder::Float64(_) => "floating-point",
            Builder::Decimal { .. } => "decimal",
            Builder::Utf8(_) | Builder::LargeUtf8(_) | Builder::Utf8View(_) => "text",
            Builder::Binary(_) => "binary",
            Builder::Date32(_) => "date",
            Builder::Time64(_) => "time",
            Builder::Timestamp(..) => "timestamp",
            Builder::Interval(_) => "interval",
            Builder::List { .. } => "list",
        }
    }
}

/// `unscaled` × 10^-`from` expressed at scale `to`, rounded half away from zero; `None` on
/// overflow.
pub fn rescale(unscaled: i128, from: i8, to: i8) -> Option<i128> {
    let shift = i32::from(to) - i32::from(from);
    if shift >= 0 {
        unscaled.checked_mul(10i128.checked_pow(shift as u32)?)
    } else {
        let divisor = 10i128.checked_pow((-shift) as u32)?;
        let (quotient, remainder) = (unscaled / divisor, unscaled % divisor);
        Some(if remainder.unsigned_abs() * 2 >= divisor.unsigned_abs() {
            quotient + unscaled.signum()
        } else {
            quotient
        })
    }
}

/// Decimal text (`-12.345`, `7`, `.5`) as (unscaled, scale); `None` when it is not one. Digits
/// beyond what an i128 holds are rounded away (half away from zero) from the right.
pub fn parse_decimal(text: &str) -> Option<(i128, i8)> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if (whole.is_empty() && fraction.is_empty())
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut unscaled: i128 = 0;
    let mut scale: i8 = 0;
    for b in whole.bytes() {
        unscaled = unscaled
            .checked_mul(10)?
            .checked_add(i128::from(b - b'0'))?;
    }
    for b in fraction.bytes() {
        let digit = i128::from(b - b'0');
        match unscaled.checked_mul(10).and_then(|u| u.checked_add(digit)) {
            Some(next) if scale < 38 => {
                unscaled = next;
                scale += 1;
            }
            // No room for more digits: round on this one and stop.
            _ => {
                if digit >= 5 {
                    unscaled = unscaled.checked_add(1)?;
                }
                break;
            }
        }
    }
    Some((if negative { -unscaled } else { unscaled }, scale))
}

/// `unscaled` × 10^-`scale` as text.
fn decimal_text(unscaled: i128, scale: i8) -> String {
    if scale <= 0 {
        return format!("{unscaled}{}", "0".repeat(scale.unsigned_abs() as usize));
    }
    let digits = unscaled.unsigned_abs().to_string();
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    format!("{}{whole}.{fraction}", if unscaled < 0 { "-" } else { "" })
}

/// Days from 1970-01-01 to the civil date `year-month-day` (proleptic Gregorian).
pub fn days_from_civil(year: i32, month: u32, day: u32) -> i32 {
    // Howard Hinnant's algorithm, in 400-year eras starting in March.
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year as i32;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Array;

    #[test]
    fn decimals_parse_round_and_convert() {
        assert_eq!(parse_decimal("-12.345"), Some((-12345, 3)));
        assert_eq!(parse_decimal(".5"), Some((5, 1)));
        assert_eq!(parse_decimal("1e5"), None);
        assert_eq!(rescale(12345, 3, 2), Some(1235));
        assert_eq!(rescale(-12345, 3, 2), Some(-1235));
        assert_eq!(rescale(5, 0, 2), Some(500));
        let mut builder = ColumnBuilder::new(&DataType::Int64, 2).unwrap();
        builder.append_decimal(4200, 2).unwrap();
        assert!(
            builder
                .append_decimal(4250, 2)
                .unwrap_err()
                .contains("42.50 is not a whole")
        );
        let mut builder = ColumnBuilder::new(&DataType::Decimal128(4, 1), 2).unwrap();
        builder.append_decimal(99949, 2).unwrap();
        let e = builder.append_decimal(99995, 2).unwrap_err();
        assert!(e.contains("999.95 does not fit decimal(4,1)"), "{e}");
        assert_eq!(builder.finish().len(), 1);
    }

    #[test]
    fn civil_dates_count_days_from_1970() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 1, 1), 10_957);
        assert_eq!(days_from_civil(1900, 3, 1), -25_508);
        assert_eq!(days_from_civil(9999, 12, 31), 2_932_896);
    }
}
