//! What a federated scan returns, for DataFusion's planner: its table's statistics (the source's
//! row estimate and [`ColumnEstimate`](crate::source::ColumnEstimate)s) carried through the
//! filters, projections and limit the scan's SQL applies.
//!
//! ```text
//!  table orders: 150 000 rows, o_custkey 10 000 distinct, o_comment 0 NULLs, …
//!  SELECT o_custkey FROM orders WHERE o_orderdate < …   → 30 000 rows (a fifth, see split.rs),
//!                                                          o_custkey ≤ 10 000 distinct
//! ```
//!
//! Every figure stays inexact: DataFusion orders joins and sizes hash tables with them, and the
//! cost model reads the same table figures; no result depends on them.

use crate::source::RemoteTable;
use crate::split::filtered_rows;
use crate::table::FederatedTable;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::common::stats::{ColumnStatistics, Precision, Statistics};
use datafusion::logical_expr::{Expr, FetchType, LogicalPlan};
use std::cmp::Ordering;

/// The statistics of `plan`'s result when it reads one federated table through filters,
/// projections of columns, aliases and a limit: the table's rows, a fifth of them for the
/// filters pushed into the scan and another fifth per filter above, capped by a limit. `None`
/// for anything else (joins, aggregates) or a table whose source gave no row count. An
/// estimate, even a rough one, lets DataFusion put a filtered small table on the build side of a
/// join instead of a big one.
pub fn of_plan(plan: &LogicalPlan) -> Option<Statistics> {
    match plan {
        LogicalPlan::SubqueryAlias(alias) => of_plan(&alias.input),
        LogicalPlan::Projection(projection) => {
            let input = of_plan(&projection.input)?;
            let columns = projection
                .expr
                .iter()
                .map(|expr| match column_of(expr) {
                    Some(column) => projection
                        .input
                        .schema()
                        .maybe_index_of_column(column)
                        .and_then(|i| input.column_statistics.get(i).cloned())
                        .unwrap_or_else(ColumnStatistics::new_unknown),
                    None => ColumnStatistics::new_unknown(),
                })
                .collect();
            Some(summed(Statistics {
                num_rows: input.num_rows,
                total_byte_size: Precision::Absent,
                column_statistics: columns,
            }))
        }
        LogicalPlan::Filter(filter) => {
            let input = of_plan(&filter.input)?;
            let rows = filtered_rows(*input.num_rows.get_value()?, 1);
            Some(keep_rows(&input, rows))
        }
        LogicalPlan::Limit(limit) => {
            let input = of_plan(&limit.input)?;
            match limit.get_fetch_type() {
                Ok(FetchType::Literal(Some(fetch))) => {
                    let rows = fetch.min(*input.num_rows.get_value()?);
                    Some(keep_rows(&input, rows))
                }
                _ => Some(input),
            }
        }
        LogicalPlan::TableScan(scan) => of_table(
            FederatedTable::of_scan(scan)?.remote(),
            scan.projection.as_deref(),
            scan.filters.len(),
            scan.fetch,
        ),
        _ => None,
    }
}

/// The statistics of a scan of `table` reading the columns `projection` (all: `None`) through
/// `filters` conditions, at most `fetch` rows; `None` when the source gave no row count.
pub fn of_table(
    table: &RemoteTable,
    projection: Option<&[usize]>,
    filters: usize,
    fetch: Option<usize>,
) -> Option<Statistics> {
    let statistics = of_remote(table);
    let all = *statistics.num_rows.get_value()?;
    let statistics = summed(statistics.project(projection.as_ref()));
    let rows = filtered_rows(all, filters);
    let rows = fetch.map_or(rows, |fetch| fetch.min(rows));
    Some(if rows == all {
        statistics
    } else {
        keep_rows(&statistics, rows)
    })
}

/// `table`'s statistics as DataFusion keeps them: every figure inexact, unknown where the
/// source said nothing (the total byte size is left to [`summed`]).
fn of_remote(table: &RemoteTable) -> Statistics {
    let mut statistics = Statistics::new_unknown(&table.arrow_schema);
    let Some(rows) = table.row_estimate else {
        return statistics;
    };
    statistics.num_rows = Precision::Inexact(rows);
    let count = |share: f64| Precision::Inexact((rows as f64 * share).round() as usize);
    for (column, estimate) in statistics
        .column_statistics
        .iter_mut()
        .zip(&table.column_estimates)
    {
        if let Some(share) = estimate.null_fraction {
            column.null_count = count(share.clamp(0.0, 1.0));
        }
        if let Some(distinct) = estimate.distinct {
            column.distinct_count = Precision::Inexact(distinct.round().min(rows as f64) as usize);
        }
        if let Some(min) = &estimate.min {
            column.min_value = Precision::Inexact(min.clone());
        }
        if let Some(max) = &estimate.max {
            column.max_value = Precision::Inexact(max.clone());
        }
        if let Some(width) = estimate.width {
            column.byte_size = count(width.max(0.0));
        }
    }
    statistics
}

/// `statistics` with its byte size the sum of its columns' (unknown unless every column's is
/// known): the columns a scan reads, not the whole table, decide whether DataFusion takes it
/// for small enough to build a hash table from.
fn summed(mut statistics: Statistics) -> Statistics {
    let bytes: Option<usize> = statistics
        .column_statistics
        .iter()
        .map(|column| column.byte_size.get_value().copied())
        .sum();
    statistics.total_byte_size = bytes.map_or(Precision::Absent, Precision::Inexact);
    statistics
}

/// The rows `statistics` estimates, if any.
pub fn rows(statistics: Option<&Statistics>) -> Option<usize> {
    statistics.and_then(|statistics| statistics.num_rows.get_value().copied())
}

/// `statistics` for `rows` of its rows, taken evenly: NULL counts and byte sizes shrink in
/// proportion, distinct counts to at most `rows`, bounds stay (inexact: they still bound).
pub fn keep_rows(statistics: &Statistics, rows: usize) -> Statistics {
    let share = match statistics.num_rows.get_value() {
        Some(&all) if all > 0 => (rows as f64 / all as f64).min(1.0),
        _ => 1.0,
    };
    let scaled = |count: &Precision<usize>| {
        count.get_value().map_or(Precision::Absent, |&n| {
            Precision::Inexact((n as f64 * share).round() as usize)
        })
    };
    Statistics {
        num_rows: Precision::Inexact(rows),
        total_byte_size: scaled(&statistics.total_byte_size),
        column_statistics: statistics
            .column_statistics
            .iter()
            .map(|column| ColumnStatistics {
                null_count: scaled(&column.null_count),
                distinct_count: column
                    .distinct_count
                    .get_value()
                    .map_or(Precision::Absent, |&n| Precision::Inexact(n.min(rows))),
                min_value: column.min_value.clone().to_inexact(),
                max_value: column.max_value.clone().to_inexact(),
                sum_value: Precision::Absent,
                byte_size: scaled(&column.byte_size),
            })
            .collect(),
    }
}

/// A value a database's statistics write as text (`42`, `1.5`, `1998-12-01`,
/// `1998-12-01 10:00:00`), as a value of `data_type`: for numbers, dates, times and timestamps;
/// `None` for other types (text orders by the database's collation, which DataFusion does not
/// share) and for text that does not parse as the type or is not a finite number.
pub fn bound_from_text(text: &str, data_type: &DataType) -> Option<ScalarValue> {
    let ordered = data_type.is_integer()
        || data_type.is_floating()
        || matches!(
            data_type,
            DataType::Decimal32(..)
                | DataType::Decimal64(..)
                | DataType::Decimal128(..)
                | DataType::Decimal256(..)
                | DataType::Date32
                | DataType::Date64
                | DataType::Time32(_)
                | DataType::Time64(_)
                | DataType::Timestamp(..)
        );
    if !ordered {
        return None;
    }
    let value = ScalarValue::Utf8(Some(text.trim().to_string()))
        .cast_to(data_type)
        .ok()?;
    let finite = match &value {
        ScalarValue::Float16(Some(v)) => v.is_finite(),
        ScalarValue::Float32(Some(v)) => v.is_finite(),
        ScalarValue::Float64(Some(v)) => v.is_finite(),
        other => !other.is_null(),
    };
    finite.then_some(value)
}

/// The smallest and the largest of `values` (of one type).
pub fn extremes(
    values: impl IntoIterator<Item = ScalarValue>,
) -> (Option<ScalarValue>, Option<ScalarValue>) {
    let mut min: Option<ScalarValue> = None;
    let mut max: Option<ScalarValue> = None;
    for value in values {
        if min
            .as_ref()
            .is_none_or(|m| value.partial_cmp(m) == Some(Ordering::Less))
        {
            min = Some(value.clone());
        }
        if max
            .as_ref()
            .is_none_or(|m| value.partial_cmp(m) == Some(Ordering::Greater))
        {
            max = Some(value);
        }
    }
    (min, max)
}

/// The column `expr` passes on unchanged (under an alias or not).
fn column_of(expr: &Expr) -> Option<&datafusion::common::Column> {
    match expr {
        Expr::Column(column) => Some(column),
        Expr::Alias(alias) => column_of(&alias.expr),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::TimeUnit;

    #[test]
    fn bounds_parse_for_ordered_types_only() {
        assert_eq!(
            bound_from_text(" 42 ", &DataType::Int32),
            Some(ScalarValue::Int32(Some(42)))
        );
        assert_eq!(
            bound_from_text("1998-12-01", &DataType::Date32),
            Some(ScalarValue::Date32(Some(10561)))
        );
        assert_eq!(
            bound_from_text("12.50", &DataType::Decimal128(15, 2)),
            Some(ScalarValue::Decimal128(Some(1250), 15, 2))
        );
        assert!(
            bound_from_text(
                "1998-12-01 10:00:00",
                &DataType::Timestamp(TimeUnit::Microsecond, None)
            )
            .is_some()
        );
        assert_eq!(bound_from_text("abc", &DataType::Utf8), None);
        assert_eq!(bound_from_text("abc", &DataType::Int64), None);
        assert_eq!(bound_from_text("NaN", &DataType::Float64), None);
        let (min, max) = extremes([3, 1, 2].map(|v| ScalarValue::Int64(Some(v))));
        assert_eq!(min, Some(ScalarValue::Int64(Some(1))));
        assert_eq!(max, Some(ScalarValue::Int64(Some(3))));
    }

    #[test]
    fn keeping_a_share_of_the_rows_scales_counts_and_keeps_bounds() {
        let column = ColumnStatistics::new_unknown()
            .with_null_count(Precision::Inexact(100))
            .with_distinct_count(Precision::Inexact(500))
            .with_min_value(Precision::Exact(ScalarValue::Int64(Some(1))))
            .with_max_value(Precision::Inexact(ScalarValue::Int64(Some(9))))
            .with_byte_size(Precision::Inexact(8_000));
        let statistics = Statistics {
            num_rows: Precision::Inexact(1_000),
            total_byte_size: Precision::Inexact(8_000),
            column_statistics: vec![column],
        };
        let kept = keep_rows(&statistics, 200);
        assert_eq!(kept.num_rows, Precision::Inexact(200));
        assert_eq!(kept.total_byte_size, Precision::Inexact(1_600));
        let column = &kept.column_statistics[0];
        assert_eq!(column.null_count, Precision::Inexact(20));
        assert_eq!(column.distinct_count, Precision::Inexact(200));
        assert_eq!(
            column.min_value,
            Precision::Inexact(ScalarValue::Int64(Some(1)))
        );
        assert_eq!(
            column.max_value,
            Precision::Inexact(ScalarValue::Int64(Some(9)))
        );
        assert_eq!(column.byte_size, Precision::Inexact(1_600));
    }
}
