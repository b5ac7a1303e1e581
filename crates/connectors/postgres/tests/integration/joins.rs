//! Join-key pushdown: a small table joined with a big PostgreSQL table sends its keys to
//! PostgreSQL, and the answer is the same with it on and off.

use crate::common::{context, server};
use datafusion::arrow::array::{Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::physical_plan::{ExecutionPlan, collect, displayable};
use datafusion::prelude::SessionContext;
use flotilla_federation::FederatedScanExec;
use flotilla_testkit::assert_same_rows;
use std::sync::Arc;

/// The federated scans of `plan`, depth first.
fn scans(plan: &Arc<dyn ExecutionPlan>) -> Vec<&FederatedScanExec> {
    let mut found = Vec::new();
    if let Some(scan) = plan.downcast_ref::<FederatedScanExec>() {
        found.push(scan);
    }
    for child in plan.children() {
        found.extend(scans(child));
    }
    found
}

/// Runs `sql`; returns its rows, the plan text before running, the SQL each scan sent, and the
/// rows each scan received.
async fn run(ctx: &SessionContext, sql: &str) -> (Vec<RecordBatch>, String, Vec<(String, usize)>) {
    let plan = ctx
        .sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let text = displayable(plan.as_ref()).indent(false).to_string();
    let rows = collect(Arc::clone(&plan), ctx.task_ctx()).await.unwrap();
    let sent = scans(&plan)
        .into_iter()
        .map(|scan| {
            let received = scan
                .metrics()
                .and_then(|m| m.output_rows())
                .unwrap_or_default();
            (
                scan.sent_sql().unwrap_or_else(|| scan.sql().to_string()),
                received,
            )
        })
        .collect();
    (rows, text, sent)
}

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
    let (with_keys, plan, sent) = run(&ctx, &sql).await;
    assert!(plan.contains("join_keys=[DynamicFilter"), "{plan}");
    let (orders_sql, received) = &sent[0];
    assert!(
        orders_sql.contains(
            "(\"o_custkey\" IN (CAST(7 AS BIGINT), CAST(4999 AS BIGINT), CAST(14998 AS BIGINT)))"
        ) && orders_sql.contains("(\"o_custkey\" >= CAST(7 AS BIGINT))"),
        "{orders_sql}"
    );
    // Only the orders of those three customers came over, not 150,000.
    let expected_rows: usize = with_keys.iter().map(RecordBatch::num_rows).sum();
    assert!(expected_rows > 0);
    assert_eq!(*received, expected_rows);

    ctx.sql("SET flotilla.federation.join_key_pushdown = false")
        .await
        .unwrap();
    let (without_keys, plan, sent) = run(&ctx, &sql).await;
    assert!(!plan.contains("join_keys"), "{plan}");
    assert_eq!(sent[0].1, 150_000);
    assert_same_rows(&with_keys, &without_keys, false);
}
