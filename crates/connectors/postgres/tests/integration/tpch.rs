//! TPC-H at SF 0.1 loaded into PostgreSQL: every query is pushed whole and answers like
//! DataFusion over the same data in Parquet.

use crate::common::{context, plan_text, pushed_whole, run, server};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use flotilla_testkit::{Decimals, assert_same_rows_with, query_is_ordered};
use flotilla_tpch::{Format, GenerateOptions, Table};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const SCALE: f64 = 0.1;

fn parquet_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = flotilla_testkit::reaper::temp_dir("flotilla-pg-tpch-").unwrap();
        let options = GenerateOptions {
            scale: SCALE,
            format: Format::Parquet,
            out: dir.clone(),
            tables: vec![],
        };
        flotilla_tpch::generate(&options, &|_, _| {}).unwrap();
        dir
    })
}

pub fn query(n: usize) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../tests/tpch/queries")
        .join(format!("q{n}.sql"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn parquet_context() -> SessionContext {
    let ctx = SessionContext::new();
    for table in Table::ALL {
        let path = parquet_dir().join(format!("{}.parquet", table.name()));
        ctx.register_parquet(
            table.name(),
            path.to_str().unwrap(),
            ParquetReadOptions::default(),
        )
        .await
        .unwrap();
    }
    ctx
}

/// The PostgreSQL catalog `pg` with the TPC-H tables also registered under their bare names.
async fn postgres_context() -> SessionContext {
    let schema = server().load_tpch(SCALE).unwrap();
    let (ctx, _) = context().await;
    for table in Table::ALL {
        let provider = ctx
            .table_provider(format!("pg.{schema}.{}", table.name()))
            .await
            .unwrap();
        ctx.register_table(table.name(), provider).unwrap();
    }
    ctx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_in_postgres_is_pushed_whole_and_correct() {
    let reference = parquet_context().await;
    let ctx = postgres_context().await;
    let mut not_whole = Vec::new();
    for n in 1..=22 {
        let sql = query(n);
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
    }
    assert!(
        not_whole.is_empty(),
        "not pushed whole:\n{}",
        not_whole.join("\n")
    );
}
