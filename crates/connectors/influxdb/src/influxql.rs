//! InfluxQL for the conditions InfluxDB can evaluate with SQL's meaning: time ranges, tag
//! equality and lists, field comparisons with literals of the field's type, and `AND`/`OR`
//! of those. Tag inequality and regular expressions on tags are sent too, but DataFusion
//! checks them again (a point without the tag passes `!=` in InfluxDB; Go's and Rust's regex
//! dialects differ at the edges).

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator, expr::InList};

use crate::schema::{ColumnKind, MeasurementSchema};

/// An identifier, double-quoted.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A string literal, single-quoted.
pub fn quote_string(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A condition in InfluxQL, and whether it means exactly what the SQL expression means (else
/// it keeps a superset of the rows and DataFusion filters again).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Condition {
    pub text: String,
    pub exact: bool,
    /// Every point it keeps has a time at or above / at or below some literal.
    pub lower: bool,
    pub upper: bool,
    /// It compares `time`: InfluxDB takes every time comparison as a bound of the whole
    /// query's range, so such a condition must not sit under `OR`.
    pub time: bool,
}

/// Most values in a list turned into `OR`ed equalities.
const MAX_LIST: usize = 100;

/// `expr` as an InfluxQL condition on `measurement`, when InfluxDB can evaluate it.
pub fn condition(expr: &Expr, measurement: &MeasurementSchema) -> Option<Condition> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And | Operator::Or => {
                let left = condition(left, measurement)?;
                let right = condition(right, measurement)?;
                if *op == Operator::Or && (left.time || right.time) {
                    return None;
                }
                let word = if *op == Operator::And { "AND" } else { "OR" };
                // Under AND both sides' bounds hold (under OR there are none: no time there).
                let both = |l: bool, r: bool| *op == Operator::And && (l || r);
                Some(Condition {
                    text: format!("({} {word} {})", left.text, right.text),
                    exact: left.exact && right.exact,
                    lower: both(left.lower, right.lower),
                    upper: both(left.upper, right.upper),
                    time: left.time || right.time,
                })
            }
            _ => comparison(left, *op, right, measurement),
        },
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) => {
            let low = comparison(expr, Operator::GtEq, low, measurement)?;
            let high = comparison(expr, Operator::LtEq, high, measurement)?;
            Some(Condition {
                text: format!("({} AND {})", low.text, high.text),
                exact: low.exact && high.exact,
                lower: low.lower,
                upper: high.upper,
                time: low.time,
            })
        }
        Expr::InList(InList {
            expr,
            list,
            negated: false,
        }) if !list.is_empty() && list.len() <= MAX_LIST => {
            let parts = list
                .iter()
                .map(|value| comparison(expr, Operator::Eq, value, measurement))
                .collect::<Option<Vec<_>>>()?;
            // An IN list is an OR: not of times (see `Condition::time`).
            if parts.iter().any(|p| p.time) {
                return None;
            }
            let texts: Vec<&str> = parts.iter().map(|p| p.text.as_str()).collect();
            Some(Condition {
                text: format!("({})", texts.join(" OR ")),
                exact: parts.iter().all(|p| p.exact),
                ..Condition::default()
            })
        }
        _ => None,
    }
}

/// The operator with its operands swapped (`5 < x` is `x > 5`).
fn flipped(op: Operator) -> Option<Operator> {
    Some(match op {
        Operator::Eq => Operator::Eq,
        Operator::NotEq => Operator::NotEq,
        Operator::Lt => Operator::Gt,
        Operator::LtEq => Operator::GtEq,
        Operator::Gt => Operator::Lt,
        Operator::GtEq => Operator::LtEq,
        _ => return None,
    })
}

fn symbol(op: Operator) -> Option<&'static str> {
    Some(match op {
        Operator::Eq => "=",
        Operator::NotEq => "!=",
        Operator::Lt => "<",
        Operator::LtEq => "<=",
        Operator::Gt => ">",
        Operator::GtEq => ">=",
        Operator::RegexMatch => "=~",
        Operator::RegexNotMatch => "!~",
        _ => return None,
    })
}

/// A column, or a column cast to text (DataFusion compares dictionary-encoded tags so).
fn as_column(expr: &Expr) -> Option<&datafusion::common::Column> {
    match expr {
        Expr::Column(column) => Some(column),
        Expr::Cast(cast)
            if matches!(
                cast.field.data_type(),
                DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
            ) =>
        {
            match cast.expr.as_ref() {
                Expr::Column(column) => Some(column),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A literal's value, out of its dictionary wrapping if it has one.
fn plain(value: &ScalarValue) -> &ScalarValue {
    match value {
        ScalarValue::Dictionary(_, inner) => plain(inner),
        other => other,
    }
}

/// `column op literal` (in either order) in InfluxQL.
fn comparison(
    left: &Expr,
    op: Operator,
    right: &Expr,
    measurement: &MeasurementSchema,
) -> Option<Condition> {
    let (column, op, value) = match (as_column(left), as_column(right)) {
        (Some(column), None) => match right {
            Expr::Literal(value, _) => (column, op, plain(value)),
            _ => return None,
        },
        (None, Some(column)) => match left {
            Expr::Literal(value, _) => (column, flipped(op)?, plain(value)),
            _ => return None,
        },
        _ => return None,
    };
    let name = column.name.as_str();
    let kind = measurement.kind_of(name)?;
    let data_type = measurement.schema.field_with_name(name).ok()?.data_type();
    match kind {
        ColumnKind::Time => {
            // InfluxQL compares `time` with nanoseconds since the epoch; not with `!=`.
            let nanos = timestamp_nanos(value)?;
            let symbol = symbol(op)?;
            (op != Operator::NotEq).then(|| Condition {
                text: format!("time {symbol} {nanos}"),
                exact: true,
                lower: matches!(op, Operator::Gt | Operator::GtEq | Operator::Eq),
                upper: matches!(op, Operator::Lt | Operator::LtEq | Operator::Eq),
                time: true,
            })
        }
        ColumnKind::Tag => {
            let (ScalarValue::Utf8(Some(text))
            | ScalarValue::Utf8View(Some(text))
            | ScalarValue::LargeUtf8(Some(text))) = value
            else {
                return None;
            };
            match op {
                // A point without the tag reads as '' in InfluxDB and NULL in SQL: only
                // non-empty equality means the same.
                Operator::Eq if !text.is_empty() => Some(Condition {
                    text: format!("{} = {}", quote_identifier(name), quote_string(text)),
                    exact: true,
                    ..Condition::default()
                }),
                // A point without the tag matches `!=` in InfluxDB, not in SQL: InfluxDB
                // sends a superset and DataFusion filters again.
                Operator::NotEq => Some(Condition {
                    text: format!("{} != {}", quote_identifier(name), quote_string(text)),
                    exact: false,
                    ..Condition::default()
                }),
                Operator::RegexMatch | Operator::RegexNotMatch if !text.contains('/') => {
                    Some(Condition {
                        text: format!("{} {} /{text}/", quote_identifier(name), symbol(op)?),
                        exact: false,
                        ..Condition::default()
                    })
                }
                _ => None,
            }
        }
        ColumnKind::Field => {
            let literal = field_literal(value, data_type)?;
            let ordered = matches!(
                data_type,
                DataType::Float64 | DataType::Int64 | DataType::UInt64
            );
            let allowed = matches!(op, Operator::Eq | Operator::NotEq)
                || (ordered
                    && matches!(
                        op,
                        Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq
                    ));
            let symbol = symbol(op)?;
            allowed.then(|| Condition {
                text: format!("{} {symbol} {literal}", quote_identifier(name)),
                exact: true,
                ..Condition::default()
            })
        }
    }
}

/// A timestamp literal (or a timestamp written as text) in nanoseconds since the epoch.
pub(crate) fn timestamp_nanos(value: &ScalarValue) -> Option<i64> {
    if let ScalarValue::Utf8(Some(_)) | ScalarValue::LargeUtf8(Some(_)) = value {
        let nanos = DataType::Timestamp(
            datafusion::arrow::datatypes::TimeUnit::Nanosecond,
            Some("UTC".into()),
        );
        return timestamp_nanos(&value.cast_to(&nanos).ok()?);
    }
    match value {
        ScalarValue::TimestampNanosecond(Some(v), _) => Some(*v),
        ScalarValue::TimestampMicrosecond(Some(v), _) => v.checked_mul(1_000),
        ScalarValue::TimestampMillisecond(Some(v), _) => v.checked_mul(1_000_000),
        ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1_000_000_000),
        _ => None,
    }
}

/// A literal of the field's own type, as InfluxQL writes it.
fn field_literal(value: &ScalarValue, data_type: &DataType) -> Option<String> {
    match (value, data_type) {
        (ScalarValue::Float64(Some(v)), DataType::Float64) => {
            // InfluxQL has no exponent notation; such floats stay with DataFusion.
            let text = format!("{v:?}");
            (v.is_finite() && !text.contains(['e', 'E'])).then_some(text)
        }
        (ScalarValue::Int64(Some(v)), DataType::Int64) => Some(v.to_string()),
        (ScalarValue::UInt64(Some(v)), DataType::UInt64) => Some(v.to_string()),
        (ScalarValue::Utf8(Some(v)), DataType::Utf8) => Some(quote_string(v)),
        (ScalarValue::Boolean(Some(v)), DataType::Boolean) => Some(v.to_string()),
        _ => None,
    }
}
