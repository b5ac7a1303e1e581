//! SQL for Flight SQL endpoints: DataFusion's dialect (PostgreSQL-like: double-quoted
//! identifiers, `LIMIT … OFFSET`, typed literals), with capabilities from GetSqlInfo.
//!
//! A Flotilla node runs the same DataFusion, so everything DataFusion can write is pushed.
//! For other servers the scalar functions pushed are those they list in GetSqlInfo
//! (numeric, string, date/time function lists); aggregates are the SQL standard ones.

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{JoinType, ScalarValue};
use datafusion::logical_expr::Operator;
use flotilla_federation::Dialect;
use flotilla_federation::dialect::{comparison_or_logic, standard_literal};
use std::collections::BTreeSet;

/// What an endpoint said about itself.
#[derive(Debug, Clone, Default)]
pub struct FlightSqlDialect {
    /// The endpoint runs Flotilla (so the same DataFusion): every function can be pushed.
    pub same_engine: bool,
    /// Scalar function names the endpoint lists (lower case).
    pub functions: BTreeSet<String>,
    /// The endpoint supports full outer joins.
    pub full_outer_joins: bool,
}

impl FlightSqlDialect {
    /// The dialect of another Flotilla node.
    pub fn flotilla() -> Self {
        Self {
            same_engine: true,
            functions: BTreeSet::new(),
            full_outer_joins: true,
        }
    }
}

/// A DataFusion SQL type name for an Arrow type, where there is one.
fn sql_type(data_type: &DataType) -> Option<String> {
    Some(match data_type {
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::UInt8 => "TINYINT UNSIGNED".into(),
        DataType::UInt16 => "SMALLINT UNSIGNED".into(),
        DataType::UInt32 => "INT UNSIGNED".into(),
        DataType::UInt64 => "BIGINT UNSIGNED".into(),
        DataType::Float32 => "REAL".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Decimal128(p, s) => format!("DECIMAL({p},{s})"),
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => "VARCHAR".into(),
        DataType::Date32 => "DATE".into(),
        DataType::Timestamp(TimeUnit::Nanosecond, None) => "TIMESTAMP".into(),
        _ => return None,
    })
}

impl Dialect for FlightSqlDialect {
    fn name(&self) -> &str {
        "flightsql"
    }

    fn literal(&self, value: &ScalarValue) -> Option<String> {
        // Each literal carries its exact type, as the endpoint's DataFusion would otherwise
        // read digits as Int64 and decimals as Float64.
        Some(match value {
            v if v.is_null() => format!("CAST(NULL AS {})", sql_type(&v.data_type())?),
            ScalarValue::Int64(Some(v)) => v.to_string(),
            ScalarValue::Int8(Some(_))
            | ScalarValue::Int16(Some(_))
            | ScalarValue::Int32(Some(_))
            | ScalarValue::UInt8(Some(_))
            | ScalarValue::UInt16(Some(_))
            | ScalarValue::UInt32(Some(_))
            | ScalarValue::UInt64(Some(_)) => {
                format!("CAST({value} AS {})", sql_type(&value.data_type())?)
            }
            ScalarValue::Float64(Some(v)) if v.is_finite() => format!("CAST({v:?} AS DOUBLE)"),
            ScalarValue::Float32(Some(v)) if v.is_finite() => format!("CAST({v:?} AS REAL)"),
            ScalarValue::Decimal128(Some(_), p, s) => {
                format!("CAST('{value}' AS DECIMAL({p},{s}))")
            }
            ScalarValue::TimestampMicrosecond(..) => return None,
            _ => return standard_literal(self, value),
        })
    }

    fn binary_operator(
        &self,
        op: &Operator,
        _left: &DataType,
        _right: &DataType,
    ) -> Option<&'static str> {
        if let Some(symbol) = comparison_or_logic(op) {
            return Some(symbol);
        }
        // The endpoint evaluates with DataFusion's (SQL-standard) semantics.
        Some(match op {
            Operator::IsDistinctFrom => "IS DISTINCT FROM",
            Operator::IsNotDistinctFrom => "IS NOT DISTINCT FROM",
            Operator::Plus => "+",
            Operator::Minus => "-",
            Operator::Multiply => "*",
            Operator::Divide => "/",
            Operator::Modulo => "%",
            Operator::StringConcat => "||",
            _ => return None,
        })
    }

    fn scalar_function(
        &self,
        name: &str,
        args: &[String],
        _arg_types: &[DataType],
    ) -> Option<String> {
        let known = self.same_engine || self.functions.contains(&name.to_ascii_lowercase());
        known.then(|| format!("{name}({})", args.join(", ")))
    }

    fn aggregate_function(
        &self,
        name: &str,
        distinct: bool,
        args: &[String],
        _arg_types: &[DataType],
    ) -> Option<String> {
        let standard = matches!(name, "count" | "sum" | "avg" | "min" | "max");
        if !(standard || self.same_engine) {
            return None;
        }
        let distinct = if distinct { "DISTINCT " } else { "" };
        Some(match args {
            [] if name == "count" && distinct.is_empty() => "count(*)".into(),
            [] => return None,
            args => format!("{name}({distinct}{})", args.join(", ")),
        })
    }

    fn cast(&self, expr: &str, _from: &DataType, to: &DataType) -> Option<String> {
        Some(format!("CAST({expr} AS {})", sql_type(to)?))
    }

    fn supports_like(&self, _case_insensitive: bool) -> bool {
        true
    }

    fn supports_join(&self, join_type: JoinType) -> bool {
        match join_type {
            JoinType::Inner | JoinType::Left | JoinType::Right => true,
            JoinType::Full => self.full_outer_joins,
            JoinType::LeftSemi | JoinType::LeftAnti | JoinType::RightSemi | JoinType::RightAnti => {
                true
            }
            JoinType::LeftMark | JoinType::RightMark => false,
        }
    }

    fn can_return(&self, _data_type: &DataType) -> bool {
        // Results arrive as Arrow: any type can.
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_keep_their_types() {
        let d = FlightSqlDialect::flotilla();
        assert_eq!(d.literal(&ScalarValue::Int64(Some(5))).unwrap(), "5");
        assert_eq!(
            d.literal(&ScalarValue::Int32(Some(5))).unwrap(),
            "CAST(5 AS INT)"
        );
        assert_eq!(
            d.literal(&ScalarValue::Decimal128(Some(2400), 15, 2))
                .unwrap(),
            "CAST('24.00' AS DECIMAL(15,2))"
        );
        assert_eq!(
            d.literal(&ScalarValue::Date32(Some(8766))).unwrap(),
            "DATE '1994-01-01'"
        );
        assert_eq!(
            d.literal(&ScalarValue::Utf8(Some("it's".into()))).unwrap(),
            "'it''s'"
        );
    }

    #[test]
    fn other_servers_get_only_the_functions_they_list() {
        let d = FlightSqlDialect {
            same_engine: false,
            functions: ["abs".to_string()].into(),
            full_outer_joins: false,
        };
        assert!(
            d.scalar_function("abs", &["x".into()], &[DataType::Int64])
                .is_some()
        );
        assert!(
            d.scalar_function("md5", &["x".into()], &[DataType::Utf8])
                .is_none()
        );
        assert!(!d.supports_join(JoinType::Full));
        assert!(
            d.aggregate_function("stddev", false, &["x".into()], &[])
                .is_none()
        );
    }
}
