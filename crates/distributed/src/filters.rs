//! Dynamic filters in a plan decoded on a worker.
//!
//! DataFusion's hash joins (and TopK sorts, and aggregates) fill a `DynamicFilterPhysicalExpr`
//! while they run, and the scans below them read it: Parquet prunes with it, a federated scan
//! waits for its join's build side and sends the keys to its database. Stage plans are encoded
//! with DataFusion's deduplicating converter, so a filter and the operator that fills it are one
//! object again on the worker when both are in the same stage. A filter whose operator is not in
//! the plan (it runs in a later stage, maybe on another node) would never be filled nor
//! completed, and a scan waiting for it would wait forever: [`release_unfilled`] marks such
//! filters complete as they are (`true`: they keep nothing out), so scans read without them.

use datafusion::common::Result;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::config::ConfigOptions;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::DynamicFilterPhysicalExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::{ExecutionPlanProperties, Partitioning};
use std::collections::HashSet;
use std::sync::Arc;

/// Marks complete every dynamic filter read in `plan` that no operator of `plan` fills (under
/// `config`, the options the plan runs with); returns how many (a filter is read by its scan
/// and also listed by the operator filling it: counted once).
///
/// `all` releases every filter, filled or not: for a plan of which only some partitions run
/// (a hash join completes its filter only after all of its partitions have built).
///
/// # Errors
/// When the plan's expressions cannot be visited.
pub fn release_unfilled(
    plan: &Arc<dyn ExecutionPlan>,
    config: &ConfigOptions,
    all: bool,
) -> Result<usize> {
    let mut filled = HashSet::new();
    if !all {
        plan.apply(|node| {
            let fills = node
                .downcast_ref::<HashJoinExec>()
                .is_none_or(|join| join_fills(join, config));
            if fills {
                filled.extend(
                    node.dynamic_expressions_produced()
                        .iter()
                        .filter_map(|filter| filter.expression_id()),
                );
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
    }
    let mut released = HashSet::new();
    plan.apply(|node| {
        node.apply_expressions(&mut |root| {
            root.apply(|expr: &Arc<dyn PhysicalExpr>| {
                if let Some(filter) = expr.downcast_ref::<DynamicFilterPhysicalExpr>() {
                    let id = expr.expression_id();
                    if !id.is_some_and(|id| filled.contains(&id)) {
                        filter.mark_complete();
                        released.insert(id);
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })?;
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(released.len())
}

/// Whether `join` fills its dynamic filter when it runs under `config`: DataFusion 55's own
/// conditions (`HashJoinExec::allow_join_dynamic_filter_pushdown`, private), read again on the
/// decoded stage because its inputs there are not those the coordinator planned it over — a
/// partitioned join over inputs not hash-partitioned alike leaves its filter empty for ever.
/// Where in doubt (range-partitioned inputs), not.
fn join_fills(join: &HashJoinExec, config: &ConfigOptions) -> bool {
    let (_, probe_preserved) = join.join_type().on_lr_is_preserved();
    let nullable_build_key = || {
        join.on()
            .iter()
            .any(|(key, _)| key.nullable(&join.left().schema()).unwrap_or(true))
    };
    if !probe_preserved
        || !config.optimizer.enable_join_dynamic_filter_pushdown
        || (join.null_aware && nullable_build_key())
    {
        return false;
    }
    match join.partition_mode() {
        PartitionMode::CollectLeft => true,
        PartitionMode::Partitioned => matches!(
            (join.left().output_partitioning(), join.right().output_partitioning()),
            (Partitioning::Hash(_, left), Partitioning::Hash(_, right))
                if left == right && config.optimizer.preserve_file_partitions == 0
        ),
        PartitionMode::Auto => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::common::NullEquality;
    use datafusion::logical_expr::JoinType;
    use datafusion::physical_expr::expressions::{Column, lit};
    use datafusion::physical_plan::empty::EmptyExec;
    use datafusion::physical_plan::filter::FilterExec;
    use datafusion::physical_plan::joins::HashJoinExecBuilder;
    use std::time::Duration;

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)]))
    }

    fn key() -> Arc<dyn PhysicalExpr> {
        Arc::new(Column::new("k", 0))
    }

    /// A scan stand-in that reads `filter`: a filter over an empty input.
    fn reading(filter: &Arc<DynamicFilterPhysicalExpr>) -> Arc<dyn ExecutionPlan> {
        let input = Arc::new(EmptyExec::new(schema()));
        Arc::new(FilterExec::try_new(Arc::clone(filter) as _, input).unwrap())
    }

    fn join_filling(
        filter: &Arc<DynamicFilterPhysicalExpr>,
        probe: Arc<dyn ExecutionPlan>,
    ) -> Arc<dyn ExecutionPlan> {
        join_with_mode(filter, probe, PartitionMode::CollectLeft)
    }

    fn join_with_mode(
        filter: &Arc<DynamicFilterPhysicalExpr>,
        probe: Arc<dyn ExecutionPlan>,
        mode: PartitionMode,
    ) -> Arc<dyn ExecutionPlan> {
        let build = Arc::new(EmptyExec::new(schema()));
        let join = HashJoinExecBuilder::new(build, probe, vec![(key(), key())], JoinType::Inner)
            .with_partition_mode(mode)
            .with_null_equality(NullEquality::NullEqualsNothing)
            .build()
            .unwrap()
            .with_dynamic_filter_expr(Arc::clone(filter))
            .unwrap();
        Arc::new(join)
    }

    fn complete(filter: &DynamicFilterPhysicalExpr) -> bool {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            tokio::time::timeout(Duration::from_millis(50), filter.wait_complete())
                .await
                .is_ok()
        })
    }

    #[test]
    fn a_filter_whose_join_is_in_the_plan_waits_for_it_and_others_are_released() {
        let filter = Arc::new(DynamicFilterPhysicalExpr::new(vec![key()], lit(true)));
        let plan = join_filling(&filter, reading(&filter));
        assert_eq!(
            release_unfilled(&plan, &ConfigOptions::new(), false).unwrap(),
            0
        );
        assert!(
            !complete(&filter),
            "filled by the join in the plan: not released"
        );

        let orphan = Arc::new(DynamicFilterPhysicalExpr::new(vec![key()], lit(true)));
        let plan = reading(&orphan);
        assert_eq!(
            release_unfilled(&plan, &ConfigOptions::new(), false).unwrap(),
            1
        );
        assert!(complete(&orphan), "its join runs elsewhere: released");
    }

    #[test]
    fn a_join_that_will_not_fill_its_filter_or_a_partial_run_releases_it() {
        let filter = Arc::new(DynamicFilterPhysicalExpr::new(vec![key()], lit(true)));
        let plan = join_filling(&filter, reading(&filter));
        let mut off = ConfigOptions::new();
        off.optimizer.enable_join_dynamic_filter_pushdown = false;
        assert_eq!(release_unfilled(&plan, &off, false).unwrap(), 1);
        assert!(complete(&filter));

        let filter = Arc::new(DynamicFilterPhysicalExpr::new(vec![key()], lit(true)));
        let plan = join_filling(&filter, reading(&filter));
        assert_eq!(
            release_unfilled(&plan, &ConfigOptions::new(), true).unwrap(),
            1
        );
        assert!(complete(&filter));

        // Partitioned over inputs that are not hash-partitioned alike (as a stage may read
        // them): DataFusion would not fill the filter, so it is released.
        let filter = Arc::new(DynamicFilterPhysicalExpr::new(vec![key()], lit(true)));
        let plan = join_with_mode(&filter, reading(&filter), PartitionMode::Partitioned);
        assert_eq!(
            release_unfilled(&plan, &ConfigOptions::new(), false).unwrap(),
            1
        );
        assert!(complete(&filter));
    }
}
