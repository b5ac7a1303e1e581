//! TPC-H at SF 0.1 loaded into PostgreSQL: every query is pushed whole, as SQL with no more
//! derived tables than the query has subqueries, and answers like DataFusion over the same
//! data in Parquet. (Float division stays in DataFusion above the
//! scan: PostgreSQL raises an error on division by zero where DataFusion returns ±∞/NaN —
//! q14, q17.)

use crate::common::{context, plan_text, pushed_whole, run, server};
use flotilla_testkit::plans::{
    register_tpch_from, too_many_derived_tables, tpch_parquet_context, tpch_query,
};
use flotilla_testkit::{Decimals, assert_same_rows_with, query_is_ordered};
use flotilla_tpch::Table;

const SCALE: f64 = 0.1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_in_postgres_is_pushed_whole_flat_and_correct() {
    let reference = tpch_parquet_context(SCALE).await;
    let schema = server().load_tpch(SCALE).unwrap();
    let (ctx, _) = context().await;
    register_tpch_from(&ctx, &format!("pg.{schema}"), &Table::ALL.map(|t| t.name())).await;
    let (mut not_whole, mut nested) = (Vec::new(), Vec::new());
    for n in 1..=22 {
        let sql = tpch_query(n);
        let (expected, _) = run(&reference, &sql).await;
        let (actual, plan) = run(&ctx, &sql).await;
        // PostgreSQL divides decimals with more digits than DataFusion keeps, then rounds.
        assert_same_rows_with(
            &expected,
            &actual,
            query_is_ordered(&sql),
            Decimals::LastDigit,
        );
        let plan = plan_text(&plan);
        if !pushed_whole(&plan) {
            not_whole.push(format!("q{n}:\n{plan}"));
        }
        nested.extend(too_many_derived_tables(n, &plan));
    }
    assert!(
        not_whole.is_empty(),
        "not pushed whole:\n{}",
        not_whole.join("\n")
    );
    assert!(nested.is_empty(), "{}", nested.join("\n"));
}
