//! The proof a distributed plan must pass before it runs: every stage boundary gives the
//! operator above it the rows it needs, in every task.
//!
//! The stage planner ([`super::stages`]) builds plans that should pass; this pass checks them
//! again from the plan alone, with its own reading of each operator, so a planner mistake
//! makes a query run on one node (with the reason in `EXPLAIN`) instead of answering wrongly.
//!
//! ```text
//!  a stage of T tasks: every node's output, across the T tasks, is either
//!    Whole  every task computes all of it (a collected join side, a node above a gather)
//!    Split  the tasks share it, each row in exactly one task;
//!           keyed: the rows of one key value are in one partition of one task (a shuffle)
//! ```
//!
//! The rules, per node, with DataFusion's own requirements of each input:
//! - every node: its local requirements hold (DataFusion's sanity check, per node);
//! - an input required in a single partition must be Whole; one required partitioned by keys
//!   must be Whole or keyed by a shuffle of this stage;
//! - a Whole input beside a Split one is only the collected side of a join that never emits
//!   that side's unmatched rows;
//! - operators not known to work partition by partition (or as a merge) need every input Whole;
//! - a stage of more than one task must end Split (else each task returns everything), a gather
//!   is read by a one-task stage, and what reads scalar subquery results or a recursive query's
//!   work table stays in the root stage;
//! - every type crossing a stage boundary travels as Arrow IPC.

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::config::ConfigOptions;
use datafusion::physical_optimizer::sanity_checker::check_plan_sanity;
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::async_func::AsyncFuncExec;
use datafusion::physical_plan::buffer::BufferExec;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::{
    CrossJoinExec, HashJoinExec, NestedLoopJoinExec, PartitionMode, PiecewiseMergeJoinExec,
    SortMergeJoinExec, SymmetricHashJoinExec,
};
use datafusion::physical_plan::limit::{GlobalLimitExec, LocalLimitExec};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::partial_sort::PartialSortExec;
use datafusion::physical_plan::sorts::partitioned_topk::PartitionedTopKExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::union::{InterleaveExec, UnionExec};
use datafusion::physical_plan::unnest::UnnestExec;
use datafusion::physical_plan::windows::{BoundedWindowAggExec, WindowAggExec};
use datafusion::physical_plan::{
    Distribution, ExecutionPlan, ExecutionPlanProperties, Partitioning,
};
use datafusion::prelude::JoinType;
use std::sync::Arc;

use super::pinned_here;
use crate::exec::DistributedExec;
use crate::exec::{NetworkCoalesceExec, NetworkShuffleExec, PartitionIsolatorExec};

/// Where a node's output lives across the tasks of its stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spread {
    /// Every task computes all of it.
    Whole,
    /// Each row in one task; `keyed`: partitioned by keys across all tasks (by a shuffle).
    Split { keyed: bool },
}

/// How an operator treats its input partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Output partition `p` comes from input partition `p` of each input (and collected inputs
    /// read whole).
    PartitionWise,
    /// Reads every input partition into other partitions (merges, local repartitions, unions).
    Merge,
    /// Not known: it needs every input whole.
    Unknown,
}

pub(crate) fn kind(plan: &dyn ExecutionPlan) -> Kind {
    macro_rules! is {
        ($($t:ty),*) => { false $(|| plan.is::<$t>())* };
    }
    if is!(
        ProjectionExec,
        FilterExec,
        CooperativeExec,
        BufferExec,
        LocalLimitExec,
        GlobalLimitExec,
        AggregateExec,
        SortExec,
        PartialSortExec,
        PartitionedTopKExec,
        BoundedWindowAggExec,
        WindowAggExec,
        UnnestExec,
        AsyncFuncExec,
        HashJoinExec,
        SortMergeJoinExec,
        SymmetricHashJoinExec,
        NestedLoopJoinExec,
        CrossJoinExec,
        PiecewiseMergeJoinExec,
        InterleaveExec
    ) {
        Kind::PartitionWise
    } else if is!(
        CoalescePartitionsExec,
        SortPreservingMergeExec,
        RepartitionExec,
        UnionExec
    ) {
        // A merge that stops after `fetch` rows is a limit of the whole result: split across
        // tasks, each would keep `fetch` rows.
        if plan.fetch().is_some() {
            Kind::Unknown
        } else {
            Kind::Merge
        }
    } else {
        Kind::Unknown
    }
}

/// For a join that reads its first input whole in every partition (a collected build side):
/// whether its probe side may be split across tasks — it may unless the join emits rows of the
/// collected side that found no match (every task would emit them).
pub(crate) fn collected_join(plan: &dyn ExecutionPlan) -> Option<bool> {
    let join_type = if let Some(join) = plan.downcast_ref::<HashJoinExec>() {
        if *join.partition_mode() != PartitionMode::CollectLeft {
            return None;
        }
        *join.join_type()
    } else if let Some(join) = plan.downcast_ref::<NestedLoopJoinExec>() {
        *join.join_type()
    } else if let Some(join) = plan.downcast_ref::<PiecewiseMergeJoinExec>() {
        join.join_type()
    } else if plan.is::<CrossJoinExec>() {
        JoinType::Inner
    } else {
        return None;
    };
    Some(matches!(
        join_type,
        JoinType::Inner
            | JoinType::Right
            | JoinType::RightSemi
            | JoinType::RightAnti
            | JoinType::RightMark
    ))
}

/// Checks a distributed plan; the error says, for `EXPLAIN`, what could not be proven.
pub(crate) fn check(plan: &Arc<dyn ExecutionPlan>, config: &ConfigOptions) -> Result<(), String> {
    Checker { config }.stage(plan, 1, true, "the root stage")
}

struct Checker<'a> {
    config: &'a ConfigOptions,
}

impl Checker<'_> {
    /// Checks the stage rooted at `root`, run as `tasks` tasks.
    fn stage(
        &self,
        root: &Arc<dyn ExecutionPlan>,
        tasks: usize,
        is_root: bool,
        name: &str,
    ) -> Result<(), String> {
        let spread = self.node(root, tasks, is_root)?;
        if tasks > 1 && spread == Spread::Whole {
            return Err(format!(
                "every one of the {tasks} tasks of {name} would return all its rows"
            ));
        }
        Ok(())
    }

    fn node(
        &self,
        plan: &Arc<dyn ExecutionPlan>,
        tasks: usize,
        is_root: bool,
    ) -> Result<Spread, String> {
        let name = plan.name();
        if let Some(shuffle) = plan.downcast_ref::<NetworkShuffleExec>() {
            let producer = shuffle.producer();
            let buckets = producer.output_partitioning().partition_count();
            if buckets != tasks * shuffle.partitions() {
                return Err(format!(
                    "the shuffle of stage {} makes {buckets} buckets for {tasks} tasks of {} \
                     partitions",
                    shuffle.stage().stage,
                    shuffle.partitions()
                ));
            }
            travels(&producer.schema(), shuffle.stage().stage)?;
            self.stage_below(
                producer,
                shuffle.stage().workers.len(),
                shuffle.stage().stage,
            )?;
            return Ok(split_if(tasks, true));
        }
        if let Some(gather) = plan.downcast_ref::<NetworkCoalesceExec>() {
            if tasks > 1 {
                return Err(format!(
                    "stage {} is gathered by a stage of {tasks} tasks (each would read all of it)",
                    gather.stage().stage
                ));
            }
            travels(&gather.producer().schema(), gather.stage().stage)?;
            self.stage_below(
                gather.producer(),
                gather.stage().workers.len(),
                gather.stage().stage,
            )?;
            return Ok(Spread::Whole);
        }
        if let Some(isolator) = plan.downcast_ref::<PartitionIsolatorExec>() {
            if isolator.tasks() != tasks {
                return Err(format!(
                    "a leaf is split for {} tasks in a stage of {tasks}",
                    isolator.tasks()
                ));
            }
            if !isolator.input().children().is_empty() {
                return Err(format!(
                    "{} is split across tasks but is not a leaf",
                    isolator.input().name()
                ));
            }
            self.pinned(isolator.input(), is_root)?;
            return Ok(split_if(tasks, false));
        }
        if let Some(root) = plan.downcast_ref::<DistributedExec>() {
            return self.node(root.input(), tasks, is_root);
        }
        self.pinned(plan, is_root)?;
        check_plan_sanity(plan, &self.config.optimizer).map_err(|e| {
            format!(
                "{name} does not get the input it requires: {}",
                first_line(&e.to_string())
            )
        })?;
        let children = plan.children();
        if children.is_empty() {
            return Ok(Spread::Whole);
        }
        let spreads = children
            .iter()
            .map(|child| self.node(child, tasks, is_root))
            .collect::<Result<Vec<_>, _>>()?;
        if spreads.iter().all(|spread| *spread == Spread::Whole) {
            return Ok(Spread::Whole);
        }
        let kind = kind(plan.as_ref());
        if kind == Kind::Unknown {
            return Err(format!(
                "{name} is not known to be right over rows split across tasks"
            ));
        }
        let requirements = plan.input_distribution_requirements();
        let mut keyed = true;
        for (i, (spread, required)) in spreads
            .iter()
            .zip(requirements.per_child_distributions())
            .enumerate()
        {
            match (spread, required) {
                (Spread::Whole, Distribution::SinglePartition) => {
                    if collected_join(plan.as_ref()) != Some(true) {
                        return Err(format!(
                            "{name} reads input {i} whole in every task and would emit its \
                             unmatched rows in each"
                        ));
                    }
                }
                (Spread::Whole, _) => {
                    return Err(format!(
                        "{name} would combine input {i}, computed whole by every task, with \
                         rows split across tasks"
                    ));
                }
                (Spread::Split { .. }, Distribution::SinglePartition) => {
                    return Err(format!(
                        "{name} needs all rows of input {i} in one partition, but they are \
                         split across {tasks} tasks"
                    ));
                }
                (Spread::Split { keyed: false }, Distribution::KeyPartitioned(_)) => {
                    return Err(format!(
                        "{name} needs the rows of input {i} partitioned by its keys, but they \
                         are split across {tasks} tasks without a shuffle on them"
                    ));
                }
                #[allow(deprecated)]
                (Spread::Split { keyed: false }, Distribution::HashPartitioned(_)) => {
                    return Err(format!(
                        "{name} needs the rows of input {i} partitioned by its keys, but they \
                         are split across {tasks} tasks without a shuffle on them"
                    ));
                }
                (Spread::Split { keyed: true }, required @ Distribution::KeyPartitioned(_))
                    if !keyed_on(children[i], required) =>
                {
                    return Err(format!(
                        "{name} needs the rows of input {i} partitioned by its keys, but a \
                         shuffle partitioned them by other keys"
                    ));
                }
                (Spread::Split { keyed: split_keyed }, _) => keyed &= *split_keyed,
            }
        }
        let keyed = keyed
            && kind == Kind::PartitionWise
            && matches!(plan.output_partitioning(), Partitioning::Hash(..));
        Ok(Spread::Split { keyed })
    }

    fn stage_below(
        &self,
        producer: &Arc<dyn ExecutionPlan>,
        tasks: usize,
        stage: usize,
    ) -> Result<(), String> {
        self.stage(producer, tasks.max(1), false, &format!("stage {stage}"))
            .map_err(|e| format!("stage {stage}: {e}"))
    }

    /// Nodes that read memory shared with other nodes of the plan must stay in the root stage.
    fn pinned(&self, plan: &Arc<dyn ExecutionPlan>, is_root: bool) -> Result<(), String> {
        if !is_root && pinned_here(plan) {
            return Err(format!(
                "{} reads results kept in the coordinator's memory (a scalar subquery or a \
                 recursive query) but would run on a worker",
                plan.name()
            ));
        }
        Ok(())
    }
}

/// Whether `input`'s hash partitioning puts all rows of each value of `required`'s keys in one
/// partition — judged as if it had several partitions (DataFusion calls any one-partition input
/// key-partitioned, which says nothing about the rows of the other tasks).
pub(crate) fn keyed_on(input: &Arc<dyn ExecutionPlan>, required: &Distribution) -> bool {
    match input.output_partitioning() {
        Partitioning::Hash(exprs, _) => Partitioning::Hash(exprs.clone(), 2)
            .satisfaction(required, input.equivalence_properties(), true)
            .is_satisfied(),
        _ => false,
    }
}

fn split_if(tasks: usize, keyed: bool) -> Spread {
    if tasks > 1 {
        Spread::Split { keyed }
    } else {
        Spread::Whole
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

/// Whether every column of `schema` can cross a stage boundary as Arrow IPC.
fn travels(schema: &Schema, stage: usize) -> Result<(), String> {
    for field in schema.fields() {
        if let Some(what) = untransportable(field.data_type()) {
            return Err(format!(
                "column '{}' of stage {stage} is of type {what}, which cannot travel between \
                 nodes",
                field.name()
            ));
        }
    }
    Ok(())
}

/// The part of `data_type` Arrow IPC between nodes cannot carry, if any.
///
/// List views are refused: Arrow IPC (59) does not write them. (Large lists travel since
/// stages are written with `flotilla_common::flight`: arrow-flight's encoder announced them as
/// `List` over 64-bit offsets, which the differential harness found.)
fn untransportable(data_type: &DataType) -> Option<String> {
    match data_type {
        DataType::ListView(_) | DataType::LargeListView(_) => Some(data_type.to_string()),
        DataType::List(field)
        | DataType::LargeList(field)
        | DataType::FixedSizeList(field, _)
        | DataType::Map(field, _) => untransportable(field.data_type()),
        DataType::Struct(fields) => fields
            .iter()
            .find_map(|field| untransportable(field.data_type())),
        DataType::Union(fields, _) => fields
            .iter()
            .find_map(|(_, field)| untransportable(field.data_type())),
        DataType::Dictionary(_, value) => untransportable(value),
        DataType::RunEndEncoded(_, values) => untransportable(values.data_type()),
        _ => None,
    }
}
