//! The mark of a plan the distributed planner left on this node, with the reason.
//!
//! ```text
//!  SingleNodeExec: not distributed: <reason>     (EXPLAIN shows it; executing it runs the
//!    <the plan, as DataFusion made it>             plan below, untouched, on this node)
//! ```

use datafusion::common::Result;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use std::fmt;
use std::sync::Arc;

use crate::exec::only_child;

/// Runs its input where it was planned; says why it was not distributed.
#[derive(Debug)]
pub struct SingleNodeExec {
    input: Arc<dyn ExecutionPlan>,
    reason: String,
}

impl SingleNodeExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, reason: String) -> Self {
        Self { input, reason }
    }

    /// Why the plan runs on this node.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl DisplayAs for SingleNodeExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "SingleNodeExec: not distributed: {}", self.reason)
    }
}

impl ExecutionPlan for SingleNodeExec {
    fn name(&self) -> &'static str {
        "SingleNodeExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
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

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = only_child(&children, "SingleNodeExec")?;
        Ok(Arc::new(Self::new(input, self.reason.clone())))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }
}
