//! TPC-H at SF 0.1 loaded into MariaDB: every query answers like DataFusion over the same data
//! in Parquet, with everything pushed that MariaDB can run (whole unless a capability forbids
//! it: listed below, with why) and by cost.

use crate::common::{context, plan_text, pushed_whole, run, server};
use flotilla_testkit::plans::{
    register_tpch_from, too_many_derived_tables, tpch_parquet_context, tpch_query,
};
use flotilla_testkit::{Decimals, assert_same_rows_with, query_is_ordered};
use flotilla_tpch::Table;

const SCALE: f64 = 0.1;

/// Queries not pushed whole into MariaDB, and why: MariaDB joins without an index by nested
/// loops (see `Dialect::join_needs_index`), so these joins are left to DataFusion.
const NOT_WHOLE: &[(usize, &str)] = &[
    (
        2,
        "joins the decorrelated min(ps_supplycost) aggregate, which has no index",
    ),
    (
        13,
        "customer LEFT JOIN orders on o_custkey, which has no index",
    ),
    (
        17,
        "correlated EXISTS over the avg(l_quantity) aggregate, which has no index",
    ),
    (
        20,
        "joins the decorrelated sum(l_quantity) aggregate, which has no index",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_in_mariadb_is_correct_and_pushed_whole_where_mariadb_can() {
    let reference = tpch_parquet_context(SCALE).await;
    let database = server().load_tpch(SCALE).unwrap();
    let (ctx, _) = context(&database).await;
    // What is not pushed whole reads lineitem and orders in key ranges.
    ctx.sql("SET flotilla.federation.partition_rows = 100000")
        .await
        .unwrap();
    // What MariaDB can run: everything pushed that it can (the cost model's choice is below).
    ctx.sql("SET flotilla.federation.pushdown = 'all'")
        .await
        .unwrap();
    register_tpch_from(
        &ctx,
        &format!("my.{database}"),
        &Table::ALL.map(|t| t.name()),
    )
    .await;
    let mut unexpected = Vec::new();
    for n in 1..=22 {
        let sql = tpch_query(n);
        let (expected, _) = run(&reference, &sql).await;
        let (actual, plan) = run(&ctx, &sql).await;
        // MariaDB divides decimals with more digits than DataFusion keeps, then rounds.
        assert_same_rows_with(
            &expected,
            &actual,
            query_is_ordered(&sql),
            Decimals::LastDigit,
        );
        let plan = plan_text(&plan);
        let expected_whole = !NOT_WHOLE.iter().any(|(q, _)| *q == n);
        if pushed_whole(&plan) != expected_whole {
            unexpected.push(format!("q{n} (expected whole: {expected_whole}):\n{plan}"));
        }
        if expected_whole {
            unexpected.extend(too_many_derived_tables(n, &plan));
        }
    }
    assert!(unexpected.is_empty(), "{}", unexpected.join("\n"));

    // By cost (the default), with MariaDB's measured costs: a scan of lineitem aggregated
    // (q1) or joined by nested-loop lookups into five tables (q9) runs faster read and done
    // here; every answer stays the same.
    ctx.sql("SET flotilla.federation.pushdown = 'cost'")
        .await
        .unwrap();
    for n in 1..=22 {
        let sql = tpch_query(n);
        let (expected, _) = run(&reference, &sql).await;
        let (actual, plan) = run(&ctx, &sql).await;
        assert_same_rows_with(
            &expected,
            &actual,
            query_is_ordered(&sql),
            Decimals::LastDigit,
        );
        let plan = plan_text(&plan);
        if [1, 9].contains(&n) {
            assert!(plan.contains("runs here: est"), "q{n}:\n{plan}");
        }
    }
}
