//! TPC-H at SF 0.1 loaded into PostgreSQL: every query is pushed whole, as SQL with no more
//! derived tables than the query has subqueries, and answers like DataFusion over the same
//! data in Parquet. (Float division stays in DataFusion above the
//! scan: PostgreSQL raises an error on division by zero where DataFusion returns ±∞/NaN —
//! q14, q17.)

use crate::common::{context, pushed_whole, server};
use flotilla_testkit::plans::{
    answers_like, register_tpch_from, too_many_derived_tables, tpch_parquet_context, tpch_query,
};
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
        let plan = answers_like(&reference, &ctx, &sql).await;
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
