//! Parallel reads of big remote tables: one statement per range of an integer key.
//!
//! ```text
//!  SELECT o_custkey FROM orders WHERE …     (estimated 1.5 M rows, key o_orderkey 1..6 000 000)
//!   ├ partition 0: SELECT o_custkey FROM orders WHERE … AND o_orderkey < 3000001
//!   └ partition 1: SELECT o_custkey FROM orders WHERE … AND o_orderkey >= 3000001
//! ```
//!
//! A scan is split when it reads one table through filters and projections only (no limit,
//! aggregate or join: those run whole in the database), keeps the table's split key (see
//! [`SplitKey`]) among its columns and is estimated at more than
//! `flotilla.federation.partition_rows` rows: one range per that many rows, up to
//! `datafusion.execution.target_partitions`. Each range is its own statement on its own
//! connection (the range is added to the table scan's filters, so the key need not be read); the
//! first and last ranges are open so rows outside the described key range are still read.

use crate::config::FederationConfig;
use crate::source::{Source, SplitKey};
use crate::sql::Writer;
use crate::table::FederatedTable;
use datafusion::common::{Column, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator};

/// Of the rows a filter reads, the share it is taken to keep (DataFusion's own default guess,
/// `datafusion.physical_optimizer.default_filter_selectivity`).
const FILTER_SELECTIVITY: f64 = 0.2;

/// Of `rows`, how many a scan with `filters` conditions pushed into it is taken to keep: a fifth
/// when there are any (the conditions of one scan are not independent enough to multiply).
pub(crate) fn filtered_rows(rows: usize, filters: usize) -> usize {
    if filters == 0 {
        return rows;
    }
    (rows as f64 * FILTER_SELECTIVITY).ceil() as usize
}

/// How many ranges a scan of `rows` estimated rows is read in (1: not split).
pub(crate) fn partition_count(config: &ConfigOptions, rows: Option<usize>) -> usize {
    ranges(
        rows,
        partition_rows(config),
        config.execution.target_partitions,
    )
}

/// `flotilla.federation.partition_rows` of a session.
pub(crate) fn partition_rows(config: &ConfigOptions) -> usize {
    flotilla_common::options::section::<FederationConfig>(config)
        .map_or(FederationConfig::default().partition_rows, |c| {
            c.partition_rows
        })
}

/// How many ranges a scan of `rows` is read in: one per `per_partition` rows (0: never
/// split), at most `most`.
pub(crate) fn ranges(rows: Option<usize>, per_partition: usize, most: usize) -> usize {
    match rows {
        Some(rows) if per_partition > 0 => rows.div_ceil(per_partition).clamp(1, most.max(1)),
        _ => 1,
    }
}

/// `plan` (a chain of projections, filters and aliases over one table scan) reading only the
/// key range `(low, high)` of `key`: the range is added to the scan's filters, so the key need
/// not be among the columns read. `None` for any other plan shape.
pub(crate) fn with_range(
    plan: &LogicalPlan,
    key: &SplitKey,
    (low, high): (Option<i64>, Option<i64>),
) -> Option<LogicalPlan> {
    match range_filter(key, (low, high)) {
        Some(range) => add_to_scan(plan, range),
        None => Some(plan.clone()),
    }
}

/// The condition selecting the key range `(low, high)` (`None`: no bound at all).
pub(crate) fn range_filter(
    key: &SplitKey,
    (low, high): (Option<i64>, Option<i64>),
) -> Option<Expr> {
    let bound = |op: Operator, value: i64| {
        Expr::BinaryExpr(BinaryExpr::new(
            Box::new(Expr::Column(Column::new_unqualified(&key.column))),
            op,
            Box::new(Expr::Literal(ScalarValue::Int64(Some(value)), None)),
        ))
    };
    match (low, high) {
        (Some(low), Some(high)) => Some(bound(Operator::GtEq, low).and(bound(Operator::Lt, high))),
        (Some(low), None) => Some(bound(Operator::GtEq, low)),
        (None, Some(high)) => Some(bound(Operator::Lt, high)),
        (None, None) => None,
    }
}

fn add_to_scan(plan: &LogicalPlan, range: Expr) -> Option<LogicalPlan> {
    match plan {
        LogicalPlan::TableScan(scan) if scan.fetch.is_none() => {
            let mut scan = scan.clone();
            scan.filters.push(range);
            Some(LogicalPlan::TableScan(scan))
        }
        LogicalPlan::Projection(_) | LogicalPlan::Filter(_) | LogicalPlan::SubqueryAlias(_) => {
            let input = add_to_scan(plan.inputs()[0], range)?;
            plan.with_new_exprs(plan.expressions(), vec![input]).ok()
        }
        _ => None,
    }
}

/// The split key of the one table `plan` reads through projections, filters and aliases only
/// (no limit, aggregate or join), if it has one.
pub(crate) fn split_key(plan: &LogicalPlan) -> Option<SplitKey> {
    match plan {
        LogicalPlan::Projection(_) | LogicalPlan::Filter(_) | LogicalPlan::SubqueryAlias(_) => {
            split_key(plan.inputs()[0])
        }
        LogicalPlan::TableScan(scan) if scan.fetch.is_none() => {
            FederatedTable::of_scan(scan)?.remote().split_key.clone()
        }
        _ => None,
    }
}

/// `k < 300001`, `k >= 300001 AND k < 600001`, …: a range as `EXPLAIN` shows it.
pub(crate) fn range_label(key: &SplitKey, (low, high): (Option<i64>, Option<i64>)) -> String {
    match (low, high) {
        (Some(low), Some(high)) => format!("{c} >= {low} AND {c} < {high}", c = key.column),
        (Some(low), None) => format!("{} >= {low}", key.column),
        (None, Some(high)) => format!("{} < {high}", key.column),
        (None, None) => "all".into(),
    }
}

/// The statements reading `plan` in `n` key ranges, with their labels, or nothing when `n` is
/// below 2 or a range cannot be written for `source`.
pub(crate) fn split_statements(
    source: &dyn Source,
    plan: &LogicalPlan,
    key: &SplitKey,
    n: usize,
) -> Vec<(String, String)> {
    if n < 2 {
        return Vec::new();
    }
    let statements: Option<Vec<(String, String)>> = key
        .ranges(n)
        .into_iter()
        .map(|range| {
            let sql = Writer::new(source)
                .plan(&with_range(plan, key, range)?)?
                .sql;
            Some((range_label(key, range), sql))
        })
        .collect();
    match statements {
        Some(statements) if statements.len() > 1 => statements,
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_every_key_and_leave_the_ends_open() {
        let key = SplitKey {
            column: "k".into(),
            min: 1,
            max: 6_000_000,
        };
        assert_eq!(
            key.ranges(2),
            vec![(None, Some(3_000_001)), (Some(3_000_001), None)]
        );
        let three = key.ranges(3);
        assert_eq!(three.len(), 3);
        assert_eq!(three[0].1, three[1].0);
        assert_eq!(three[1].1, three[2].0);
        // Never more ranges than values.
        let tiny = SplitKey {
            column: "k".into(),
            min: 5,
            max: 5,
        };
        assert_eq!(tiny.ranges(4), vec![(None, None)]);
        let extreme = SplitKey {
            column: "k".into(),
            min: i64::MIN,
            max: i64::MAX,
        };
        assert_eq!(extreme.ranges(2), vec![(None, Some(0)), (Some(0), None)]);
    }
}
