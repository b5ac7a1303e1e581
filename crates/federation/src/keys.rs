//! Join-key pushdown: the keys of a hash join's built side go into the other side's SQL.
//!
//! ```text
//!   HashJoinExec ── builds the small side, then publishes its keys as a dynamic filter
//!     │                (DataFusion: `k >= min AND k <= max AND k IN (…)`)
//!     └─ probe side … FederatedScanExec ── waits for that filter, then sends
//!                       SELECT * FROM (<its SQL>) AS "keys" WHERE k >= 3 AND k <= 9 AND k IN (3, 5, 9)
//! ```
//!
//! DataFusion's filter pushdown offers every dynamic filter to the scans below it; the scan keeps
//! them (`FederatedScanExec`'s `handle_child_pushdown_result`), and `exec::JoinKeyPushdown` (a
//! physical optimizer rule that runs after DataFusion's) keeps only those a hash join produces —
//! a TopK's or an aggregate's filter only completes once the scan's rows have gone through, so
//! waiting for one would never end. When the scan starts it waits for the join's build side,
//! writes the filter as SQL in the source's dialect and wraps its statement with it.
//!
//! Only ever a weaker filter than DataFusion's is sent: a part that cannot be written (a hash
//! table lookup for a large build side, a hash-partition routing expression) is left out, so the
//! database returns a superset of the rows the join keeps and the join itself does the rest.

use crate::source::{RemoteTable, Source};
use crate::sql::{OutputColumns, Writer};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::datasource::TableType;
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::utils::split_conjunction_owned;
use datafusion::logical_expr::{BinaryExpr as LogicalBinary, Cast, Expr, Operator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{
    BinaryExpr, CaseExpr, CastExpr, Column, DynamicFilterPhysicalExpr, InListExpr, IsNotNullExpr,
    IsNullExpr, Literal,
};
use std::sync::Arc;

/// At most this many values go into one `IN` list (DataFusion's own bound is lower by default).
const MAX_IN_VALUES: usize = 10_000;

/// Whether `filter` is a dynamic filter a scan may hold on to.
pub(crate) fn is_dynamic(filter: &Arc<dyn PhysicalExpr>) -> bool {
    filter.downcast_ref::<DynamicFilterPhysicalExpr>().is_some()
}

/// Waits until every filter in `filters` is complete (the join's build side is done).
pub(crate) async fn wait_for(filters: &[Arc<dyn PhysicalExpr>]) {
    for filter in filters {
        if let Some(dynamic) = filter.downcast_ref::<DynamicFilterPhysicalExpr>() {
            dynamic.wait_complete().await;
        }
    }
}

/// `sql` restricted by the current value of `filters` (columns of the scan's `schema`), or
/// `None` when nothing of them can be written for `source`.
pub(crate) fn restricted_sql(
    source: &dyn Source,
    sql: &str,
    schema: &Schema,
    columns: &OutputColumns,
    filters: &[Arc<dyn PhysicalExpr>],
) -> Option<String> {
    // The scan's result as a table: its columns under their names in `sql`.
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .zip(&columns.names)
        .map(|(field, name)| Field::new(name, field.data_type().clone(), field.is_nullable()))
        .collect();
    let table = RemoteTable {
        schema: String::new(),
        name: String::new(),
        arrow_schema: Arc::new(Schema::new(fields)),
        opaque: columns.opaque.clone(),
        indexed: None,
        table_type: TableType::Temporary,
        row_estimate: None,
        bytes: None,
        split_key: None,
        column_estimates: Vec::new(),
    };
    let mut conditions = Vec::new();
    for filter in filters {
        let Ok(current) = filter
            .downcast_ref::<DynamicFilterPhysicalExpr>()
            .map_or_else(|| Ok(Arc::clone(filter)), |d| d.current())
        else {
            continue;
        };
        let Some(expr) = logical(&current, &columns.names) else {
            continue;
        };
        // Each conjunct on its own: one the dialect cannot write is left out.
        for conjunct in split_conjunction_owned(expr) {
            let written = key_range(source, &table, &conjunct)
                .or_else(|| Writer::new(source).table_filter(&table, &conjunct));
            if let Some(sql) = written {
                conditions.push(sql);
            }
        }
    }
    if conditions.is_empty() {
        return None;
    }
    let alias = source.dialect().quote_identifier("keys");
    Some(format!(
        "SELECT * FROM ({sql}) AS {alias} WHERE {}",
        conditions.join(" AND ")
    ))
}

/// A bound of a key range, `column <op> literal` over a number column, written with
/// the dialect's [`key_range_operand`](crate::Dialect::key_range_operand); `None` for any other
/// condition (the writer writes those as they are).
fn key_range(source: &dyn Source, table: &RemoteTable, condition: &Expr) -> Option<String> {
    let Expr::BinaryExpr(LogicalBinary { left, op, right }) = condition else {
        return None;
    };
    let (Expr::Column(column), Expr::Literal(value, _)) = (left.as_ref(), right.as_ref()) else {
        return None;
    };
    if !matches!(
        op,
        Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq
    ) {
        return None;
    }
    let data_type = table
        .arrow_schema
        .field_with_name(&column.name)
        .ok()?
        .data_type();
    // Numbers only: an operand wrapped by the dialect may lose the column's type conversions
    // (SQLite's `+k` has no affinity), which changes nothing when both sides are numbers.
    let number = data_type.is_integer() || data_type.is_floating();
    if !number || value.data_type() != *data_type || value.is_null() {
        return None;
    }
    let dialect = source.dialect();
    let op = dialect.binary_operator(op, data_type, data_type)?;
    let operand = dialect.key_range_operand(&dialect.quote_identifier(&column.name));
    let bound = Writer::new(source).table_filter(table, right)?;
    Some(format!("({operand} {op} {bound})"))
}

/// A logical expression over the columns `names` that holds wherever `expr` holds, or `None`
/// for "no condition". Parts that cannot be expressed become "no condition", which only ever
/// weakens a condition in the positions where this is applied (AND, OR, CASE branches); negation
/// is never looked into.
fn logical(expr: &Arc<dyn PhysicalExpr>, names: &[String]) -> Option<Expr> {
    if let Some(dynamic) = expr.downcast_ref::<DynamicFilterPhysicalExpr>() {
        return logical(&dynamic.current().ok()?, names);
    }
    if let Some(binary) = expr.downcast_ref::<BinaryExpr>() {
        let op = *binary.op();
        return match op {
            Operator::And => {
                match (
                    logical(binary.left(), names),
                    logical(binary.right(), names),
                ) {
                    (Some(l), Some(r)) => Some(l.and(r)),
                    (one, None) | (None, one) => one,
                }
            }
            Operator::Or => {
                Some(logical(binary.left(), names)?.or(logical(binary.right(), names)?))
            }
            Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq => Some(Expr::BinaryExpr(LogicalBinary::new(
                Box::new(value(binary.left(), names)?),
                op,
                Box::new(value(binary.right(), names)?),
            ))),
            _ => None,
        };
    }
    if let Some(list) = expr.downcast_ref::<InListExpr>() {
        if list.negated() || list.len() > MAX_IN_VALUES {
            return None;
        }
        let items = list
            .list()
            .iter()
            .map(|item| value(item, names))
            .collect::<Option<Vec<_>>>()?;
        return Some(Expr::InList(InList::new(
            Box::new(value(list.expr(), names)?),
            items,
            false,
        )));
    }
    if let Some(case) = expr.downcast_ref::<CaseExpr>() {
        // Rows pass where the branch they are routed to passes: any branch passing is weaker.
        let mut branches = case
            .when_then_expr()
            .iter()
            .map(|(_, then)| then)
            .chain(case.else_expr())
            .map(|branch| logical(branch, names));
        let first = branches.next()??;
        return branches.try_fold(first, |acc, branch| Some(acc.or(branch?)));
    }
    if let Some(is_null) = expr.downcast_ref::<IsNullExpr>() {
        return Some(value(is_null.arg(), names)?.is_null());
    }
    if let Some(is_not_null) = expr.downcast_ref::<IsNotNullExpr>() {
        return Some(value(is_not_null.arg(), names)?.is_not_null());
    }
    if let Some(literal) = expr.downcast_ref::<Literal>() {
        return Some(Expr::Literal(literal.value().clone(), None));
    }
    None
}

/// A value expression (a column, a literal, a cast of one), exactly, or `None`.
fn value(expr: &Arc<dyn PhysicalExpr>, names: &[String]) -> Option<Expr> {
    if let Some(column) = expr.downcast_ref::<Column>() {
        let name = names.get(column.index())?;
        return Some(Expr::Column(datafusion::common::Column::new_unqualified(
            name,
        )));
    }
    if let Some(literal) = expr.downcast_ref::<Literal>() {
        return Some(Expr::Literal(literal.value().clone(), None));
    }
    if let Some(cast) = expr.downcast_ref::<CastExpr>() {
        return Some(Expr::Cast(Cast::new(
            Box::new(value(cast.expr(), names)?),
            cast.cast_type().clone(),
        )));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::DataType;
    use datafusion::common::ScalarValue;
    use datafusion::physical_expr::expressions::{col, lit};

    fn names() -> Vec<String> {
        vec!["k".into(), "v".into()]
    }

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("v", DataType::Utf8, true),
        ])
    }

    #[test]
    fn bounds_and_in_lists_become_logical_conditions() {
        let k = col("k", &schema()).unwrap();
        let bounds: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            Arc::new(BinaryExpr::new(Arc::clone(&k), Operator::GtEq, lit(3i64))),
            Operator::And,
            Arc::new(BinaryExpr::new(Arc::clone(&k), Operator::LtEq, lit(9i64))),
        ));
        let list: Arc<dyn PhysicalExpr> = Arc::new(
            InListExpr::try_new(Arc::clone(&k), vec![lit(3i64), lit(9i64)], false, &schema())
                .unwrap(),
        );
        let both: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(bounds, Operator::And, list));
        let expr = logical(&both, &names()).unwrap();
        assert_eq!(
            expr.to_string(),
            "k >= Int64(3) AND k <= Int64(9) AND k IN ([Int64(3), Int64(9)])"
        );
        assert_eq!(split_conjunction_owned(expr).len(), 3);
    }

    #[test]
    fn what_cannot_be_written_is_dropped_only_where_that_weakens() {
        let k = col("k", &schema()).unwrap();
        let known: Arc<dyn PhysicalExpr> =
            Arc::new(BinaryExpr::new(Arc::clone(&k), Operator::GtEq, lit(3i64)));
        // A negated list is never weakened into "no condition" inside it: the whole goes.
        let negated: Arc<dyn PhysicalExpr> = Arc::new(
            InListExpr::try_new(Arc::clone(&k), vec![lit(3i64)], true, &schema()).unwrap(),
        );
        let and: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            Arc::clone(&known),
            Operator::And,
            Arc::clone(&negated),
        ));
        assert_eq!(
            logical(&and, &names()).unwrap().to_string(),
            "k >= Int64(3)"
        );
        // An OR with an unknown side is no condition at all.
        let or: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(known, Operator::Or, negated));
        assert!(logical(&or, &names()).is_none());
        // Arithmetic is not a value this writes.
        let sum: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            Arc::new(BinaryExpr::new(Arc::clone(&k), Operator::Plus, lit(1i64))),
            Operator::Eq,
            lit(ScalarValue::Int64(Some(4))),
        ));
        assert!(logical(&sum, &names()).is_none());
    }
}
