//! TPC-H 22 distributed equals TPC-H 22 on one node.

use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::physical_plan::displayable;
use datafusion::prelude::{SessionConfig, SessionContext};
use flotilla_distributed::{
    DistributedOptions, DistributedSessionStateBuilder, InProcessCluster, LocalhostCluster, Worker,
};
use flotilla_testkit::compare::{assert_same_rows, query_is_ordered};
use flotilla_testkit::plans::{
    register_tpch_parquet, tpch_parquet_context, tpch_parquet_dir, tpch_query,
};

pub(crate) const SCALE: f64 = 0.1;
pub(crate) const TABLES: [&str; 8] = [
    "region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem",
];

/// A worker with DataFusion's defaults, as every test cluster here uses.
pub(crate) fn worker(_: usize) -> Worker {
    Worker::new(SessionStateBuilder::new().with_default_features().build())
}

/// Every stage gets as many tasks as there are workers, whatever its size, and joins keep
/// DataFusion's single-node choice (so partitioned joins shuffle both sides).
pub(crate) fn fan_out() -> DistributedOptions {
    DistributedOptions {
        enabled: true,
        bytes_per_task: 1,
        min_bytes: 0,
        broadcast_bytes: 0,
        ..DistributedOptions::default()
    }
}

/// A session distributing over `distribution` with `options`, TPC-H registered.
pub(crate) async fn coordinator(
    distribution: flotilla_distributed::Distribution,
    options: DistributedOptions,
) -> SessionContext {
    let config = SessionConfig::new().with_option_extension(options);
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_distribution(distribution)
        .build();
    let ctx = SessionContext::new_with_state(state);
    register_tpch_parquet(&ctx, SCALE, &TABLES).await;
    ctx
}

/// The physical plan of `sql` on `ctx`, as `EXPLAIN` shows it.
pub(crate) async fn plan_text(ctx: &SessionContext, sql: &str) -> String {
    let plan = ctx
        .sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    displayable(plan.as_ref()).indent(false).to_string()
}

/// The rows of `sql` on DataFusion alone over the same TPC-H files: the reference.
pub(crate) async fn reference_rows(sql: &str) -> Vec<datafusion::arrow::array::RecordBatch> {
    tpch_parquet_context(SCALE)
        .await
        .sql(sql)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap()
}

/// The distributed plan of each query, with the data directory's random name taken out.
type Plans = Vec<String>;

/// Runs the 22 queries on `ctx` and on DataFusion alone, row for row; returns the plans.
async fn compare_all(ctx: &SessionContext) -> Plans {
    let reference = tpch_parquet_context(SCALE).await;
    let mut plans = Vec::new();
    for n in 1..=22 {
        let sql = tpch_query(n);
        let expected = reference.sql(&sql).await.unwrap().collect().await.unwrap();
        let frame = ctx.sql(&sql).await.unwrap();
        let plan = frame.clone().create_physical_plan().await.unwrap();
        let text = displayable(plan.as_ref()).indent(false).to_string();
        let actual = frame
            .collect()
            .await
            .unwrap_or_else(|e| panic!("q{n} failed distributed: {e}\n{text}"));
        assert_same_rows(&expected, &actual, query_is_ordered(&sql));
        plans.push(without_data_dir(&text));
    }
    plans
}

fn without_data_dir(plan: &str) -> String {
    let dir = tpch_parquet_dir(SCALE);
    let dir = dir.to_string_lossy();
    plan.replace(dir.trim_start_matches('/'), "TPCH")
}

/// Waits (up to 5 s) until no worker keeps a task.
async fn wait_until_idle(workers: &[Worker]) {
    let started = std::time::Instant::now();
    loop {
        let running: usize = workers.iter().map(Worker::running_tasks).sum();
        if running == 0 {
            return;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{running} tasks still kept by the workers"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn crossing(plans: &Plans) -> Vec<usize> {
    (1..=22)
        .filter(|n| plans[n - 1].contains("Network"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tpch_on_four_in_process_nodes_equals_one_node() {
    let cluster = InProcessCluster::new(4, worker);
    let ctx = coordinator(cluster.distribution().unwrap(), fan_out()).await;
    let plans = compare_all(&ctx).await;
    assert_eq!(
        crossing(&plans),
        (1..=22).collect::<Vec<_>>(),
        "every query crosses nodes when forced"
    );
    for (n, plan) in plans.iter().enumerate() {
        insta::assert_snapshot!(format!("tpch_q{:02}_four_nodes_fan_out", n + 1), plan);
    }
    // The coordinator ends each query on its workers: no task is left behind (some are
    // never asked for all partitions, e.g. the probe side of a join whose build side is empty).
    wait_until_idle(cluster.workers()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tpch_on_three_localhost_nodes_equals_one_node() {
    let cluster = LocalhostCluster::start(3, worker).await.unwrap();
    let ctx = coordinator(cluster.distribution().unwrap(), fan_out()).await;
    let plans = compare_all(&ctx).await;
    assert_eq!(crossing(&plans), (1..=22).collect::<Vec<_>>());
    assert!(plans[0].contains(&cluster.urls()[2]), "{}", plans[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tpch_with_default_options_equals_one_node() {
    let cluster = InProcessCluster::new(2, worker);
    let ctx = coordinator(
        cluster.distribution().unwrap(),
        DistributedOptions::default(),
    )
    .await;
    let plans = compare_all(&ctx).await;
    // SF 0.1 has about 80 MB of lineitem by its statistics: the big scans spread, the small
    // queries stay where they are.
    let crossed = crossing(&plans);
    assert!(crossed.contains(&1), "q1 reads lineitem: {crossed:?}");
    assert!(crossed.len() < 22, "{crossed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn small_join_sides_are_broadcast_instead_of_shuffled() {
    let cluster = InProcessCluster::new(2, worker);
    let sql = tpch_query(5);
    let reference = tpch_parquet_context(SCALE).await;
    let expected = reference.sql(&sql).await.unwrap().collect().await.unwrap();
    let mut plans = Vec::new();
    for broadcast_bytes in [0, 64 << 20] {
        let options = DistributedOptions {
            broadcast_bytes,
            ..fan_out()
        };
        let ctx = coordinator(cluster.distribution().unwrap(), options).await;
        // SF 0.1 is small enough for DataFusion's own threshold to collect every build side;
        // without it, only the broadcast threshold can.
        for key in ["threshold", "threshold_rows"] {
            let set = format!("SET datafusion.optimizer.hash_join_single_partition_{key} = 0");
            ctx.sql(&set).await.unwrap().collect().await.unwrap();
        }
        let frame = ctx.sql(&sql).await.unwrap();
        let plan = frame.clone().create_physical_plan().await.unwrap();
        let text = displayable(plan.as_ref()).indent(false).to_string();
        let actual = frame.collect().await.unwrap();
        assert_same_rows(&expected, &actual, true);
        plans.push(text);
    }
    let count = |plan: &str, what: &str| plan.matches(what).count();
    let (shuffled, broadcast) = (&plans[0], &plans[1]);
    assert!(
        count(broadcast, "NetworkShuffleExec") < count(shuffled, "NetworkShuffleExec"),
        "broadcasting should leave fewer shuffles:\n{shuffled}\n{broadcast}"
    );
    assert!(
        count(broadcast, "mode=CollectLeft") > count(shuffled, "mode=CollectLeft"),
        "{broadcast}"
    );
    assert!(
        broadcast.contains("Network"),
        "q5 still distributes:\n{broadcast}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compressed_exchanges_send_fewer_bytes_and_the_same_rows() {
    let cluster = InProcessCluster::new(2, worker);
    let ctx = coordinator(cluster.distribution().unwrap(), fan_out()).await;
    let sql = tpch_query(3);
    let reference = tpch_parquet_context(SCALE).await;
    let expected = reference.sql(&sql).await.unwrap().collect().await.unwrap();
    let sent = || -> u64 { cluster.workers().iter().map(Worker::bytes_sent).sum() };
    let mut bytes = Vec::new();
    for compression in ["none", "lz4", "zstd"] {
        let set = format!("SET distributed.compression = '{compression}'");
        ctx.sql(&set).await.unwrap().collect().await.unwrap();
        let before = sent();
        let actual = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        assert_same_rows(&expected, &actual, true);
        bytes.push(sent() - before);
    }
    assert!(
        bytes[1] < bytes[0] && bytes[2] < bytes[0],
        "none, lz4, zstd: {bytes:?}"
    );
    let error = ctx
        .sql("SET distributed.compression = 'gzip'")
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("none, lz4 or zstd"), "{error}");
}
