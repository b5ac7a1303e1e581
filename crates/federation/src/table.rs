//! `FederatedTable`: a remote table as described, with its sample, and where a plan's columns
//! come from. It is DataFusion's table for the remote one; that side (scans of the table alone,
//! `INSERT INTO`) is in `provider.rs`.

use crate::source::{RemoteTable, Source, WriteTarget};
use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, JoinType};
use datafusion::datasource::{DefaultTableSource, TableType};
use datafusion::logical_expr::expr::Alias;
use datafusion::logical_expr::{Expr, LogicalPlan, TableScan};
use futures::TryStreamExt;
use std::any::Any;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// A table of a [`Source`]. The federation planner recognizes scans of it and pushes the plan
/// above them into the source; scanned on its own it reads with one SQL statement carrying the
/// projection, the filters the dialect can express exactly, and the limit.
#[derive(Debug)]
pub struct FederatedTable {
    source: Arc<dyn Source>,
    remote: RemoteTable,
    /// Rows spread over the table, read once when a cost-based cut first needs them (`None`
    /// inside: the source has no cheap way, or reading failed).
    sample: OnceLock<Option<RecordBatch>>,
}

/// How many rows a table's sample has.
pub const SAMPLE_ROWS: usize = 1_000;

/// How long reading a sample may take before the cut guesses instead.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(2);

impl FederatedTable {
    pub fn new(source: Arc<dyn Source>, remote: RemoteTable) -> Self {
        Self {
            source,
            remote,
            sample: OnceLock::new(),
        }
    }

    /// The table's sample, if it was read ([`Self::load_sample`]) and the source has one.
    pub fn sample(&self) -> Option<&RecordBatch> {
        self.sample.get()?.as_ref()
    }

    /// Reads the table's sample, once; a failure or a slow source leaves none (never an error:
    /// the sample only sharpens estimates).
    pub async fn load_sample(&self) {
        if self.sample.get().is_some() {
            return;
        }
        let sample = self.read_sample().await;
        let _ = self.sample.set(sample);
    }

    async fn read_sample(&self) -> Option<RecordBatch> {
        if self.remote.table_type != TableType::Base {
            return None;
        }
        let dialect = self.source.dialect();
        let target = WriteTarget::Append(self.remote.clone()).sql(dialect);
        let sql = dialect.sample_sql(&target.table, &target.columns, SAMPLE_ROWS)?;
        let schema = Arc::clone(&self.remote.arrow_schema);
        let stream = self
            .source
            .execute(&sql, Arc::clone(&schema), SAMPLE_ROWS)
            .ok()?;
        let batches = tokio::time::timeout(SAMPLE_TIMEOUT, stream.try_collect::<Vec<_>>())
            .await
            .ok()?
            .ok()?;
        concat_batches(&schema, &batches).ok()
    }

    /// Whether the values of column `index` rise with the order the table is stored in, so
    /// that reading the table through an index on that column reads it about sequentially
    /// rather than a random page per row. Seen on the sample, which dialects read in storage
    /// order ([`Dialect::sample_sql`](crate::Dialect::sample_sql)): nine in ten neighbouring
    /// values ascending (about half do in a column unrelated to the order). `false` without a
    /// sample.
    pub fn in_storage_order(&self, index: usize) -> bool {
        self.sample()
            .and_then(|sample| sample.columns().get(index))
            .is_some_and(|column| mostly_ascending(column.as_ref()))
    }

    /// The source the table lives in.
    pub fn source(&self) -> &Arc<dyn Source> {
        &self.source
    }

    /// The table as discovered.
    pub fn remote(&self) -> &RemoteTable {
        &self.remote
    }

    /// The federated table a logical scan reads, if it reads one.
    pub fn of_scan(scan: &TableScan) -> Option<&FederatedTable> {
        let source = scan.source.as_ref().downcast_ref::<DefaultTableSource>()?;
        let provider: &dyn Any = source.table_provider.as_ref();
        provider.downcast_ref::<FederatedTable>()
    }
}

/// Whether nine in ten neighbouring values of `values` (NULLs left out) ascend, over at least
/// ten pairs.
fn mostly_ascending(values: &dyn Array) -> bool {
    let pairs = values.len().saturating_sub(1);
    let Ok(ascending) = datafusion::arrow::compute::kernels::cmp::lt_eq(
        &values.slice(0, pairs),
        &values.slice(1, pairs),
    ) else {
        return false;
    };
    let compared = pairs - ascending.null_count();
    compared >= 10 && ascending.true_count() * 10 >= compared * 9
}

/// `filter` with every column reference stripped of its table qualifier.
pub(crate) fn unqualified(filter: &Expr) -> Expr {
    filter
        .clone()
        .transform(|e| {
            Ok(match e {
                Expr::Column(c) if c.relation.is_some() => {
                    Transformed::yes(Expr::Column(Column::new_unqualified(c.name)))
                }
                other => Transformed::no(other),
            })
        })
        .map(|t| t.data)
        .unwrap_or_else(|_| filter.clone())
}

/// The table and column output column `i` of `plan` passes through unchanged (through
/// filters, sorts, limits, aliases, projections of a bare column and joins), if any.
pub(crate) fn column_origin(plan: &LogicalPlan, i: usize) -> Option<(&FederatedTable, usize)> {
    match plan {
        LogicalPlan::TableScan(scan) => {
            let table = FederatedTable::of_scan(scan)?;
            let column = match &scan.projection {
                Some(projection) => *projection.get(i)?,
                None => i,
            };
            Some((table, column))
        }
        LogicalPlan::Filter(f) => column_origin(&f.input, i),
        LogicalPlan::Sort(s) => column_origin(&s.input, i),
        LogicalPlan::Limit(l) => column_origin(&l.input, i),
        LogicalPlan::SubqueryAlias(a) => column_origin(&a.input, i),
        LogicalPlan::Projection(p) => {
            let column = match p.expr.get(i) {
                Some(Expr::Column(c)) => Some(c),
                Some(Expr::Alias(Alias { expr, .. })) => match expr.as_ref() {
                    Expr::Column(c) => Some(c),
                    _ => None,
                },
                _ => None,
            };
            let j = p.input.schema().maybe_index_of_column(column?)?;
            column_origin(&p.input, j)
        }
        LogicalPlan::Join(j) => {
            let left = j.left.schema().fields().len();
            match j.join_type {
                JoinType::LeftSemi | JoinType::LeftAnti => column_origin(&j.left, i),
                JoinType::RightSemi | JoinType::RightAnti => column_origin(&j.right, i),
                _ if i < left => column_origin(&j.left, i),
                _ => column_origin(&j.right, i - left),
            }
        }
        _ => None,
    }
}

/// Whether `key`, a column of `plan`'s output, passes a base-table column through unchanged
/// and an index of that table starts with it (so the database can look rows up by it).
pub(crate) fn key_is_indexed(plan: &LogicalPlan, key: &Expr) -> bool {
    key_origin(plan, key).is_some_and(|(table, c)| table.remote().is_indexed(c))
}

/// Whether `key`, a column of `plan`'s output, passes a base-table column through unchanged
/// whose values rise with the table's storage order ([`FederatedTable::in_storage_order`]).
pub(crate) fn key_in_storage_order(plan: &LogicalPlan, key: &Expr) -> bool {
    key_origin(plan, key).is_some_and(|(table, c)| table.in_storage_order(c))
}

/// The table and column index `key` (a column of `plan`'s output) passes through unchanged.
fn key_origin<'a>(plan: &'a LogicalPlan, key: &Expr) -> Option<(&'a FederatedTable, usize)> {
    let Expr::Column(column) = key else {
        return None;
    };
    plan.schema()
        .maybe_index_of_column(column)
        .and_then(|i| column_origin(plan, i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;

    #[test]
    fn a_column_follows_storage_order_when_nearly_all_neighbours_ascend() {
        let sorted = Int64Array::from_iter_values(0..1_000);
        assert!(mostly_ascending(&sorted));
        // A few rows out of place (updates, a second load) do not change that.
        let mostly =
            Int64Array::from_iter_values((0..1_000).map(|i| if i % 20 == 0 { 0 } else { i }));
        assert!(mostly_ascending(&mostly));
        // Values unrelated to the order (a multiplicative hash of the position).
        let scattered = Int64Array::from_iter_values((0..1_000i64).map(|i| (i * 7_919) % 1_009));
        assert!(!mostly_ascending(&scattered));
        // NULLs are left out; too few values say nothing.
        let with_nulls = Int64Array::from_iter((0..100).map(|i| (i % 3 != 0).then_some(i)));
        assert!(mostly_ascending(&with_nulls));
        assert!(!mostly_ascending(&Int64Array::from_iter_values(0..5)));
    }
}
