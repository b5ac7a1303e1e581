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
    // Every query whole (pushdown = 'all'): the SQL PostgreSQL is sent is flat.
    ctx.sql("SET flotilla.federation.pushdown = 'all'")
        .await
        .unwrap();
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
    // By cost: the answers are the same, and PostgreSQL still runs nearly every query whole.
    // Today q9 is cut (its joins pushed, the last one here: at SF 1 1.8 s against 2.0 s
    // whole). Missed: q13 and q18 stay whole although at SF 1 they run in 1.6 s and 9.8 s
    // against 0.8 s and 5.8 s read and joined here — PostgreSQL's price of a hash join or
    // grouping of rows that carry columns is about 0.45 µs a row, not the 0.1 µs the model
    // takes; at that price ten queries would be cut, most of them wrongly.
    ctx.sql("SET flotilla.federation.pushdown = 'cost'")
        .await
        .unwrap();
    let mut cut = Vec::new();
    for n in 1..=22 {
        let plan = answers_like(&reference, &ctx, &tpch_query(n)).await;
        if !pushed_whole(&plan) {
            cut.push(n);
        }
    }
    assert!(cut.len() <= 2, "cut by cost: {cut:?}");
}
