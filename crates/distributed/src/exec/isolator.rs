//! [`PartitionIsolatorExec`]: each task of a stage reads its own share of a leaf.

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::execution_plan::EmissionType;
use datafusion::physical_plan::stream::EmptyRecordBatchStream;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties,
};
use std::fmt;
use std::sync::Arc;

use super::{TaskIndex, only_child};

/// Gives each task of a stage its own share of a leaf's partitions, so that the tasks together
/// read the leaf exactly once: task `t` of `T` runs partitions `t × S .. (t + 1) × S` (`S` =
/// partitions ÷ `T`, rounded up) and returns nothing for the rest.
#[derive(Debug)]
pub struct PartitionIsolatorExec {
    input: Arc<dyn ExecutionPlan>,
    tasks: usize,
    properties: Arc<PlanProperties>,
}

impl PartitionIsolatorExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, tasks: usize) -> Self {
        let tasks = tasks.max(1);
        let share = input
            .output_partitioning()
            .partition_count()
            .div_ceil(tasks);
        let properties = PlanProperties::new(
            input.equivalence_properties().clone(),
            Partitioning::UnknownPartitioning(share.max(1)),
            EmissionType::Incremental,
            input.boundedness(),
        );
        Self {
            input,
            tasks,
            properties: Arc::new(properties),
        }
    }

    pub fn tasks(&self) -> usize {
        self.tasks
    }

    pub fn input(&self) -> &Arc<dyn ExecutionPlan> {
        &self.input
    }
}

impl DisplayAs for PartitionIsolatorExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "PartitionIsolatorExec: tasks={}", self.tasks)
    }
}

impl ExecutionPlan for PartitionIsolatorExec {
    fn name(&self) -> &'static str {
        "PartitionIsolatorExec"
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
        let input = only_child(&children, "PartitionIsolatorExec")?;
        Ok(Arc::new(Self::new(input, self.tasks)))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let task = TaskIndex::of(&context);
        if task.count != self.tasks {
            return internal_err!(
                "PartitionIsolatorExec planned for {} tasks runs in a stage of {}",
                self.tasks,
                task.count
            );
        }
        let inputs = self.input.output_partitioning().partition_count();
        let share = inputs.div_ceil(self.tasks);
        let input_partition = task.index * share + partition;
        if partition >= share || input_partition >= inputs {
            return Ok(Box::pin(EmptyRecordBatchStream::new(self.schema())));
        }
        self.input.execute(input_partition, context)
    }
}
