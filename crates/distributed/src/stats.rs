//! Per-stage figures for `EXPLAIN ANALYZE`, gathered from every node.
//!
//! Each stream a task partition serves ends with a report: the rows and Arrow IPC bytes it
//! sent, how long it ran, and what the network operators of its task received from the stages
//! below since the task's previous report. Over gRPC the report is a last `FlightData` message
//! with no IPC header and the report in `app_metadata`; a task reading another task on its
//! own worker gets it directly. The consumer's network operator adds the figures up per stage;
//! on the coordinator each stage's figures end up on the operator that reads it, so `EXPLAIN
//! ANALYZE` shows `stage_rows`, `network_bytes`, `stage_time` (summed over the task
//! partitions' wall time on their nodes) and `streams` on every `NetworkShuffleExec` and
//! `NetworkCoalesceExec`.

use datafusion::physical_plan::metrics::{Count, Metric, MetricValue, MetricsSet, Time};
use prost::Message;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What one task partition's stream reports when it ends.
#[derive(Clone, PartialEq, Message)]
pub struct StageReport {
    /// The stream's own stage first, then the stages below it.
    #[prost(message, repeated, tag = "1")]
    pub stages: Vec<StageFigures>,
}

/// Figures of one stage.
#[derive(Clone, PartialEq, Message)]
pub struct StageFigures {
    #[prost(uint32, tag = "1")]
    pub stage: u32,
    #[prost(uint64, tag = "2")]
    pub rows: u64,
    /// Arrow IPC bytes sent over the network (reads within a node count none).
    #[prost(uint64, tag = "3")]
    pub bytes: u64,
    /// Wall time of the streams, summed.
    #[prost(uint64, tag = "4")]
    pub nanos: u64,
    /// Task partition streams counted.
    #[prost(uint64, tag = "5")]
    pub streams: u64,
}

impl StageFigures {
    pub(crate) fn add(&mut self, other: &StageFigures) {
        self.rows += other.rows;
        self.bytes += other.bytes;
        self.nanos += other.nanos;
        self.streams += other.streams;
    }

    /// `self - earlier`, figure by figure (totals only grow).
    pub(crate) fn since(&self, earlier: &StageFigures) -> StageFigures {
        StageFigures {
            stage: self.stage,
            rows: self.rows.saturating_sub(earlier.rows),
            bytes: self.bytes.saturating_sub(earlier.bytes),
            nanos: self.nanos.saturating_sub(earlier.nanos),
            streams: self.streams.saturating_sub(earlier.streams),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rows == 0 && self.bytes == 0 && self.nanos == 0 && self.streams == 0
    }
}

/// Totals per stage, kept by a network operator.
#[derive(Debug, Default)]
pub struct StageStats(Mutex<BTreeMap<u32, StageFigures>>);

impl StageStats {
    pub(crate) fn add(&self, figures: &StageFigures) {
        let mut totals = self.0.lock().unwrap_or_else(|e| e.into_inner());
        totals
            .entry(figures.stage)
            .or_insert_with(|| StageFigures {
                stage: figures.stage,
                ..StageFigures::default()
            })
            .add(figures);
    }

    pub(crate) fn snapshot(&self) -> BTreeMap<u32, StageFigures> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The figures of `stage` as DataFusion metrics.
    pub(crate) fn metrics(&self, stage: u32) -> MetricsSet {
        let figures = self.snapshot().remove(&stage).unwrap_or_default();
        let mut set = MetricsSet::new();
        let count = |name: &'static str, value: u64| {
            let count = Count::new();
            count.add(usize::try_from(value).unwrap_or(usize::MAX));
            Arc::new(Metric::new(
                MetricValue::Count {
                    name: Cow::Borrowed(name),
                    count,
                },
                None,
            ))
        };
        set.push(count("stage_rows", figures.rows));
        set.push(count("network_bytes", figures.bytes));
        set.push(count("streams", figures.streams));
        let time = Time::new();
        time.add_duration(Duration::from_nanos(figures.nanos));
        set.push(Arc::new(Metric::new(
            MetricValue::Time {
                name: Cow::Borrowed("stage_time"),
                time,
            },
            None,
        )));
        set
    }
}
