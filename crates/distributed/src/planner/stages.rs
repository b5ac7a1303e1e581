//! Cutting a plan into stages.
//!
//! Walking up from the leaves, each node is placed in the stage of its inputs unless what it
//! requires of an input (DataFusion's `input_distribution_requirements`) cannot hold when that
//! input's rows are split across tasks; then a boundary goes there:
//!
//! ```text
//!  requirement of input i        input split across tasks          boundary placed
//!  ─────────────────────────     ──────────────────────────         ─────────────────────────
//!  SinglePartition, or the       any                                gather: NetworkCoalesceExec
//!  operator is not known to                                         (+ a merge to one partition);
//!  work partition by partition                                      this stage gets one task
//!  KeyPartitioned(keys)          not by a shuffle on keys           shuffle on keys
//!  anything                      hash RepartitionExec (DataFusion's) shuffle
//! ```
//!
//! - A hash `RepartitionExec` becomes a shuffle ([`NetworkShuffleExec`]): the plan below it is a
//!   stage whose tasks hash their rows into one bucket per partition of every consumer task.
//! - A merge to one partition (`CoalescePartitionsExec`, `SortPreservingMergeExec`) above a
//!   gather runs in the gathering stage over every task's partitions.
//! - The collected side of a join (the build side of a `CollectLeft` hash join, the left side
//!   of nested-loop, cross and piecewise merge joins) is not cut: every task of the stage builds
//!   it itself, a broadcast by recomputation. Joins that emit that side's unmatched rows keep
//!   their stage at one task.
//! - Every other leaf is split across its stage's tasks ([`PartitionIsolatorExec`]).
//! - Scalar subqueries and recursive queries, and what reads their results, stay in the root
//!   stage (their results live in memory shared between nodes of the plan).
//!
//! A stage has as many tasks as its input calls for — its leaves' bytes over
//! `distributed.bytes_per_task`, or as many as the stages it reads — up to the number of
//! workers; a stage that gathers has one. [`super::check`] verifies the result.

use datafusion::common::Result;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::config::ConfigOptions;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::replace_children_if_necessary;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::{
    Distribution, ExecutionPlan, ExecutionPlanProperties, Partitioning,
};
use std::collections::BTreeSet;
use std::sync::Arc;

use super::check::{Kind, collected_join, keyed_on, kind};
use super::{leaf_bytes, pinned_here};
use crate::exec::{NetworkCoalesceExec, NetworkShuffleExec, PartitionIsolatorExec, StageTasks};
use crate::options::{DistributedOptions, Retry};

/// What a part of a stage, built so far, needs and gives.
#[derive(Debug, Clone, Copy)]
struct Part {
    /// It must run as one task (it reads a gather, or a join emits its collected side's rows).
    single: bool,
    /// It must stay where the query was planned (see [`pinned_here`]).
    pinned: bool,
    /// The tasks its input calls for.
    tasks: usize,
    /// Its rows are partitioned by key across all tasks (a shuffle of this stage feeds it).
    keyed: bool,
}

impl Part {
    /// The part above a gather: one task with all the rows.
    const GATHERED: Part = Part {
        single: true,
        pinned: false,
        tasks: 1,
        keyed: false,
    };

    /// Whether the part's stage will run as one task, so no input of it is split.
    fn whole(self) -> bool {
        self.single || self.pinned
    }
}

/// Cuts one query's plan into stages (see the module documentation).
pub(super) struct StagePlanner<'a> {
    query: String,
    workers: Vec<String>,
    options: DistributedOptions,
    config: &'a ConfigOptions,
    stages: usize,
    next_worker: usize,
    one_task_stages: usize,
    /// The workers any task was placed on.
    used: BTreeSet<String>,
}

impl<'a> StagePlanner<'a> {
    pub(super) fn new(
        query: String,
        workers: Vec<String>,
        options: DistributedOptions,
        config: &'a ConfigOptions,
    ) -> Self {
        Self {
            query,
            workers,
            options,
            config,
            stages: 0,
            next_worker: 0,
            one_task_stages: 0,
            used: BTreeSet::new(),
        }
    }

    /// How many stages were cut below the root stage.
    pub(super) fn stage_count(&self) -> usize {
        self.stages
    }

    /// Whether the plan is one stage of one task: nothing gained by distributing it.
    pub(super) fn is_one_task(&self) -> bool {
        self.stages == 1 && self.one_task_stages == 1
    }

    /// The query id and every worker a task was placed on.
    pub(super) fn finish_query(self) -> (String, Vec<String>) {
        (self.query, self.used.into_iter().collect())
    }

    /// The distributed form of `plan`: its root stage, with the stages below under network
    /// operators. Its output has all of `plan`'s rows, in one partition (in `plan`'s order)
    /// when `plan` has one.
    pub(super) fn distribute(
        &mut self,
        plan: Arc<dyn ExecutionPlan>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // A query that may run again must come out of one stream (see `DistributedExec`).
        let one_partition =
            plan.output_partitioning().partition_count() == 1 || self.options.retry == Retry::Query;
        let (root, part) = self.part(plan)?;
        if part.whole() {
            return self.settle(root, 1);
        }
        if one_partition {
            let (root, _) = self.gather(root, part)?;
            return self.settle(root, 1);
        }
        let (root, stage) = self.finish(root, part)?;
        Ok(Arc::new(NetworkCoalesceExec::new(root, stage)))
    }

    /// Rewrites the part of a stage rooted at `plan`, cutting the stages below it.
    fn part(&mut self, plan: Arc<dyn ExecutionPlan>) -> Result<(Arc<dyn ExecutionPlan>, Part)> {
        if let Some(repartition) = plan.downcast_ref::<RepartitionExec>()
            && let Partitioning::Hash(exprs, partitions) = repartition.partitioning()
            && !repartition.preserve_order()
        {
            let (exprs, partitions) = (exprs.clone(), *partitions);
            let (input, below) = self.part(Arc::clone(repartition.input()))?;
            if below.pinned {
                let kept = replace_children_if_necessary(plan, vec![input])?;
                return Ok((
                    kept,
                    Part {
                        keyed: false,
                        ..below
                    },
                ));
            }
            return self.shuffle(input, below, exprs, partitions);
        }
        let children: Vec<Arc<dyn ExecutionPlan>> =
            plan.children().into_iter().map(Arc::clone).collect();
        if children.is_empty() {
            let tasks = leaf_bytes(&plan).map_or(self.workers.len(), |bytes| {
                bytes.div_ceil(self.options.bytes_per_task)
            });
            let part = Part {
                single: false,
                pinned: pinned_here(&plan),
                tasks: tasks.clamp(1, self.workers.len()),
                keyed: false,
            };
            return Ok((Arc::new(PartitionIsolatorExec::new(plan, 1)), part));
        }

        let collected = collected_join(plan.as_ref());
        let mut own = Part {
            single: collected == Some(false),
            pinned: pinned_here(&plan),
            tasks: 1,
            keyed: true,
        };
        let mut inputs = Vec::with_capacity(children.len());
        let mut parts = Vec::with_capacity(children.len());
        for (i, child) in children.into_iter().enumerate() {
            if i == 0 && collected.is_some() {
                // Not cut (every task builds it whole), but it may read scalar subquery results.
                own.pinned |= child.exists(|node| Ok(pinned_here(node)))?;
                inputs.push(child);
                parts.push(None);
                continue;
            }
            let (input, part) = self.part(child)?;
            inputs.push(input);
            parts.push(Some(part));
        }
        let whole = own.whole() || parts.iter().flatten().any(|part| part.whole());
        if !whole {
            self.place_boundaries(&plan, &mut inputs, &mut parts)?;
        }
        let mut merged = parts.iter().flatten().fold(own, |merged, part| Part {
            single: merged.single || part.single,
            pinned: merged.pinned || part.pinned,
            tasks: merged.tasks.max(part.tasks),
            keyed: merged.keyed && part.keyed,
        });
        let rebuilt = replace_children_if_necessary(plan, inputs)?;
        merged.keyed &= kind(rebuilt.as_ref()) == Kind::PartitionWise
            && matches!(rebuilt.output_partitioning(), Partitioning::Hash(..));
        Ok((rebuilt, merged))
    }

    /// Cuts below `plan` wherever an input split across tasks would not give it what it
    /// requires of that input.
    fn place_boundaries(
        &mut self,
        plan: &Arc<dyn ExecutionPlan>,
        inputs: &mut [Arc<dyn ExecutionPlan>],
        parts: &mut [Option<Part>],
    ) -> Result<()> {
        let known = kind(plan.as_ref()) != Kind::Unknown;
        let requirements: Vec<Distribution> = plan
            .input_distribution_requirements()
            .per_child_distributions()
            .cloned()
            .collect();
        let orderings = plan.required_input_ordering();
        // New shuffles deliver as many partitions as the inputs they must line up with.
        let width = inputs
            .iter()
            .zip(parts.iter())
            .filter(|(_, part)| part.is_some())
            .map(|(input, _)| input.output_partitioning().partition_count())
            .max()
            .unwrap_or(1);
        for i in 0..inputs.len() {
            let Some(part) = parts[i] else { continue };
            let keys = match requirements.get(i) {
                Some(Distribution::SinglePartition) => None,
                Some(Distribution::KeyPartitioned(keys)) if known => Some(keys.clone()),
                #[allow(deprecated)]
                Some(Distribution::HashPartitioned(keys)) if known => Some(keys.clone()),
                _ if known => continue,
                _ => None,
            };
            let input = Arc::clone(&inputs[i]);
            let (input, part) = match keys {
                Some(_) if part.keyed && keyed_on(&inputs[i], &requirements[i]) => continue,
                // A new shuffle would lose the order the operator reads its input in.
                Some(keys) if orderings.get(i).is_none_or(Option::is_none) => {
                    self.shuffle(input, part, keys, width)?
                }
                // A merge reads every partition of the gather itself.
                _ if is_merge(plan) => {
                    let (input, stage) = self.finish(input, part)?;
                    (
                        Arc::new(NetworkCoalesceExec::new(input, stage)) as _,
                        Part::GATHERED,
                    )
                }
                _ => self.gather(input, part)?,
            };
            inputs[i] = input;
            parts[i] = Some(part);
        }
        Ok(())
    }

    /// Makes `input` a stage of its own that a shuffle on `keys` delivers to the stage above,
    /// in `partitions` partitions per task.
    fn shuffle(
        &mut self,
        input: Arc<dyn ExecutionPlan>,
        part: Part,
        keys: Vec<Arc<dyn PhysicalExpr>>,
        partitions: usize,
    ) -> Result<(Arc<dyn ExecutionPlan>, Part)> {
        let (input, stage) = self.finish(input, part)?;
        let tasks = stage.workers.len();
        // The consumer's task count is set when its stage is finished.
        let shuffle = NetworkShuffleExec::try_new(input, keys, stage, 1, partitions.max(1))?;
        let part = Part {
            single: false,
            pinned: false,
            tasks,
            keyed: true,
        };
        Ok((Arc::new(shuffle), part))
    }

    /// Makes `input` a stage of its own whose rows all come to one task of the stage above, in
    /// one partition (in `input`'s order, when it has one).
    fn gather(
        &mut self,
        input: Arc<dyn ExecutionPlan>,
        part: Part,
    ) -> Result<(Arc<dyn ExecutionPlan>, Part)> {
        // A merge at the top of the input runs above the gather, over every task's partitions.
        if is_merge(&input)
            && let [below] = input.children().as_slice()
        {
            let (below, stage) = self.finish(Arc::clone(below), part)?;
            let gathered: Arc<dyn ExecutionPlan> = Arc::new(NetworkCoalesceExec::new(below, stage));
            return Ok((
                replace_children_if_necessary(input, vec![gathered])?,
                Part::GATHERED,
            ));
        }
        let ordering = input.output_ordering().cloned();
        let (input, stage) = self.finish(input, part)?;
        let gathered: Arc<dyn ExecutionPlan> = Arc::new(NetworkCoalesceExec::new(input, stage));
        let merged: Arc<dyn ExecutionPlan> =
            if gathered.output_partitioning().partition_count() == 1 {
                gathered
            } else if let Some(ordering) = ordering {
                Arc::new(SortPreservingMergeExec::new(ordering, gathered))
            } else {
                Arc::new(CoalescePartitionsExec::new(gathered))
            };
        Ok((merged, Part::GATHERED))
    }

    /// Makes `part` a stage of its own, with its tasks placed on workers.
    fn finish(
        &mut self,
        plan: Arc<dyn ExecutionPlan>,
        part: Part,
    ) -> Result<(Arc<dyn ExecutionPlan>, StageTasks)> {
        let tasks = if part.single {
            1
        } else {
            part.tasks.clamp(1, self.workers.len())
        };
        let plan = self.settle(plan, tasks)?;
        let workers: Vec<String> = (0..tasks)
            .map(|i| self.workers[(self.next_worker + i) % self.workers.len()].clone())
            .collect();
        self.used.extend(workers.iter().cloned());
        self.next_worker += tasks;
        self.stages += 1;
        if tasks == 1 {
            self.one_task_stages += 1;
        }
        let stage = StageTasks {
            query: self.query.clone(),
            stage: self.stages,
            workers,
        };
        Ok((plan, stage))
    }

    /// Fixes a stage's part for `tasks` tasks: its leaves split among them, its shuffles
    /// delivering to them. Stops at the network operators (the stages below are settled).
    fn settle(&self, part: Arc<dyn ExecutionPlan>, tasks: usize) -> Result<Arc<dyn ExecutionPlan>> {
        let target_partitions = self.config.execution.target_partitions;
        let settled = part.transform_down(|node| {
            if let Some(shuffle) = node.downcast_ref::<NetworkShuffleExec>() {
                let shuffle: Arc<dyn ExecutionPlan> = Arc::new(shuffle.with_consumer_tasks(tasks)?);
                return Ok(Transformed::new(shuffle, true, TreeNodeRecursion::Jump));
            }
            if node.is::<NetworkCoalesceExec>() {
                return Ok(Transformed::new(node, false, TreeNodeRecursion::Jump));
            }
            if let Some(isolator) = node.downcast_ref::<PartitionIsolatorExec>() {
                let leaf = Arc::clone(isolator.input());
                if tasks == 1 {
                    return Ok(Transformed::new(leaf, true, TreeNodeRecursion::Jump));
                }
                // Give each task as many partitions as the leaf had in all, where it can.
                let wanted = leaf
                    .output_partitioning()
                    .partition_count()
                    .max(target_partitions)
                    * tasks;
                let leaf = leaf.repartitioned(wanted, self.config)?.unwrap_or(leaf);
                let isolated: Arc<dyn ExecutionPlan> =
                    Arc::new(PartitionIsolatorExec::new(leaf, tasks));
                return Ok(Transformed::new(isolated, true, TreeNodeRecursion::Jump));
            }
            Ok(Transformed::no(node))
        })?;
        Ok(settled.data)
    }
}

/// Whether `plan` merges all its input partitions into one.
fn is_merge(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.is::<CoalescePartitionsExec>() || plan.is::<SortPreservingMergeExec>()
}
