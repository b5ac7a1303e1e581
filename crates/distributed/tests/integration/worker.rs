//! A worker on a TCP port runs plan partitions sent to it, under the coordinator's options, and
//! its answers equal running the same plan locally.

use arrow_flight::flight_service_server::FlightServiceServer;
use datafusion::arrow::array::{Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties, collect};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_proto::physical_plan::DefaultPhysicalExtensionCodec;
use flotilla_distributed::{ChannelCache, DefaultChannels, Worker, execute_remote};
use futures::TryStreamExt;
use std::sync::Arc;

/// Starts a worker on 127.0.0.1 (port 0); returns its URL.
async fn start_worker() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("grpc://{}", listener.local_addr().unwrap());
    let worker = Worker::new(SessionStateBuilder::new().with_default_features().build());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(FlightServiceServer::new(worker))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .unwrap();
    });
    url
}

fn numbers(n: i64) -> RecordBatch {
    let keys: Vec<i64> = (0..n).collect();
    let values: Vec<i64> = (0..n).map(|k| k * 7 % 1000).collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Int64, false),
        ])),
        vec![
            Arc::new(Int64Array::from(keys)),
            Arc::new(Int64Array::from(values)),
        ],
    )
    .unwrap()
}

/// Runs every output partition of `plan` on the worker and returns all batches.
async fn run_remotely(
    ctx: &SessionContext,
    cache: &ChannelCache,
    url: &str,
    plan: Arc<dyn ExecutionPlan>,
) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    let state = ctx.state();
    for partition in 0..plan.output_partitioning().partition_count() {
        let stream = execute_remote(
            cache.get(url).unwrap(),
            url,
            Arc::clone(&plan),
            state.config_options(),
            partition,
            &DefaultPhysicalExtensionCodec {},
        )
        .await
        .unwrap();
        batches.extend(stream.try_collect::<Vec<_>>().await.unwrap());
    }
    batches
}

fn sorted_rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut rows: Vec<String> = datafusion::arrow::util::pretty::pretty_format_batches(batches)
        .unwrap()
        .to_string()
        .lines()
        .filter(|l| l.starts_with("| ") && !l.contains(" g "))
        .map(str::to_string)
        .collect();
    rows.sort();
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_runs_plan_partitions_like_the_local_engine() {
    let url = start_worker().await;
    let cache = ChannelCache::new(Arc::new(DefaultChannels::default()));
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(3));
    ctx.register_batch("t", numbers(10_000)).unwrap();
    let sql = "SELECT k % 13 AS g, sum(v) AS s, count(*) AS c FROM t WHERE v > 100 GROUP BY g";
    let plan = ctx
        .sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    assert!(plan.output_partitioning().partition_count() > 1);
    let local = collect(Arc::clone(&plan), ctx.task_ctx()).await.unwrap();
    let remote = run_remotely(&ctx, &cache, &url, plan).await;
    assert_eq!(sorted_rows(&remote), sorted_rows(&local));
    assert_eq!(sorted_rows(&local).len(), 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coordinators_options_are_in_effect_on_the_worker() {
    let url = start_worker().await;
    let cache = ChannelCache::new(Arc::new(DefaultChannels::default()));
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
    ctx.register_batch("t", numbers(100)).unwrap();
    // A `datafusion.*` option changed on the coordinator shapes the worker's output.
    ctx.sql("SET datafusion.execution.batch_size = 7")
        .await
        .unwrap();
    let plan = ctx
        .sql("SELECT k, v FROM t WHERE v >= 0")
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let remote = run_remotely(&ctx, &cache, &url, plan).await;
    assert_eq!(remote.iter().map(RecordBatch::num_rows).sum::<usize>(), 100);
    assert!(
        remote.iter().all(|b| b.num_rows() <= 7),
        "batch sizes {:?}",
        remote.iter().map(RecordBatch::num_rows).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tasks_and_absent_workers_are_clear_errors() {
    let url = start_worker().await;
    let cache = ChannelCache::new(Arc::new(DefaultChannels::default()));
    // A ticket that is no task.
    let mut client =
        arrow_flight::flight_service_client::FlightServiceClient::new(cache.get(&url).unwrap());
    let status = client
        .do_get(arrow_flight::Ticket::new(vec![0xff, 0x01, 0x02]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status}");
    // A partition the plan does not have.
    let ctx = SessionContext::new();
    ctx.register_batch("t", numbers(10)).unwrap();
    let plan = ctx
        .sql("SELECT k FROM t")
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let e = execute_remote(
        cache.get(&url).unwrap(),
        &url,
        Arc::clone(&plan),
        ctx.state().config_options(),
        99,
        &DefaultPhysicalExtensionCodec {},
    )
    .await
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains(&url) && e.contains("partition 99"), "{e}");
    // A worker that is not there: the error names it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gone = format!("grpc://127.0.0.1:{port}");
    let e = execute_remote(
        cache.get(&gone).unwrap(),
        &gone,
        plan,
        ctx.state().config_options(),
        0,
        &DefaultPhysicalExtensionCodec {},
    )
    .await
    .err()
    .unwrap();
    assert_eq!(e.kind(), flotilla_common::ErrorKind::Unavailable);
    assert!(e.to_string().contains(&gone), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_attached_coordinator_reads_its_own_workers_tasks_in_memory() {
    use crate::tpch::{SCALE, coordinator, fan_out};
    use flotilla_distributed::LocalhostCluster;
    use flotilla_testkit::compare::assert_same_rows;
    use flotilla_testkit::plans::tpch_parquet_context;

    let cluster = LocalhostCluster::start(2, |_| {
        Worker::new(SessionStateBuilder::new().with_default_features().build())
    })
    .await
    .unwrap();
    let ctx = coordinator(cluster.distribution().unwrap(), fan_out()).await;
    // The coordinator is node 0's: its gather reads node 0's task without the network.
    let node0 = &cluster.workers()[0];
    assert!(node0.attach(&mut ctx.state_ref().write()));
    // One scan stage, a task on each node, gathered by the coordinator.
    let sql = "SELECT l_orderkey, l_linenumber FROM lineitem WHERE l_quantity > 49";
    let plan = flotilla_testkit::plans::plan_text(
        &ctx.sql(sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap(),
    );
    assert!(plan.contains(&cluster.urls()[0]), "{plan}");
    let actual = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let expected = tpch_parquet_context(SCALE)
        .await
        .sql(sql)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_same_rows(&expected, &actual, false);
    assert_eq!(node0.bytes_sent(), 0, "node 0's rows went over the network");
    assert!(cluster.workers()[1].bytes_sent() > 0);

    // A session that is not distributed, or a worker without an address, is left alone.
    let mut plain = SessionStateBuilder::new().build();
    assert!(!node0.attach(&mut plain));
    let unnamed = Worker::new(SessionStateBuilder::new().with_default_features().build());
    assert!(!unnamed.attach(&mut ctx.state_ref().write()));
}
