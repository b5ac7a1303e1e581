//! A guard around DataFusion 55's physical filter pushdown, which finds a projection's output
//! column by its *name* when it moves a filter below the projection
//! (`FilterRemapper::try_remap`, `ProjectionExec::collect_reverse_alias`). Where a projection
//! has two outputs of one name — the projection `JoinSelection` puts over a join whose inputs
//! it swapped, both tables having a column `s` — a filter on the second output is rewritten
//! onto the first: `b RIGHT JOIN a … WHERE coalesce(b.s, 'n') >= 'p'` then filters `a.s`
//! below the join and returns rows it must not (test below; found by the SQL writer's fuzz
//! test).
//!
//! [`DistinctNames`] wraps each filter pushdown rule: while it runs, such a projection sits
//! under a barrier no filter passes (a filter above it stays there, filters inside its input
//! are pushed as usual); the barriers are taken out afterwards.

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, internal_err};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

/// The name of DataFusion's filter pushdown rules (both phases).
const FILTER_PUSHDOWN: &str = "FilterPushdown";

#[derive(Debug)]
pub(crate) struct DistinctNames {
    inner: Arc<dyn PhysicalOptimizerRule + Send + Sync>,
}

impl DistinctNames {
    /// Wraps each filter pushdown rule of `rules`.
    pub(crate) fn guard(rules: &mut [Arc<dyn PhysicalOptimizerRule + Send + Sync>]) {
        for rule in rules {
            let any: &dyn std::any::Any = rule.as_ref();
            if rule.name() == FILTER_PUSHDOWN && !any.is::<DistinctNames>() {
                *rule = Arc::new(DistinctNames {
                    inner: Arc::clone(rule),
                });
            }
        }
    }
}

impl PhysicalOptimizerRule for DistinctNames {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let guarded = plan.transform_up(|node| {
            let shared = node
                .downcast_ref::<ProjectionExec>()
                .is_some_and(shares_a_name);
            Ok(match shared {
                true => Transformed::yes(Arc::new(Barrier::new(node)) as Arc<dyn ExecutionPlan>),
                false => Transformed::no(node),
            })
        })?;
        if !guarded.transformed {
            return self.inner.optimize(guarded.data, config);
        }
        let optimized = self.inner.optimize(guarded.data, config)?;
        Ok(optimized
            .transform_up(|node| {
                Ok(match node.downcast_ref::<Barrier>() {
                    Some(barrier) => Transformed::yes(Arc::clone(&barrier.input)),
                    None => Transformed::no(node),
                })
            })?
            .data)
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn schema_check(&self) -> bool {
        self.inner.schema_check()
    }
}

fn shares_a_name(projection: &ProjectionExec) -> bool {
    let mut seen = HashSet::new();
    !projection
        .projection_expr()
        .iter()
        .all(|e| seen.insert(e.alias.as_str()))
}

/// Its input, unchanged; keeps every filter above it (the default of
/// `ExecutionPlan::gather_filters_for_pushdown`). Exists only while a filter pushdown rule
/// runs.
#[derive(Debug)]
struct Barrier {
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
}

impl Barrier {
    fn new(input: Arc<dyn ExecutionPlan>) -> Self {
        Self {
            properties: Arc::clone(input.properties()),
            input,
        }
    }
}

impl DisplayAs for Barrier {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "FilterBarrier")
    }
}

impl ExecutionPlan for Barrier {
    fn name(&self) -> &'static str {
        "FilterBarrier"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn apply_expressions(
        &self,
        _: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match <[_; 1]>::try_from(children) {
            Ok([input]) => Ok(Arc::new(Barrier::new(input))),
            Err(_) => internal_err!("FilterBarrier has one input"),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// `a` (5 rows, `s` = 'q') is the smaller input, so DataFusion swaps `b RIGHT JOIN a`
    /// into `a LEFT JOIN b` under a projection with two outputs named `s`.
    async fn context(ctx: SessionContext) -> SessionContext {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        for (name, ids, s) in [("a", 0..5, "q"), ("b", 3..503, "a")] {
            let batch = RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(Int64Array::from_iter_values(ids.clone())),
                    Arc::new(StringArray::from_iter_values(ids.map(|_| s))),
                ],
            )
            .unwrap();
            let table = MemTable::try_new(Arc::clone(&schema), vec![vec![batch]]).unwrap();
            ctx.register_table(name, Arc::new(table)).unwrap();
        }
        ctx
    }

    #[tokio::test]
    async fn a_filter_on_the_null_extended_side_of_a_swapped_join_stays_there() {
        // Every row is filtered out: matched rows have b.s = 'a', the others 'n'. DataFusion
        // applies the filter to a.s = 'q' instead, below the join, and keeps all five.
        let sql = "SELECT c FROM (SELECT coalesce(b.s, 'n') AS c FROM b RIGHT JOIN a \
                   ON b.id = a.id AND a.s || 'z' IS NOT NULL WHERE a.s IN ('p', 'q')) AS j \
                   WHERE c >= 'p'";
        let ctx = context(crate::federated_context(SessionConfig::new())).await;
        let rows: usize = ctx
            .sql(sql)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum();
        assert_eq!(rows, 0, "{sql}");
        // The same session state without the guard is what this guards against (if this
        // fails, DataFusion has fixed it and the guard can go).
        let vanilla = context(SessionContext::new()).await;
        let rows: usize = vanilla
            .sql(sql)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum();
        assert_eq!(rows, 5, "DataFusion's filter pushdown changed: {sql}");
    }
}
