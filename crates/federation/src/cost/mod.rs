//! Push or pull: what a sub-plan costs run in its database and sent here, against its inputs
//! sent here and the sub-plan run in DataFusion.
//!
//! ```text
//!  sub-plan N, all of it in source S (children c₁ … cₖ)
//!    pushed(N) = S runs N (EngineCosts of S's dialect) + S sends N's rows
//!    split(N)  = Σ best(cᵢ) + DataFusion runs N's own operator over their rows
//!    best(N)   = min(pushed, split)            (pushdown = all: always pushed)
//! ```
//!
//! Estimates are rows and bytes per row, bottom-up: table row counts from the source (its
//! statistics or a cheap probe), a fixed selectivity per kind of condition, a join's rows from
//! the sizes of the tables its keys come from (the key of the smaller table taken as unique, as
//! for a foreign key). They are rough; what matters is that they are rough the same way on both
//! sides of each comparison. Engines without hash joins (SQLite, MySQL) join through an index
//! when one leads with the join key — a lookup per outer row — and otherwise build a temporary
//! index; DataFusion hashes everything, on `target_partitions` cores.

mod having;
mod rows;
#[cfg(test)]
mod tests;

use rows::{
    fields_width, key_distinct, key_domain, nested_loop_rows, row_width, scanned_rows, table_rows,
};
pub use rows::{output_rows, selectivity};

use crate::dialect::EngineCosts;
use crate::table::{FederatedTable, key_in_storage_order, key_is_indexed};
use datafusion::common::JoinType;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Aggregate, Expr, LogicalPlan};

/// What DataFusion takes per unit of work on one core. Not measured yet: assumed figures
/// (about 20 M rows a second per core into or out of a hash table, 25 M aggregated), small
/// next to any remote engine's, so that fetching rows dominates the cost of running a part
/// here. Measuring them (`flotilla bench tpch` on Parquet, per operator) is open work.
pub const LOCAL: EngineCosts = EngineCosts {
    scan_row: 1e-8,
    // Measured: `o_comment NOT LIKE '%special%requests%'` over TPC-H SF 1 orders' 1.5 M rows
    // in Parquet, one partition, 0.08 s beyond `sum(length(o_comment))`.
    match_row: 5e-8,
    probe: 5e-8,
    cache_bytes: f64::INFINITY,
    page_read: 0.0,
    hash_row: 5e-8,
    hash_cache_bytes: f64::INFINITY,
    hash_miss: 0.0,
    serial_big_aggregate: false,
    hash_joins: true,
    aggregate_row: 4e-8,
    sort_row: 1e-8,
    hash_aggregates: true,
    fetch_row: 0.0,
    fetch_byte: 0.0,
    statement: 0.0,
    serial_factor: 1.0,
    serial_outer_hash: false,
};

/// The estimated size of a sub-plan's result and, run in its source, its cost there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub rows: f64,
    /// Bytes per row.
    pub width: f64,
    /// Seconds the source takes to compute it (not counting sending it).
    pub remote: f64,
    /// Whether the source runs it serially although it runs most plans in parallel
    /// ([`EngineCosts::serial_factor`]): so does every plan above it in the same statement.
    pub serial: bool,
}

impl Estimate {
    /// Seconds to send the result to Flotilla and decode it.
    pub fn fetch(&self, costs: &EngineCosts) -> f64 {
        costs.statement + self.rows * (costs.fetch_row + self.width * costs.fetch_byte)
    }

    /// Seconds to run it in the source and read its result.
    pub fn pushed(&self, costs: &EngineCosts) -> f64 {
        self.remote + self.fetch(costs)
    }
}

/// Rows of a table whose source gives no estimate.
const UNKNOWN_TABLE_ROWS: f64 = 1_000_000.0;

/// The estimate of `plan` run whole in a source with `costs`; `inputs` are the estimates of
/// its inputs (in order).
pub fn estimate(plan: &LogicalPlan, inputs: &[Estimate], costs: &EngineCosts) -> Estimate {
    let rows = output_rows(plan, inputs);
    let width = row_width(plan);
    let below: f64 = inputs.iter().map(|input| input.remote).sum();
    let remote = match plan {
        LogicalPlan::TableScan(scan) => {
            let matches: usize = scan.filters.iter().map(pattern_matches).sum();
            table_rows(plan) * (costs.scan_row + matches as f64 * costs.match_row)
        }
        LogicalPlan::Join(join) => {
            let (left, right) = (inputs[0], inputs[1]);
            remote_join(join, left, right, rows, costs)
        }
        LogicalPlan::Aggregate(aggregate) => match index_order_read(aggregate, costs) {
            Some(per_row) => {
                let input: f64 = inputs.iter().map(|input| input.rows).sum();
                below + scanned_rows(&aggregate.input) * per_row + input * costs.aggregate_row
            }
            None => below + operator_cost(plan, inputs, rows, costs),
        },
        _ => below + operator_cost(plan, inputs, rows, costs),
    };
    // An outer join hashing its preserved side runs serially with its inputs; a big
    // aggregate alone (its inputs' parallel plans gathered below it); and so does all above
    // either in the same statement.
    let with_inputs = hashes_preserved_side(plan, inputs, costs);
    let serial = with_inputs
        || inputs.iter().any(|input| input.serial)
        || (costs.serial_big_aggregate
            && costs.hash_aggregates
            && missed_groups(plan, rows, costs) > 0.0);
    let remote = match serial {
        // What was priced as a parallel plan takes longer.
        true => {
            let below_serial: f64 = inputs
                .iter()
                .map(|input| match with_inputs && !input.serial {
                    true => input.remote * costs.serial_factor,
                    false => input.remote,
                })
                .sum();
            below_serial + (remote - below) * costs.serial_factor
        }
        false => remote,
    };
    Estimate {
        rows,
        width,
        remote,
        serial,
    }
}

/// Bytes a hash table takes per entry besides the row's own columns: PostgreSQL's hash join
/// holds 150 k customer keys in 7.9 MB, 53 bytes an entry (`EXPLAIN ANALYZE` of TPC-H q13's
/// join at SF 1).
const HASH_ENTRY_BYTES: f64 = 48.0;

/// For an aggregate with grouping keys of `groups` groups, the share of its hash table beyond
/// the engine's `hash_cache_bytes` (0 when it fits, or for anything else).
fn missed_groups(plan: &LogicalPlan, groups: f64, costs: &EngineCosts) -> f64 {
    let LogicalPlan::Aggregate(aggregate) = plan else {
        return 0.0;
    };
    if aggregate.group_expr.is_empty() {
        return 0.0;
    }
    let bytes = groups * (row_width(plan) + HASH_ENTRY_BYTES);
    match bytes > costs.hash_cache_bytes {
        true => 1.0 - costs.hash_cache_bytes / bytes,
        false => 0.0,
    }
}

/// Whether `plan` is an outer join an engine with [`EngineCosts::serial_outer_hash`] runs
/// serially: it hashes the smaller side, and that is the side whose rows all stay (a full
/// join: either). PostgreSQL 15 runs TPC-H q13 (`customer LEFT JOIN orders`, customer's 150 k
/// rows hashed) as a serial plan in 1.6 s at SF 1, the join and the grouping above it at
/// 0.2 and 0.4 µs a row, twice `EngineCosts::SERVER`'s figures.
fn hashes_preserved_side(plan: &LogicalPlan, inputs: &[Estimate], costs: &EngineCosts) -> bool {
    let LogicalPlan::Join(join) = plan else {
        return false;
    };
    if !costs.serial_outer_hash || !costs.hash_joins || join.on.is_empty() {
        return false;
    }
    let bytes = |input: &Estimate| input.rows * input.width;
    match join.join_type {
        JoinType::Left => bytes(&inputs[0]) <= bytes(&inputs[1]),
        JoinType::Right => bytes(&inputs[1]) <= bytes(&inputs[0]),
        JoinType::Full => true,
        _ => false,
    }
}

/// Per row, what reading `aggregate`'s table in the order of an index on its first grouping
/// key costs, when the engine groups that way rather than sorting or hashing (`None`: it does
/// not). Grouped by a column an index of the table leads with, an engine that groups by
/// sorting reads the table in index order instead: no sort, but a lookup per row (SQLite's
/// plan for q15 — `SCAN lineitem USING INDEX lineitem_l_suppkey`, twice — is why it runs
/// 40 s). Unless the table is stored in about that order: then the lookups read it front to
/// back (q18's GROUP BY l_orderkey, 1.7 s at SF 1).
fn index_order_read(aggregate: &Aggregate, costs: &EngineCosts) -> Option<f64> {
    if costs.hash_aggregates || !is_table(&aggregate.input) {
        return None;
    }
    let key = aggregate.group_expr.first()?;
    if !key_is_indexed(&aggregate.input, key) {
        return None;
    }
    Some(if key_in_storage_order(&aggregate.input, key) {
        costs.scan_row
    } else {
        lookup(&aggregate.input, costs)
    })
}

/// Seconds DataFusion takes to run `plan`'s own operator over inputs of the given sizes, on
/// `cores` cores.
pub fn local(plan: &LogicalPlan, inputs: &[Estimate], cores: usize) -> f64 {
    let rows = output_rows(plan, inputs);
    let cost = match plan {
        LogicalPlan::Join(_) => {
            (inputs[0].rows + inputs[1].rows + rows) * LOCAL.hash_row
                + nested_loop_rows(plan, inputs) * LOCAL.scan_row
        }
        _ => operator_cost(plan, inputs, rows, &LOCAL),
    };
    cost / cores.max(1) as f64
}

/// The work of one operator other than a scan or a join: per input row, by kind.
fn operator_cost(plan: &LogicalPlan, inputs: &[Estimate], rows: f64, costs: &EngineCosts) -> f64 {
    let input: f64 = inputs.iter().map(|input| input.rows).sum();
    let sort = |n: f64| n * n.max(2.0).log2() * costs.sort_row;
    match plan {
        LogicalPlan::Aggregate(aggregate) => {
            let grouping = if aggregate.group_expr.is_empty() || costs.hash_aggregates {
                input * (costs.hash_row + missed_groups(plan, rows, costs) * costs.hash_miss)
            } else {
                sort(input)
            };
            input * costs.aggregate_row + grouping
        }
        LogicalPlan::Distinct(_) => {
            if costs.hash_aggregates {
                input * costs.hash_row
            } else {
                sort(input)
            }
        }
        LogicalPlan::Sort(sort_plan) => match sort_plan.fetch {
            Some(fetch) => input * (fetch.max(2) as f64).log2() * costs.sort_row,
            None => sort(input),
        },
        LogicalPlan::Window(_) => sort(input) + input * costs.aggregate_row,
        LogicalPlan::Union(_) => rows * costs.scan_row,
        LogicalPlan::Filter(filter) => {
            input
                * (costs.scan_row * 0.1
                    + pattern_matches(&filter.predicate) as f64 * costs.match_row)
        }
        _ => input * costs.scan_row * 0.1,
    }
}

/// The text patterns (`LIKE`, `ILIKE`, `SIMILAR TO`) `expr` evaluates per row: each costs
/// [`EngineCosts::match_row`].
pub fn pattern_matches(expr: &Expr) -> usize {
    let mut matches = 0;
    let _ = expr.apply(|e| {
        if matches!(e, Expr::Like(_) | Expr::SimilarTo(_)) {
            matches += 1;
        }
        Ok(TreeNodeRecursion::Continue)
    });
    matches
}

/// A join in the source: through an index on one side's key (a lookup per row of the other),
/// else a hash join or a temporary index.
fn remote_join(
    join: &datafusion::logical_expr::Join,
    left: Estimate,
    right: Estimate,
    rows: f64,
    costs: &EngineCosts,
) -> f64 {
    if join.on.is_empty() {
        return left.remote + right.remote + left.rows * right.rows * costs.scan_row;
    }
    let hashed = left.remote + right.remote + (left.rows + right.rows + rows) * costs.hash_row;
    if costs.hash_joins {
        return hashed;
    }
    // An indexed table on the inner side is not scanned: each outer row looks up its matches.
    // Which side is outer is the database's choice; one without statistics (SQLite not
    // analyzed) drives the join from the side with the bigger table and looks the other up —
    // its plan for q9 scans lineitem's 6 M rows and looks part, supplier, partsupp, orders and
    // nation up for each (12 s), although a fifth of part's rows pass their filter. Outer
    // joins and semi joins are driven by their preserved side.
    let left_outer = || {
        through(
            left,
            &join.right,
            join.on.iter().map(|(_, r)| r),
            rows,
            costs,
        )
    };
    let right_outer = || {
        through(
            right,
            &join.left,
            join.on.iter().map(|(l, _)| l),
            rows,
            costs,
        )
    };
    let driven = match join.join_type {
        JoinType::Inner if largest_table(&join.right) > largest_table(&join.left) => {
            right_outer().or_else(left_outer)
        }
        JoinType::Inner => left_outer().or_else(right_outer),
        JoinType::LeftSemi => {
            let (by_rows, by_list) = semi_join_ways(join, left, right, rows, costs);
            cheapest(by_rows, by_list)
        }
        JoinType::RightSemi => cheapest(
            right_outer(),
            from_list(
                right,
                &join.right,
                join.on.first().map(|(_, r)| r),
                left,
                costs,
            ),
        ),
        JoinType::Left | JoinType::LeftAnti | JoinType::LeftMark => left_outer(),
        JoinType::Right | JoinType::RightAnti | JoinType::RightMark => right_outer(),
        JoinType::Full => None,
    };
    if let Some(cost) = driven {
        return cost;
    }
    // Without an index: a temporary index on the smaller side, then a lookup per outer row —
    // for tables and joins of tables, and for the subquery of a semi or anti join (its result
    // is materialized with an index). A derived table (an aggregate, a union) joined to
    // something else is taken to be rescanned for every outer row — an assumption on the
    // safe side, not a measurement (SQLite may build an automatic index instead).
    let (small, big) = if left.rows <= right.rows {
        (left, right)
    } else {
        (right, left)
    };
    let semi = matches!(
        join.join_type,
        JoinType::LeftSemi | JoinType::LeftAnti | JoinType::RightSemi | JoinType::RightAnti
    );
    let unserved = if semi || (!is_derived(&join.left) && !is_derived(&join.right)) {
        small.rows * small.rows.max(2.0).log2() * costs.hash_row + (big.rows + rows) * costs.probe
    } else {
        left.rows * right.rows * costs.scan_row
    };
    left.remote + right.remote + unserved
}

/// A join driven by `outer`, each of its rows looking its matches up in `inner` through an
/// index on one of `keys` (`None`: `inner` is not a table with such an index).
fn through<'a>(
    outer: Estimate,
    inner: &LogicalPlan,
    mut keys: impl Iterator<Item = &'a Expr>,
    rows: f64,
    costs: &EngineCosts,
) -> Option<f64> {
    let indexed = keys.any(|key| key_is_indexed(inner, key));
    (indexed && is_table(inner)).then(|| outer.remote + (outer.rows + rows) * lookup(inner, costs))
}

/// One index lookup into the table `plan` reads: `probe`, and a page read for the share of
/// the table the engine's memory does not hold. MariaDB with its default 128 MB buffer pool
/// looks 727 k TPC-H SF 1 orders up in customer (30 MB) in 1.6 s, and the 147 k of them that
/// pass q3's filters up in lineitem (826 MB) in 4.5 s, although that finds only 590 k rows.
fn lookup(plan: &LogicalPlan, costs: &EngineCosts) -> f64 {
    let bytes = table_bytes(plan);
    let missed = if bytes > costs.cache_bytes {
        1.0 - costs.cache_bytes / bytes
    } else {
        0.0
    };
    costs.probe + missed * costs.page_read
}

/// The bytes of the one table `plan` reads through filters, projections and aliases: its rows
/// times the width of all its columns, or what its source says where that is more (text
/// columns wider than the guess). Never less: a size the database has not updated since the
/// table was loaded says one page (InnoDB's `DATA_LENGTH` of 16 KB after `LOAD DATA`).
fn table_bytes(plan: &LogicalPlan) -> f64 {
    match plan {
        LogicalPlan::TableScan(scan) => {
            let width = fields_width(scan.source.schema().fields());
            let said = FederatedTable::of_scan(scan)
                .and_then(|table| table.remote().bytes)
                .map_or(0.0, |bytes| bytes as f64);
            (table_rows(plan) * width).max(said)
        }
        _ => plan
            .inputs()
            .first()
            .map_or(0.0, |input| table_bytes(input)),
    }
}

/// Whether a semi join in an engine without hash joins runs faster driven by its list of keys
/// (written `x IN (SELECT y …)`, [`from_list`]) than by the preserved side's rows, each looking
/// its match up (written `EXISTS (… WHERE x = y)`): the cheaper of the two ways
/// [`estimate`] weighs for it. SQLite runs each form that way — TPC-H q20's partsupp rows of
/// 2,000 'forest' parts take 0.02 s as `ps_partkey IN (…)` and 0.27 s as `EXISTS` at SF 1,
/// while q4's orders of one quarter, looking up their lines, take 0.46 s as `EXISTS` and 1.5 s
/// as an `IN` list of the 3.8 M late lines.
pub fn semi_join_by_list(plan: &LogicalPlan, inputs: &[Estimate], costs: &EngineCosts) -> bool {
    let LogicalPlan::Join(join) = plan else {
        return false;
    };
    if costs.hash_joins || join.join_type != JoinType::LeftSemi || inputs.len() != 2 {
        return false;
    }
    let rows = output_rows(plan, inputs);
    match semi_join_ways(join, inputs[0], inputs[1], rows, costs) {
        (Some(by_rows), Some(by_list)) => by_list < by_rows,
        (_, by_list) => by_list.is_some(),
    }
}

/// What a left semi join costs in an engine without hash joins, where each way is possible:
/// driven by the preserved (left) side's rows, each looking its match up on the right, and
/// driven by the right side's list of keys, each looking its rows up on the left.
fn semi_join_ways(
    join: &datafusion::logical_expr::Join,
    left: Estimate,
    right: Estimate,
    rows: f64,
    costs: &EngineCosts,
) -> (Option<f64>, Option<f64>) {
    let by_rows = through(
        left,
        &join.right,
        join.on.iter().map(|(_, r)| r),
        rows,
        costs,
    );
    let by_list = from_list(
        left,
        &join.left,
        join.on.first().map(|(l, _)| l),
        right,
        costs,
    );
    (by_rows, by_list)
}

/// The cheaper of two ways, where there is one.
fn cheapest(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A semi join driven by its list: the other side is computed first and kept as a sorted list
/// of keys, and each key is looked up in the preserved side's tables through the index its
/// key column has — SQLite's plan for q18's `o_orderkey IN (SELECT l_orderkey … HAVING …)`
/// looks up the 57 orders the subquery finds, then their customers and lines, instead of
/// joining all of lineitem to orders. `None` when the preserved key has no index.
fn from_list(
    preserved: Estimate,
    preserved_plan: &LogicalPlan,
    key: Option<&Expr>,
    list: Estimate,
    costs: &EngineCosts,
) -> Option<f64> {
    let key = key?;
    if !key_is_indexed(preserved_plan, key) {
        return None;
    }
    let domain = key_distinct(preserved_plan, key).or_else(|| key_domain(preserved_plan, key))?;
    let reached = preserved.rows * (list.rows / domain.max(1.0)).min(1.0);
    let tables = tables(preserved_plan) as f64;
    Some(
        list.remote
            + list.rows * list.rows.max(2.0).log2() * costs.hash_row
            + (list.rows + reached) * tables * costs.probe,
    )
}

/// The table scans in `plan`.
fn tables(plan: &LogicalPlan) -> usize {
    match plan {
        LogicalPlan::TableScan(_) => 1,
        _ => plan.inputs().into_iter().map(tables).sum(),
    }
}

/// Whether `plan` is a derived table: its rows come out of an aggregate, a union, a window or
/// a limit rather than from tables and joins of them.
fn is_derived(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::TableScan(_) => false,
        LogicalPlan::Filter(_)
        | LogicalPlan::Projection(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Sort(_) => is_derived(plan.inputs()[0]),
        LogicalPlan::Join(join) => is_derived(&join.left) || is_derived(&join.right),
        _ => true,
    }
}

/// Whether `plan` reads one table through filters, projections and aliases only (so an index
/// of the table can serve lookups into it).
fn is_table(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::TableScan(scan) => FederatedTable::of_scan(scan).is_some(),
        LogicalPlan::Filter(_) | LogicalPlan::Projection(_) | LogicalPlan::SubqueryAlias(_) => {
            is_table(plan.inputs()[0])
        }
        _ => false,
    }
}

/// The rows of the biggest table `plan` reads.
fn largest_table(plan: &LogicalPlan) -> f64 {
    match plan {
        LogicalPlan::TableScan(_) => table_rows(plan),
        _ => plan
            .inputs()
            .into_iter()
            .map(largest_table)
            .fold(0.0, f64::max),
    }
}
