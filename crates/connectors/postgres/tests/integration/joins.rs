//! Join-key pushdown: a small table joined with a big PostgreSQL table sends its keys to
//! PostgreSQL, and the answer is the same with it on and off.

use crate::common::{context, server};
use datafusion::arrow::array::{Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use flotilla_testkit::assert_same_rows;
use flotilla_testkit::plans::run_with_scans;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selective_join_sends_its_keys_to_postgres() {
    let schema = server().load_tpch(0.1).unwrap();
    let (ctx, _) = context().await;
    let wanted = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new(
            "custkey",
            DataType::Int64,
            false,
        )])),
        vec![Arc::new(Int64Array::from(vec![7, 4_999, 14_998]))],
    )
    .unwrap();
    ctx.register_batch("wanted", wanted).unwrap();
    let sql = format!(
        "SELECT o_orderkey, o_custkey, o_totalprice FROM wanted \
         JOIN pg.{schema}.orders ON o_custkey = custkey"
    );
    let (with_keys, plan, scans) = run_with_scans(&ctx, &sql).await;
    assert!(plan.contains("join_keys=[DynamicFilter"), "{plan}");
    let orders = &scans[0];
    assert!(
        orders.sent.contains(
            "(\"o_custkey\" IN (CAST(7 AS BIGINT), CAST(4999 AS BIGINT), CAST(14998 AS BIGINT)))"
        ) && orders.sent.contains("(\"o_custkey\" >= CAST(7 AS BIGINT))"),
        "{}",
        orders.sent
    );
    // Only the orders of those three customers came over, not 150,000.
    let result_rows: usize = with_keys.iter().map(RecordBatch::num_rows).sum();
    assert!(result_rows > 0);
    assert_eq!(orders.rows, result_rows);

    ctx.sql("SET flotilla.federation.join_key_pushdown = false")
        .await
        .unwrap();
    let (without_keys, plan, scans) = run_with_scans(&ctx, &sql).await;
    assert!(!plan.contains("join_keys"), "{plan}");
    assert_eq!(scans[0].rows, 150_000);
    assert_same_rows(&with_keys, &without_keys, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_scan_is_read_in_key_ranges_in_parallel() {
    let schema = server().load_tpch(0.1).unwrap();
    let (ctx, _) = context().await;
    let reference = flotilla_testkit::plans::tpch_parquet_context(0.1).await;
    for set in [
        "SET flotilla.federation.partition_rows = 10000",
        "SET datafusion.execution.target_partitions = 2",
    ] {
        ctx.sql(set).await.unwrap();
    }
    let query = |table: &str| {
        format!(
            "SELECT o_orderkey, o_custkey, o_totalprice FROM {table} \
             WHERE o_orderstatus = 'F'"
        )
    };
    let (rows, plan, scans) = run_with_scans(&ctx, &query(&format!("pg.{schema}.orders"))).await;
    // 30,000 rows estimated (a fifth of 150,000), one range per 10,000, two cores: 2 ranges
    // split at the middle of o_orderkey's 1..=600,000.
    assert!(
        plan.contains("partitions=[o_orderkey < 300001; o_orderkey >= 300001]"),
        "{plan}"
    );
    let (expected, _) = flotilla_testkit::plans::run(&reference, &query("orders")).await;
    assert_same_rows(&expected, &rows, false);
    let received: usize = scans.iter().map(|s| s.rows).sum();
    assert_eq!(
        received,
        expected.iter().map(RecordBatch::num_rows).sum::<usize>()
    );
}
