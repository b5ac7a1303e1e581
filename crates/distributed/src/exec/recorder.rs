//! Where the figures of a stage's streams go: [`Recorder`] on the reading side, [`Reported`]
//! on the task that reads the stages below it.

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::physical_plan::ExecutionPlan;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::{NetworkCoalesceExec, NetworkShuffleExec};
use crate::stats::{StageFigures, StageReport, StageStats};

/// The stage a network operator reads, and its stats.
fn network_stats(node: &Arc<dyn ExecutionPlan>) -> Option<(u32, Arc<StageStats>)> {
    if let Some(shuffle) = node.downcast_ref::<NetworkShuffleExec>() {
        return Some((shuffle.stage().stage as u32, Arc::clone(shuffle.stats())));
    }
    node.downcast_ref::<NetworkCoalesceExec>()
        .map(|coalesce| (coalesce.stage().stage as u32, Arc::clone(coalesce.stats())))
}

/// The network operators in `plan` that are not below another one (the operators a task
/// runs itself).
fn top_operators(plan: &Arc<dyn ExecutionPlan>) -> Vec<Arc<StageStats>> {
    let mut found = Vec::new();
    let _ = plan.apply(|node| {
        Ok(match network_stats(node) {
            Some((_, stats)) => {
                found.push(stats);
                TreeNodeRecursion::Jump
            }
            None => TreeNodeRecursion::Continue,
        })
    });
    found
}

/// Where the reports on one stage's streams go: the reading operator's totals, and for the
/// stages below, the operators in its producer plan that read them (so each stage's figures
/// show on its own operator).
#[derive(Debug, Clone)]
pub(crate) struct Recorder {
    own: Arc<StageStats>,
    below: BTreeMap<u32, Arc<StageStats>>,
}

impl Recorder {
    pub(crate) fn new(own: Arc<StageStats>, producer: &Arc<dyn ExecutionPlan>) -> Self {
        let mut below = BTreeMap::new();
        let _ = producer.apply(|node| {
            if let Some((stage, stats)) = network_stats(node) {
                below.entry(stage).or_insert(stats);
            }
            Ok(TreeNodeRecursion::Continue)
        });
        Self { own, below }
    }

    pub(crate) fn record(&self, report: &StageReport) {
        for figures in &report.stages {
            self.own.add(figures);
            if let Some(stats) = self.below.get(&figures.stage) {
                stats.add(figures);
            }
        }
    }
}

/// What a task's network operators received since its last report: the stages below the
/// task, for the report of the stream that ends now.
#[derive(Debug, Default)]
pub(crate) struct Reported(Mutex<BTreeMap<u32, StageFigures>>);

impl Reported {
    pub(crate) fn since_last(&self, plan: &Arc<dyn ExecutionPlan>) -> Vec<StageFigures> {
        let mut now: BTreeMap<u32, StageFigures> = BTreeMap::new();
        for stats in top_operators(plan) {
            for (stage, figures) in stats.snapshot() {
                now.entry(stage)
                    .or_insert_with(|| StageFigures {
                        stage,
                        ..StageFigures::default()
                    })
                    .add(&figures);
            }
        }
        let mut reported = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let delta = now
            .values()
            .map(|figures| match reported.get(&figures.stage) {
                Some(earlier) => figures.since(earlier),
                None => figures.clone(),
            })
            .filter(|figures| !figures.is_empty())
            .collect();
        *reported = now;
        delta
    }
}
