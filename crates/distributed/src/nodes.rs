//! The cluster as a table: each node discovery finds, whether it is up, when it was last seen,
//! why it is down, and the stage tasks it is running (asked with the `flotilla.status` action
//! when the table is read). `flotilla serve` registers it as `flotilla.cluster.nodes`.
//!
//! ```text
//! SELECT * FROM flotilla.cluster.nodes;
//!  node                  | state | last_seen               | down_since | last_error | running_tasks
//!  grpc://10.0.0.1:50051 | up    | 2026-12-05T23:50:01.2Z  |            |            | 3
//!  grpc://10.0.0.2:50051 | down  | 2026-12-05T23:49:58.0Z  | 2026-12-0… | cannot co… |
//! ```

use arrow_flight::Action;
use arrow_flight::flight_service_client::FlightServiceClient;
use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, RecordBatch, StringBuilder, TimestampMillisecondBuilder, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Result;
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use futures::StreamExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::channels::ChannelCache;
use crate::discovery::WorkerDiscovery;
use crate::protocol::STATUS_ACTION;

/// How long a node may take to say how many tasks it runs (a busy node answers late).
const STATUS_TIMEOUT: Duration = Duration::from_secs(3);

/// `flotilla.cluster.nodes`.
#[derive(Debug)]
pub struct ClusterNodes {
    discovery: Arc<dyn WorkerDiscovery>,
    channels: Arc<ChannelCache>,
    schema: SchemaRef,
}

impl ClusterNodes {
    pub fn new(discovery: Arc<dyn WorkerDiscovery>, channels: Arc<ChannelCache>) -> Self {
        let time = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
        let schema = Arc::new(Schema::new(vec![
            Field::new("node", DataType::Utf8, false),
            Field::new("state", DataType::Utf8, false),
            Field::new("last_seen", time.clone(), true),
            Field::new("down_since", time, true),
            Field::new("last_error", DataType::Utf8, true),
            Field::new("running_tasks", DataType::UInt64, true),
        ]));
        Self {
            discovery,
            channels,
            schema,
        }
    }

    /// The table's rows now.
    ///
    /// # Errors
    /// When the nodes cannot be discovered.
    pub async fn rows(&self) -> Result<RecordBatch> {
        let nodes = self
            .discovery
            .workers()
            .map_err(flotilla_common::Error::into_datafusion)?;
        let tasks = futures::future::join_all(nodes.iter().map(|node| async move {
            if self.channels.is_up(node) {
                self.running_tasks(node).await
            } else {
                None
            }
        }))
        .await;
        // After asking: a node that could not be reached just now is down in this answer.
        let down = self.channels.down();
        let millis = |time: SystemTime| {
            time.duration_since(UNIX_EPOCH).map_or(0, |since| {
                i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
            })
        };
        let mut node_column = StringBuilder::new();
        let mut state = StringBuilder::new();
        let mut last_seen = TimestampMillisecondBuilder::new().with_timezone("UTC");
        let mut down_since = TimestampMillisecondBuilder::new().with_timezone("UTC");
        let mut last_error = StringBuilder::new();
        let mut running = UInt64Builder::new();
        for (node, tasks) in nodes.iter().zip(tasks) {
            node_column.append_value(node);
            let gone = down.iter().find(|(url, _)| url == node).map(|(_, d)| d);
            state.append_value(if gone.is_some() { "down" } else { "up" });
            last_seen.append_option(self.channels.last_seen(node).map(millis));
            down_since.append_option(gone.map(|d| millis(d.at)));
            last_error.append_option(gone.map(|d| d.error.clone()));
            running.append_option(tasks);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(node_column.finish()),
            Arc::new(state.finish()),
            Arc::new(last_seen.finish()),
            Arc::new(down_since.finish()),
            Arc::new(last_error.finish()),
            Arc::new(running.finish()),
        ];
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }

    /// The stage tasks `node` runs, if it answers in time. A node that cannot be reached (no
    /// connection: not merely slow) is marked down, as a failed call of a query would.
    async fn running_tasks(&self, node: &str) -> Option<u64> {
        let channel = self.channels.get(node).ok()?;
        let action = Action::new(STATUS_ACTION, "");
        let call = async {
            let mut client = FlightServiceClient::new(channel);
            let mut stream = match client.do_action(self.channels.request(action)).await {
                Ok(response) => response.into_inner(),
                Err(status) => {
                    if status.code() == tonic::Code::Unavailable {
                        self.channels.mark_down(node, status.message());
                    }
                    return None;
                }
            };
            let result = stream.next().await?.ok()?;
            std::str::from_utf8(&result.body).ok()?.trim().parse().ok()
        };
        let tasks = tokio::time::timeout(STATUS_TIMEOUT, call).await.ok()?;
        if tasks.is_some() {
            self.channels.saw(node);
        }
        tasks
    }
}

#[async_trait]
impl TableProvider for ClusterNodes {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = self.rows().await?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            Arc::clone(&self.schema),
            projection.cloned(),
        )?)
    }
}
