//! Translation of DataFusion filter expressions into SQLite SQL.
//!
//! A filter is pushed into SQLite only when it is translated *whole* and SQLite evaluates it
//! exactly as DataFusion would; then the provider reports it as `Exact` and DataFusion does not
//! evaluate it again. Everything else is reported `Unsupported` and stays in DataFusion.
//! [`to_sql`] returning `Some` is the single source of truth for both decisions, so a filter is
//! never claimed without being sent.
//!
//! Translated: column references, literals (integers, finite floats, decimals, strings,
//! booleans, dates as ISO text), comparisons, `AND`/`OR`/`NOT`, `IS [NOT] NULL`,
//! `[NOT] BETWEEN`, `[NOT] IN (list)`, and case-sensitive `[NOT] LIKE` (the connections run with
//! `case_sensitive_like`). Casts, arithmetic and functions are not translated: their semantics
//! differ between SQLite and DataFusion in ways (integer division, decimal rounding, NULL
//! handling of functions) that would change results.

use crate::types::ColumnType;
use datafusion::arrow::array::temporal_conversions::as_date;
use datafusion::arrow::datatypes::Date32Type;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, expr::InList};

/// Quotes an identifier for SQLite.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string literal for SQLite.
pub fn quote_string(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The columns a filter may reference.
pub trait Columns {
    /// The type of column `name`, or `None` when the column is unknown or SQLite would compare
    /// its values differently from DataFusion (then no filter on it is pushed).
    fn column_type(&self, name: &str) -> Option<ColumnType>;
}

/// SQLite SQL for `expr`, or `None` when it cannot be pushed exactly.
pub fn to_sql(expr: &Expr, columns: &dyn Columns) -> Option<String> {
    match expr {
        Expr::Column(c) => {
            columns.column_type(&c.name)?;
            Some(quote_identifier(&c.name))
        }
        Expr::Literal(value, _) => literal(value),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let op = match op {
                Operator::Eq => "=",
                Operator::NotEq => "<>",
                Operator::Lt => "<",
                Operator::LtEq => "<=",
                Operator::Gt => ">",
                Operator::GtEq => ">=",
                Operator::And => "AND",
                Operator::Or => "OR",
                _ => return None,
            };
            Some(format!(
                "({} {op} {})",
                to_sql(left, columns)?,
                to_sql(right, columns)?
            ))
        }
        Expr::Not(inner) => Some(format!("(NOT {})", to_sql(inner, columns)?)),
        Expr::IsNull(inner) => Some(format!("({} IS NULL)", to_sql(inner, columns)?)),
        Expr::IsNotNull(inner) => Some(format!("({} IS NOT NULL)", to_sql(inner, columns)?)),
        Expr::Between(b) => Some(format!(
            "({} {}BETWEEN {} AND {})",
            to_sql(&b.expr, columns)?,
            if b.negated { "NOT " } else { "" },
            to_sql(&b.low, columns)?,
            to_sql(&b.high, columns)?
        )),
        Expr::InList(InList {
            expr,
            list,
            negated,
        }) => {
            let items = list
                .iter()
                .map(|e| to_sql(e, columns))
                .collect::<Option<Vec<_>>>()?;
            if items.is_empty() {
                return None;
            }
            Some(format!(
                "({} {}IN ({}))",
                to_sql(expr, columns)?,
                if *negated { "NOT " } else { "" },
                items.join(", ")
            ))
        }
        Expr::Like(like) if !like.case_insensitive => {
            // Arrow's LIKE treats a backslash as the escape character unless told otherwise.
            let escape = like.escape_char.unwrap_or('\\');
            Some(format!(
                "({} {}LIKE {} ESCAPE {})",
                to_sql(&like.expr, columns)?,
                if like.negated { "NOT " } else { "" },
                to_sql(&like.pattern, columns)?,
                quote_string(&escape.to_string())
            ))
        }
        _ => None,
    }
}

fn literal(value: &ScalarValue) -> Option<String> {
    if value.is_null() {
        return Some("NULL".into());
    }
    Some(match value {
        ScalarValue::Boolean(Some(b)) => (if *b { "1" } else { "0" }).into(),
        ScalarValue::Int8(Some(v)) => v.to_string(),
        ScalarValue::Int16(Some(v)) => v.to_string(),
        ScalarValue::Int32(Some(v)) => v.to_string(),
        ScalarValue::Int64(Some(v)) => v.to_string(),
        ScalarValue::UInt8(Some(v)) => v.to_string(),
        ScalarValue::UInt16(Some(v)) => v.to_string(),
        ScalarValue::UInt32(Some(v)) => v.to_string(),
        ScalarValue::UInt64(Some(v)) if *v <= i64::MAX as u64 => v.to_string(),
        ScalarValue::Float64(Some(v)) if v.is_finite() => format!("{v:?}"),
        ScalarValue::Float32(Some(v)) if v.is_finite() => format!("{:?}", *v as f64),
        ScalarValue::Decimal128(Some(_), _, _) => value.to_string(),
        ScalarValue::Utf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
        | ScalarValue::LargeUtf8(Some(s)) => quote_string(s),
        ScalarValue::Date32(Some(days)) => quote_string(
            &as_date::<Date32Type>(*days as i64)?
                .format("%Y-%m-%d")
                .to_string(),
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{col, lit};
    use std::collections::HashMap;

    struct Table(HashMap<&'static str, ColumnType>);

    impl Columns for Table {
        fn column_type(&self, name: &str) -> Option<ColumnType> {
            self.0
                .get(name)
                .copied()
                .filter(|t| *t != ColumnType::Timestamp)
        }
    }

    fn table() -> Table {
        Table(HashMap::from([
            ("a", ColumnType::Int64),
            ("s", ColumnType::Text),
            ("d", ColumnType::Date),
            ("ts", ColumnType::Timestamp),
        ]))
    }

    #[test]
    fn comparisons_and_logic_translate() {
        let e = col("a").gt(lit(5)).and(col("s").eq(lit("it's")));
        assert_eq!(
            to_sql(&e, &table()).unwrap(),
            r#"(("a" > 5) AND ("s" = 'it''s'))"#
        );
        let e = col("d").lt_eq(lit(ScalarValue::Date32(Some(10_000))));
        assert_eq!(to_sql(&e, &table()).unwrap(), r#"("d" <= '1997-05-19')"#);
        let e = col("s").like(lit("a\\_%"));
        assert_eq!(
            to_sql(&e, &table()).unwrap(),
            r#"("s" LIKE 'a\_%' ESCAPE '\')"#
        );
        let e = col("a").in_list(vec![lit(1), lit(2)], true);
        assert_eq!(to_sql(&e, &table()).unwrap(), r#"("a" NOT IN (1, 2))"#);
    }

    #[test]
    fn untranslatable_filters_are_refused_whole() {
        // Arithmetic, unknown or unfilterable columns and case-insensitive LIKE stay in
        // DataFusion.
        assert!(to_sql(&(col("a") + lit(1)).gt(lit(2)), &table()).is_none());
        assert!(to_sql(&col("zz").eq(lit(1)), &table()).is_none());
        assert!(to_sql(&col("ts").is_null(), &table()).is_none());
        assert!(to_sql(&col("s").ilike(lit("x")), &table()).is_none());
        assert!(
            to_sql(
                &col("a").eq(lit(1)).and((col("a") * lit(2)).eq(lit(4))),
                &table()
            )
            .is_none()
        );
    }
}
