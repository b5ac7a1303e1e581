//! Bind: the values of a portal's parameters as DataFusion values of their inferred types.
//!
//! A value comes in text (any type: read as text, then cast as `CAST('…' AS type)` would) or in
//! binary (the common fixed-width types, text and bytes), as the client chose per parameter.
//! A parameter whose type nothing infers takes the type the client declared, else text.

use crate::errors::user_error;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{ParamValues, ScalarValue};
use pgwire::api::Type;
use pgwire::api::portal::{Format, Portal};
use pgwire::error::PgWireResult;

/// Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// The values of `portal`'s parameters, as `types` (the plan's inferred types, `$1` first).
pub(crate) fn bind<S>(portal: &Portal<S>, types: &[Option<DataType>]) -> PgWireResult<ParamValues> {
    if portal.parameters.len() != types.len() {
        return Err(user_error(
            "08P01",
            &format!(
                "bind message supplies {} parameters, but the statement requires {}",
                portal.parameters.len(),
                types.len()
            ),
        ));
    }
    let declared = &portal.statement.parameter_types;
    let mut values = Vec::with_capacity(types.len());
    for (i, (raw, inferred)) in portal.parameters.iter().zip(types).enumerate() {
        let pg_type = declared.get(i).cloned().flatten();
        let target = inferred
            .clone()
            .or_else(|| pg_type.as_ref().and_then(data_type_of))
            .unwrap_or(DataType::Utf8);
        let binary = match &portal.parameter_format {
            Format::UnifiedText => false,
            Format::UnifiedBinary => true,
            Format::Individual(codes) => match codes.get(i) {
                Some(0) => false,
                Some(1) => true,
                _ => {
                    return Err(user_error(
                        "08P01",
                        &format!("no valid format code for parameter ${}", i + 1),
                    ));
                }
            },
        };
        let value = match raw {
            None => ScalarValue::try_from(&target).map_err(crate::errors::query_error)?,
            Some(bytes) if binary => {
                let read = read_binary(bytes, pg_type.as_ref().unwrap_or(&Type::UNKNOWN), i)?;
                cast(read, &target, i)?
            }
            Some(bytes) => {
                let text = std::str::from_utf8(bytes).map_err(|_| {
                    user_error("22021", &format!("parameter ${} is not valid UTF-8", i + 1))
                })?;
                cast(ScalarValue::Utf8(Some(text.to_string())), &target, i)?
            }
        };
        values.push(value);
    }
    Ok(ParamValues::List(
        values.into_iter().map(Into::into).collect(),
    ))
}

/// `value` as `target`, or an invalid-text-representation error naming the parameter.
fn cast(value: ScalarValue, target: &DataType, i: usize) -> PgWireResult<ScalarValue> {
    if value.data_type() == *target {
        return Ok(value);
    }
    value.cast_to(target).map_err(|e| {
        user_error(
            "22P02",
            &format!("parameter ${}: cannot read {value} as {target}: {e}", i + 1),
        )
    })
}

/// A value sent in PostgreSQL's binary format for `pg_type`.
fn read_binary(bytes: &[u8], pg_type: &Type, i: usize) -> PgWireResult<ScalarValue> {
    let wrong_size = || {
        user_error(
            "22P03",
            &format!(
                "parameter ${}: {} bytes are not a binary {}",
                i + 1,
                bytes.len(),
                pg_type.name()
            ),
        )
    };
    macro_rules! fixed {
        ($t:ty) => {
            <$t>::from_be_bytes(bytes.try_into().map_err(|_| wrong_size())?)
        };
    }
    Ok(match *pg_type {
        Type::BOOL => match bytes {
            [b] => ScalarValue::Boolean(Some(*b != 0)),
            _ => return Err(wrong_size()),
        },
        Type::INT2 => ScalarValue::Int16(Some(fixed!(i16))),
        Type::INT4 => ScalarValue::Int32(Some(fixed!(i32))),
        Type::INT8 => ScalarValue::Int64(Some(fixed!(i64))),
        Type::FLOAT4 => ScalarValue::Float32(Some(fixed!(f32))),
        Type::FLOAT8 => ScalarValue::Float64(Some(fixed!(f64))),
        Type::DATE => ScalarValue::Date32(Some(fixed!(i32).saturating_add(PG_EPOCH_DAYS))),
        Type::TIMESTAMP => ScalarValue::TimestampMicrosecond(
            Some(fixed!(i64).saturating_add(PG_EPOCH_MICROS)),
            None,
        ),
        Type::TIMESTAMPTZ => ScalarValue::TimestampMicrosecond(
            Some(fixed!(i64).saturating_add(PG_EPOCH_MICROS)),
            Some("UTC".into()),
        ),
        Type::BYTEA => ScalarValue::Binary(Some(bytes.to_vec())),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            ScalarValue::Utf8(Some(
                std::str::from_utf8(bytes)
                    .map_err(|_| {
                        user_error("22021", &format!("parameter ${} is not valid UTF-8", i + 1))
                    })?
                    .to_string(),
            ))
        }
        _ => {
            return Err(user_error(
                "0A000",
                &format!(
                    "parameter ${}: binary values of type {} are not supported; send it as text",
                    i + 1,
                    pg_type.name()
                ),
            ));
        }
    })
}

/// The DataFusion type of a PostgreSQL type a client declared for a parameter.
fn data_type_of(pg_type: &Type) -> Option<DataType> {
    Some(match *pg_type {
        Type::BOOL => DataType::Boolean,
        Type::INT2 => DataType::Int16,
        Type::INT4 => DataType::Int32,
        Type::INT8 => DataType::Int64,
        Type::FLOAT4 => DataType::Float32,
        Type::FLOAT8 => DataType::Float64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => DataType::Utf8,
        Type::DATE => DataType::Date32,
        Type::TIMESTAMP => DataType::Timestamp(TimeUnit::Microsecond, None),
        Type::TIMESTAMPTZ => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Type::BYTEA => DataType::Binary,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_values_read_with_their_size_checked() {
        assert_eq!(
            read_binary(&7i32.to_be_bytes(), &Type::INT4, 0).unwrap(),
            ScalarValue::Int32(Some(7))
        );
        assert_eq!(
            read_binary(&0i32.to_be_bytes(), &Type::DATE, 0).unwrap(),
            ScalarValue::Date32(Some(PG_EPOCH_DAYS))
        );
        assert!(read_binary(&[1, 2, 3], &Type::INT4, 0).is_err());
        assert!(read_binary(&[], &Type::BOOL, 0).is_err());
        assert!(read_binary(&[0; 16], &Type::NUMERIC, 0).is_err());
    }

    #[test]
    fn text_values_cast_to_the_inferred_type() {
        assert_eq!(
            cast(ScalarValue::Utf8(Some("42".into())), &DataType::Int64, 0).unwrap(),
            ScalarValue::Int64(Some(42))
        );
        assert!(cast(ScalarValue::Utf8(Some("x".into())), &DataType::Int64, 0).is_err());
    }
}
