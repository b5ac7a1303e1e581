//! How many rows a sub-plan returns and how wide they are: a table's rows from its source, a
//! fixed share per kind of condition (or the share of the table's sample that passes), a join's
//! rows from the domains of its keys, an aggregate's from its groups.

use super::{Estimate, UNKNOWN_TABLE_ROWS, having};
use crate::table::{FederatedTable, column_origin, unqualified};
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DFSchema, JoinType};
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, FetchType, Filter, LogicalPlan, Operator};
use datafusion::physical_expr::create_physical_expr;

/// The rows of the one table `plan` reads through filters, projections and aliases.
pub(super) fn scanned_rows(plan: &LogicalPlan) -> f64 {
    match plan {
        LogicalPlan::TableScan(_) => table_rows(plan),
        _ => plan
            .inputs()
            .first()
            .map_or(UNKNOWN_TABLE_ROWS, |input| scanned_rows(input)),
    }
}

/// The rows of the table a scan reads (before its filters).
pub(super) fn table_rows(plan: &LogicalPlan) -> f64 {
    match plan {
        LogicalPlan::TableScan(scan) => FederatedTable::of_scan(scan)
            .and_then(|table| table.remote().row_estimate)
            .map_or(UNKNOWN_TABLE_ROWS, |rows| rows as f64),
        _ => UNKNOWN_TABLE_ROWS,
    }
}

/// The rows a cross or non-equi join compares.
pub(super) fn nested_loop_rows(plan: &LogicalPlan, inputs: &[Estimate]) -> f64 {
    match plan {
        LogicalPlan::Join(join) if join.on.is_empty() => inputs[0].rows * inputs[1].rows,
        _ => 0.0,
    }
}

/// The estimated rows of `plan`'s result, from its inputs' estimates.
pub fn output_rows(plan: &LogicalPlan, inputs: &[Estimate]) -> f64 {
    let input = inputs.first().map_or(1.0, |input| input.rows);
    let rows = match plan {
        LogicalPlan::TableScan(scan) => {
            let share = FederatedTable::of_scan(scan)
                .and_then(|table| sampled_share(table.sample()?, &scan.filters))
                .unwrap_or_else(|| scan.filters.iter().map(selectivity).product::<f64>());
            let rows = table_rows(plan) * share;
            scan.fetch.map_or(rows, |fetch| rows.min(fetch as f64))
        }
        LogicalPlan::Filter(filter) => {
            input * sampled_having(filter).unwrap_or_else(|| selectivity(&filter.predicate))
        }
        LogicalPlan::Limit(limit) => match limit.get_fetch_type() {
            Ok(FetchType::Literal(Some(fetch))) => input.min(fetch as f64),
            _ => input,
        },
        LogicalPlan::Sort(sort) => sort.fetch.map_or(input, |fetch| input.min(fetch as f64)),
        LogicalPlan::Aggregate(aggregate) if aggregate.group_expr.is_empty() => 1.0,
        LogicalPlan::Aggregate(aggregate) => groups(&aggregate.input, &aggregate.group_expr, input),
        LogicalPlan::Distinct(_) => groups_unknown(input),
        LogicalPlan::Join(join) => join_rows(join, inputs[0].rows, inputs[1].rows),
        LogicalPlan::Union(_) => inputs.iter().map(|input| input.rows).sum(),
        LogicalPlan::Values(values) => values.values.len() as f64,
        LogicalPlan::EmptyRelation(empty) => f64::from(u8::from(empty.produce_one_row)),
        _ => input,
    };
    rows.max(1.0)
}

/// The share of groups a `HAVING` condition keeps (`filter` over an aggregate of one table),
/// estimated from the table's sample ([`having`]).
fn sampled_having(filter: &Filter) -> Option<f64> {
    let LogicalPlan::Aggregate(aggregate) = filter.input.as_ref() else {
        return None;
    };
    let LogicalPlan::TableScan(scan) = aggregate.input.as_ref() else {
        return None;
    };
    let sample = FederatedTable::of_scan(scan)?.sample()?;
    let passed = having::filtered(sample, &scan.filters)?;
    if passed.num_rows() == 0 {
        return None;
    }
    let rows = table_rows(&aggregate.input) * passed.num_rows() as f64 / sample.num_rows() as f64;
    let groups = match aggregate.group_expr.is_empty() {
        true => 1.0,
        false => groups(&aggregate.input, &aggregate.group_expr, rows),
    };
    Some(having::share(
        &filter.predicate,
        aggregate,
        &passed,
        rows / groups,
    ))
}

/// Groups of an aggregate by `keys` over `rows` rows of `input`: where the sources' statistics
/// give every key column's distinct values, their product (the keys taken as independent),
/// at most `rows`; otherwise a tenth of the rows.
pub(super) fn groups(input: &LogicalPlan, keys: &[Expr], rows: f64) -> f64 {
    let distinct: Option<f64> = keys.iter().map(|key| key_distinct(input, key)).product();
    match distinct {
        Some(groups) => groups.clamp(1.0, rows.max(1.0)),
        None => groups_unknown(rows),
    }
}

/// Groups over `rows` rows without statistics: a tenth of them (DataFusion has no better
/// guess without distinct counts either).
fn groups_unknown(rows: f64) -> f64 {
    (rows / 10.0).max(1.0)
}

/// Rows of an equi-join: `left × right / domain`. Where the sources' statistics give both
/// keys' distinct values, the domain is the larger of the two (each value of the side with
/// fewer is taken to find its match); otherwise the size of the smaller of the tables the keys
/// come from (the key taken as unique there, as a foreign key references a primary key).
/// A key of several columns takes the product of their domains, at most the rows of the
/// smallest table its columns come from (a composite foreign key referencing a composite
/// primary key: TPC-H q9's lines find one partsupp row each, not one in 10 k suppliers' worth)
/// and at least the largest column's. Semi and anti joins keep half the left side.
fn join_rows(join: &datafusion::logical_expr::Join, left: f64, right: f64) -> f64 {
    let column_domain = |(l, r): &(Expr, Expr)| -> Option<f64> {
        let domain = match (key_distinct(&join.left, l), key_distinct(&join.right, r)) {
            (Some(l), Some(r)) => l.max(r),
            _ => key_domain(&join.left, l)
                .into_iter()
                .chain(key_domain(&join.right, r))
                .fold(f64::INFINITY, f64::min),
        };
        domain.is_finite().then_some(domain)
    };
    let inner = match join.on.as_slice() {
        [] => left * right * if join.filter.is_some() { 0.33 } else { 1.0 },
        [pair] => left * right / column_domain(pair).unwrap_or(left.max(right)).max(1.0),
        pairs => {
            let domains: Vec<f64> = pairs.iter().filter_map(column_domain).collect();
            let smallest_table = pairs
                .iter()
                .flat_map(|(l, r)| [key_domain(&join.left, l), key_domain(&join.right, r)])
                .flatten()
                .fold(f64::INFINITY, f64::min);
            let domain = composite_domain(&domains, smallest_table).unwrap_or(left.max(right));
            left * right / domain.max(1.0)
        }
    };
    match join.join_type {
        JoinType::Inner => inner,
        JoinType::Left => inner.max(left),
        JoinType::Right => inner.max(right),
        JoinType::Full => inner.max(left + right),
        JoinType::LeftSemi => left * matched_share(&join.left, &join.right, join.on.first(), right),
        JoinType::RightSemi => {
            let on = join.on.first().map(|(l, r)| (r.clone(), l.clone()));
            right * matched_share(&join.right, &join.left, on.as_ref(), left)
        }
        JoinType::LeftAnti => left * 0.5,
        JoinType::RightAnti => right * 0.5,
        JoinType::LeftMark => left,
        JoinType::RightMark => right,
    }
}

/// The values a key of several columns can take, from its columns' `domains` (those known):
/// their product, at most the rows of the smallest table the columns come from, at least the
/// largest column's domain. `None` when no column's domain is known.
pub(super) fn composite_domain(domains: &[f64], smallest_table: f64) -> Option<f64> {
    let largest = domains.iter().copied().reduce(f64::max)?;
    Some(
        domains
            .iter()
            .product::<f64>()
            .min(smallest_table)
            .max(largest),
    )
}

/// The share of the preserved side's rows a semi join keeps: the other side's distinct keys
/// over the distinct values the preserved side's key can take (each of the other side's keys
/// taken to find its match), at most all; half where either is unknown. `on`: the preserved
/// side's key, then the other's.
fn matched_share(
    preserved: &LogicalPlan,
    other: &LogicalPlan,
    on: Option<&(Expr, Expr)>,
    other_rows: f64,
) -> f64 {
    let Some((key, other_key)) = on else {
        return 0.5;
    };
    let keys = key_distinct(other, other_key).map_or(other_rows, |d| d.min(other_rows));
    match key_distinct(preserved, key).or_else(|| key_domain(preserved, key)) {
        Some(domain) if domain >= 1.0 => (keys / domain).min(1.0),
        _ => 0.5,
    }
}

/// How many distinct values a join key can take: the rows of the table it comes from.
pub(super) fn key_domain(plan: &LogicalPlan, key: &Expr) -> Option<f64> {
    let (table, _) = origin_of(plan, key)?;
    table.remote().row_estimate.map(|rows| rows as f64)
}

/// The distinct values of the table column `key` comes from, where its source's statistics
/// say.
pub(super) fn key_distinct(plan: &LogicalPlan, key: &Expr) -> Option<f64> {
    let (table, c) = origin_of(plan, key)?;
    table.remote().column_estimate(c)?.distinct
}

/// The table and column `key` (a column of `plan`'s result) comes from unchanged.
fn origin_of<'a>(plan: &'a LogicalPlan, key: &Expr) -> Option<(&'a FederatedTable, usize)> {
    let Expr::Column(column) = key else {
        return None;
    };
    let i = plan.schema().maybe_index_of_column(column)?;
    column_origin(plan, i)
}

/// The share of `sample`'s rows that pass every one of `filters` (conditions on the sampled
/// table's columns), a little above zero when none does (the sample is small); `None` when a
/// condition cannot be evaluated on it.
fn sampled_share(sample: &RecordBatch, filters: &[Expr]) -> Option<f64> {
    if filters.is_empty() {
        return Some(1.0);
    }
    if sample.num_rows() == 0 {
        return None;
    }
    let passed = passing(sample, filters)?.true_count();
    Some((passed as f64 + 0.5) / (sample.num_rows() as f64 + 1.0))
}

/// Which of `sample`'s rows pass every one of `filters`.
pub(super) fn passing(sample: &RecordBatch, filters: &[Expr]) -> Option<BooleanArray> {
    let condition = conjunction(filters.iter().map(unqualified))?;
    let passed = evaluate(sample, &condition)?;
    passed.as_any().downcast_ref::<BooleanArray>().cloned()
}

/// `expr` (over the sampled table's columns, qualified or not) evaluated on `sample`.
pub(super) fn evaluate(sample: &RecordBatch, expr: &Expr) -> Option<ArrayRef> {
    let schema = DFSchema::try_from(sample.schema_ref().as_ref().clone()).ok()?;
    create_physical_expr(
        &unqualified(expr),
        &schema,
        &ExecutionProps::new(),
        &PhysicalPlanningContext::default(),
    )
    .ok()?
    .evaluate(sample)
    .ok()?
    .into_array(sample.num_rows())
    .ok()
}

/// The share of rows a condition keeps (fixed guesses per kind, as DataFusion and PostgreSQL
/// use without statistics).
pub fn selectivity(predicate: &Expr) -> f64 {
    match predicate {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And => selectivity(left) * selectivity(right),
            Operator::Or => (selectivity(left) + selectivity(right)).min(1.0),
            Operator::Eq => 0.1,
            Operator::NotEq => 0.9,
            Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq => 0.33,
            _ => 0.5,
        },
        Expr::Like(like) => {
            if like.negated {
                0.9
            } else {
                0.1
            }
        }
        Expr::InList(list) => {
            let share = (0.1 * list.list.len() as f64).min(0.5);
            if list.negated { 1.0 - share } else { share }
        }
        Expr::Between(between) => {
            if between.negated {
                0.9
            } else {
                0.11
            }
        }
        Expr::IsNull(_) => 0.1,
        Expr::IsNotNull(_) => 0.9,
        Expr::Not(inner) => 1.0 - selectivity(inner),
        Expr::Alias(alias) => selectivity(&alias.expr),
        _ => 0.5,
    }
}

/// Bytes per row of `plan`'s result, from its column types.
pub(super) fn row_width(plan: &LogicalPlan) -> f64 {
    fields_width(plan.schema().fields()).max(1.0)
}

/// Bytes of a row of `fields`, by their types.
pub(super) fn fields_width(fields: &datafusion::arrow::datatypes::Fields) -> f64 {
    fields
        .iter()
        .map(|field| type_width(field.data_type()))
        .sum()
}

fn type_width(data_type: &DataType) -> f64 {
    match data_type {
        DataType::Boolean | DataType::Int8 | DataType::UInt8 => 1.0,
        DataType::Int16 | DataType::UInt16 | DataType::Float16 => 2.0,
        DataType::Int32 | DataType::UInt32 | DataType::Float32 | DataType::Date32 => 4.0,
        DataType::Decimal128(..) => 16.0,
        DataType::Decimal256(..) => 32.0,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => 24.0,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => 32.0,
        _ => 8.0,
    }
}
