//! TPC-H at SF 0.1 across three systems — lineitem in Parquet, orders and customer in
//! PostgreSQL, the other five tables in MariaDB — answers like DataFusion over Parquet alone.

use datafusion::prelude::{SessionConfig, SessionContext};
use flotilla_connectors_mysql::{MysqlOptions, MysqlSource};
use flotilla_connectors_postgres::{PostgresOptions, PostgresSource};
use flotilla_federation::{Source, catalog_of, federated_context};
use flotilla_testkit::plans::{
    plan_text, register_tpch_from, register_tpch_parquet, run, tpch_parquet_context, tpch_query,
};
use flotilla_testkit::{Decimals, assert_same_rows_with, query_is_ordered};
use std::sync::Arc;

const SCALE: f64 = 0.1;

/// A federated session with the test kit's PostgreSQL as catalog `pg` and its MariaDB (the TPC-H
/// database) as catalog `my`, TPC-H at [`SCALE`] loaded in both; returns the session, the
/// PostgreSQL schema and the MariaDB database.
async fn two_servers() -> (SessionContext, String, String) {
    let postgres = flotilla_testkit::postgres();
    let mariadb = flotilla_testkit::mariadb();
    let pg_schema = postgres.load_tpch(SCALE).unwrap();
    let my_database = mariadb.load_tpch(SCALE).unwrap();
    let my_url = format!(
        "{}/{my_database}",
        mariadb.url().rsplit_once('/').unwrap().0
    );
    let ctx = federated_context(SessionConfig::new());
    let pg: Arc<dyn Source> =
        Arc::new(PostgresSource::new("pg", &postgres.url(), PostgresOptions::default()).unwrap());
    let my: Arc<dyn Source> =
        Arc::new(MysqlSource::new("my", &my_url, None, MysqlOptions::default()).unwrap());
    ctx.register_catalog("pg", catalog_of(pg).await.unwrap());
    ctx.register_catalog("my", catalog_of(my).await.unwrap());
    (ctx, pg_schema, my_database)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_across_parquet_postgres_and_mariadb_is_correct() {
    let reference = tpch_parquet_context(SCALE).await;
    let (ctx, pg_schema, my_database) = two_servers().await;
    register_tpch_parquet(&ctx, SCALE, &["lineitem"]).await;
    register_tpch_from(&ctx, &format!("pg.{pg_schema}"), &["orders", "customer"]).await;
    register_tpch_from(
        &ctx,
        &format!("my.{my_database}"),
        &["part", "partsupp", "supplier", "nation", "region"],
    )
    .await;

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
        // Filters reach the database that holds their table.
        let needles: &[&str] = match n {
            3 => &["source=pg", "'BUILDING'"],
            5 => &["source=my", "'ASIA'"],
            _ => &[],
        };
        for needle in needles {
            assert!(plan.contains(needle), "q{n}: {needle} missing:\n{plan}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_estimates_from_both_servers_put_the_small_table_on_the_build_side() {
    let (ctx, pg_schema, my_database) = two_servers().await;
    // Written big table first, both ways round: the estimates (pg_class.reltuples, TABLE_ROWS)
    // must make DataFusion build its hash table from the small side.
    for (sql, small) in [
        (
            format!(
                "SELECT count(*) FROM pg.{pg_schema}.orders o \
                 JOIN my.{my_database}.supplier s ON o.o_custkey = s.s_suppkey"
            ),
            "`supplier`",
        ),
        (
            format!(
                "SELECT count(*) FROM my.{my_database}.partsupp ps \
                 JOIN pg.{pg_schema}.customer c ON ps.ps_suppkey = c.c_custkey"
            ),
            "\"customer\"",
        ),
    ] {
        let (_, plan) = run(&ctx, &sql).await;
        let plan = datafusion::physical_plan::displayable(plan.as_ref())
            .set_show_statistics(true)
            .indent(false)
            .to_string();
        let join = plan
            .lines()
            .position(|l| l.trim_start().starts_with("HashJoinExec"))
            .unwrap_or_else(|| panic!("no hash join:\n{plan}"));
        let build_scan = plan
            .lines()
            .skip(join + 1)
            .find(|l| l.contains("FederatedScanExec"))
            .unwrap();
        assert!(
            build_scan.contains(small),
            "the build side (first child) should read {small}:\n{plan}"
        );
    }
}
