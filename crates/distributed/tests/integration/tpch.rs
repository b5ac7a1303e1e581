//! TPC-H 22 distributed equals TPC-H 22 on one node.

use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::physical_plan::displayable;
use datafusion::prelude::{SessionConfig, SessionContext};
use flotilla_distributed::{
    DistributedOptions, DistributedSessionStateBuilder, InProcessCluster, Worker,
};
use flotilla_testkit::compare::{assert_same_rows, query_is_ordered};
use flotilla_testkit::plans::{register_tpch_parquet, tpch_parquet_context, tpch_query};

const SCALE: f64 = 0.1;
const TABLES: [&str; 8] = [
    "region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem",
];

fn worker(_: usize) -> Worker {
    Worker::new(SessionStateBuilder::new().with_default_features().build())
}

/// Every stage gets as many tasks as there are workers, whatever its size.
fn fan_out() -> DistributedOptions {
    DistributedOptions {
        enabled: true,
        bytes_per_task: 1,
        min_bytes: 0,
    }
}

async fn coordinator(
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

/// Runs the 22 queries on `ctx` and on DataFusion alone; returns how many plans crossed nodes.
async fn compare_all(ctx: &SessionContext) -> usize {
    let reference = tpch_parquet_context(SCALE).await;
    let mut crossed = 0;
    for n in 1..=22 {
        let sql = tpch_query(n);
        let expected = reference.sql(&sql).await.unwrap().collect().await.unwrap();
        let frame = ctx.sql(&sql).await.unwrap();
        let plan = frame.clone().create_physical_plan().await.unwrap();
        let text = displayable(plan.as_ref()).indent(false).to_string();
        if text.contains("Network") {
            crossed += 1;
        } else {
            println!("LOCAL q{n}:\n{text}");
        }
        let actual = frame
            .collect()
            .await
            .unwrap_or_else(|e| panic!("q{n} failed distributed: {e}\n{text}"));
        assert_same_rows(&expected, &actual, query_is_ordered(&sql));
    }
    crossed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tpch_on_four_in_process_nodes_equals_one_node() {
    let cluster = InProcessCluster::new(4, worker);
    let ctx = coordinator(cluster.distribution().unwrap(), fan_out()).await;
    let crossed = compare_all(&ctx).await;
    assert_eq!(crossed, 22, "every query crosses nodes when forced");
}
