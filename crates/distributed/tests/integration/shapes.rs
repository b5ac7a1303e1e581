//! Query shapes that once came back wrong from a cluster, each equal to one node now, in every
//! partition count a user can set; and plans the planner cannot prove right stay on one node
//! and say why.

use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use flotilla_distributed::{DistributedSessionStateBuilder, InProcessCluster};
use flotilla_testkit::compare::{compare_batches, query_is_ordered};
use flotilla_testkit::plans::{register_tpch_parquet, tpch_query};

use crate::tpch::{SCALE, fan_out, plan_text as plan_of, worker};

const TPCH_TABLES: [&str; 8] = [
    "region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem",
];

/// A coordinator over `cluster` that spreads every stage over all nodes, with
/// `target_partitions` partitions.
fn coordinator(cluster: &InProcessCluster, target_partitions: usize) -> SessionContext {
    let config = SessionConfig::new()
        .with_target_partitions(target_partitions)
        .with_option_extension(fan_out());
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_distribution(cluster.distribution().unwrap())
        .build();
    SessionContext::new_with_state(state)
}

fn single_node(target_partitions: usize) -> SessionContext {
    SessionContext::new_with_config(SessionConfig::new().with_target_partitions(target_partitions))
}

/// Runs `sql` on one node and on the cluster with 1–4 partitions; returns the failures.
async fn differences(cluster: &InProcessCluster, sql: &str) -> Vec<String> {
    let mut failures = Vec::new();
    for partitions in 1..=4 {
        let expected = single_node(partitions)
            .sql(sql)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let ctx = coordinator(cluster, partitions);
        let plan = plan_of(&ctx, sql).await;
        match ctx.sql(sql).await.unwrap().collect().await {
            Ok(actual) => {
                if let Err(e) = compare_batches(&expected, &actual, query_is_ordered(sql)) {
                    failures.push(format!("{partitions} partition(s): {e}\n{plan}"));
                }
            }
            Err(e) => failures.push(format!("{partitions} partition(s): failed: {e}\n{plan}")),
        }
    }
    failures
}

async fn assert_like_one_node(cluster: &InProcessCluster, sql: &str) {
    let failures = differences(cluster, sql).await;
    assert!(failures.is_empty(), "{sql}\n{}", failures.join("\n\n"));
}

const SERIES_SUM: &str = "SELECT count(*), sum(t) FROM \
     (SELECT value * 2 AS t FROM generate_series(1, 100000) WHERE value % 3 = 0) AS d";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_aggregate_without_group_by_over_a_derived_table_is_one_row() {
    let cluster = InProcessCluster::new(3, worker);
    assert_like_one_node(&cluster, SERIES_SUM).await;
    assert_like_one_node(
        &cluster,
        "SELECT count(*), max(value) FROM generate_series(1, 10)",
    )
    .await;
    assert_like_one_node(
        &cluster,
        "SELECT count(*) FROM (VALUES (1), (2), (3)) AS v(x)",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_nested_loop_join_of_two_series_with_an_aggregate_is_one_row() {
    let cluster = InProcessCluster::new(3, worker);
    let sql = "SELECT count(*), sum(a.value + b.value) FROM generate_series(1, 300) a \
               JOIN generate_series(1, 200) b ON a.value < b.value";
    assert_like_one_node(&cluster, sql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn set_operations_keep_every_row() {
    let cluster = InProcessCluster::new(3, worker);
    for op in [
        "INTERSECT",
        "INTERSECT ALL",
        "EXCEPT",
        "EXCEPT ALL",
        "UNION",
        "UNION ALL",
    ] {
        let sql = format!(
            "SELECT value % 97 AS v FROM generate_series(1, 5000) {op} \
             SELECT value % 89 FROM generate_series(1, 3000)"
        );
        assert_like_one_node(&cluster, &sql).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cross_join_of_two_series_runs() {
    let cluster = InProcessCluster::new(3, worker);
    assert_like_one_node(
        &cluster,
        "SELECT g1.value, g2.value FROM generate_series(1, 3) g1 CROSS JOIN generate_series(1, 3) g2",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn float16_and_dictionary_values_travel_between_nodes() {
    let cluster = InProcessCluster::new(3, worker);
    let sql = "SELECT k, count(*), min(h), max(d) FROM (\
                 SELECT value % 7 AS k, arrow_cast(value / 3.0, 'Float16') AS h, \
                        arrow_cast(CAST(value % 11 AS VARCHAR), 'Dictionary(Int32, Utf8)') AS d \
                 FROM generate_series(1, 20000)) GROUP BY k";
    assert_like_one_node(&cluster, sql).await;
    let rows = "SELECT arrow_cast(value / 3.0, 'Float16') AS h, \
                arrow_cast(CAST(value % 11 AS VARCHAR), 'Dictionary(Int32, Utf8)') AS d \
                FROM generate_series(1, 5000)";
    assert_like_one_node(&cluster, rows).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_lists_travel_between_nodes() {
    let cluster = InProcessCluster::new(3, worker);
    // Grouped by the list: the partial aggregates' lists are shuffled between nodes.
    let sql = "SELECT l, count(*) FROM (\
                 SELECT CASE WHEN value % 5 = 0 THEN NULL \
                        ELSE arrow_cast(make_array(value % 13, NULL, -value % 3), 'LargeList(Int64)') \
                        END AS l \
                 FROM generate_series(1, 20000)) GROUP BY l";
    let plan = plan_of(&coordinator(&cluster, 2), sql).await;
    assert!(!plan.contains("not distributed"), "{plan}");
    assert!(plan.contains("NetworkShuffleExec"), "{plan}");
    assert_like_one_node(&cluster, sql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn window_functions_limits_and_sorts_match_one_node() {
    let cluster = InProcessCluster::new(3, worker);
    for sql in [
        "SELECT value, row_number() OVER (ORDER BY value DESC) FROM generate_series(1, 2000) \
         ORDER BY value LIMIT 50",
        "SELECT value % 5 AS g, sum(value) OVER (PARTITION BY value % 5 ORDER BY value) \
         FROM generate_series(1, 3000)",
        "SELECT value FROM generate_series(1, 4000) ORDER BY value DESC LIMIT 7 OFFSET 3",
        "SELECT count(*) FROM (SELECT value FROM generate_series(1, 4000) LIMIT 123)",
        // A limit below a projection: each task must not keep its own 2 groups.
        "SELECT count(*) FROM (SELECT value % 5, count(*) FROM generate_series(1, 3000) \
         GROUP BY value % 5 LIMIT 2)",
        "SELECT value % 10 AS g, count(DISTINCT value % 13) FROM generate_series(1, 9000) \
         GROUP BY ROLLUP(value % 10) ORDER BY g NULLS FIRST",
    ] {
        assert_like_one_node(&cluster, sql).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tpch_with_one_partition_per_node_equals_one_node() {
    let cluster = InProcessCluster::new(3, worker);
    let mut failures = Vec::new();
    for partitions in [1, 3] {
        let reference = single_node(partitions);
        let ctx = coordinator(&cluster, partitions);
        for context in [&reference, &ctx] {
            register_tpch_parquet(context, SCALE, &TPCH_TABLES).await;
        }
        for n in 1..=22 {
            let sql = tpch_query(n);
            let expected = reference.sql(&sql).await.unwrap().collect().await.unwrap();
            let plan = plan_of(&ctx, &sql).await;
            match ctx.sql(&sql).await.unwrap().collect().await {
                Ok(actual) => {
                    if let Err(e) = compare_batches(&expected, &actual, query_is_ordered(&sql)) {
                        failures.push(format!("q{n}, {partitions} partition(s): {e}\n{plan}"));
                    }
                }
                Err(e) => failures.push(format!("q{n}, {partitions} partition(s): {e}\n{plan}")),
            }
            // One partition per node still distributes: the planner places the exchanges
            // DataFusion did not need on one node.
            if n == 1 {
                assert!(plan.contains("NetworkCoalesceExec"), "q1:\n{plan}");
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plan_that_stays_on_one_node_says_why() {
    let cluster = InProcessCluster::new(2, worker);
    let ctx = coordinator(&cluster, 2);
    register_tpch_parquet(&ctx, SCALE, &["nation"]).await;
    ctx.sql("SET distributed.min_bytes = 1000000000000")
        .await
        .unwrap();
    let small = "SELECT n_regionkey, count(*) FROM nation GROUP BY n_regionkey";
    let plan = plan_of(&ctx, small).await;
    assert!(
        plan.starts_with("SingleNodeExec: not distributed: it reads about"),
        "{plan}"
    );
    assert!(plan.contains("distributed.min_bytes"), "{plan}");
    let explained = ctx
        .sql(&format!("EXPLAIN {small}"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&explained)
        .unwrap()
        .to_string();
    assert!(text.contains("not distributed"), "{text}");
}
