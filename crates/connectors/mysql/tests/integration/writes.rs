//! Writes into MariaDB: `CREATE TABLE … AS` and `INSERT … SELECT` from Parquet with counts and
//! checksums computed by MariaDB, every type round-tripped, and atomicity over several INSERT
//! statements.

use crate::common::{context, server};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result as DfResult;
use datafusion::prelude::SessionContext;
use flotilla_testkit::writes::{
    assert_failed_create_leaves_nothing, assert_round_trip, assert_violation_changes_nothing,
    common_types, copy_orders, count,
};

/// Runs SQL the way `flotilla` does (so `CREATE TABLE … AS` goes to MariaDB).
async fn sql(ctx: &SessionContext, text: &str) -> DfResult<Vec<RecordBatch>> {
    flotilla_federation::sql(ctx, text).await?.collect().await
}

fn native(sql: &str) -> String {
    server().query(sql).unwrap().trim().to_string()
}

/// The column types of `flotilla.table` as MariaDB lists them, `!` marking NOT NULL.
fn column_types(table: &str) -> String {
    native(&format!(
        "SELECT GROUP_CONCAT(CONCAT(COLUMN_TYPE, IF(IS_NULLABLE = 'NO', '!', '')) \
         ORDER BY ORDINAL_POSITION) FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = 'flotilla' AND TABLE_NAME = '{table}'"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_copied_from_parquet_match_checksums_computed_by_mariadb() {
    let (ctx, _) = context("flotilla").await;
    let expected = copy_orders(
        &ctx,
        async |s: &str| sql(&ctx, s).await,
        0.1,
        "my.flotilla.w_orders",
    )
    .await;
    let checksum = native(
        "SELECT count(*), sum(o_totalprice), sum(length(o_comment)), min(o_orderdate), \
         max(o_orderdate) FROM flotilla.w_orders",
    );
    assert_eq!(checksum.split('\t').collect::<Vec<_>>(), expected);
    assert_eq!(
        column_types("w_orders"),
        "bigint(20)!,bigint(20)!,longtext!,decimal(15,2)!,date!,longtext!,longtext!,int(11)!,\
         longtext!"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_common_type_round_trips_with_extremes_and_nulls() {
    let (ctx, _) = context("flotilla").await;
    assert_round_trip(
        &ctx,
        async |s: &str| sql(&ctx, s).await,
        common_types(),
        "common_types",
        "my.flotilla.w_common",
    )
    .await;
    // MariaDB itself sees the values (not only Flotilla reading back what it wrote).
    assert_eq!(
        native("SELECT i64, u64, `dec`, txt, d, ts, tstz, t FROM flotilla.w_common WHERE id = 2"),
        "9223372036854775807\t18446744073709551615\t\
         9999999999999999999999999999.9999999999\théllo ✓ 日本 🚀\t2150-06-30\t\
         2150-06-30 23:59:59.999999\t2100-01-01 01:00:00.000000\t23:59:59.999999"
    );
    assert_eq!(
        native("SELECT d, ts, tstz FROM flotilla.w_common WHERE id = 1"),
        "1900-01-01\t1900-01-01 00:00:00.000001\t1969-12-31 00:00:00.123456"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_reach_mariadb_only_types() {
    native(
        "CREATE TABLE flotilla.w_special (id INT, e ENUM('sad', 'ok', 'happy'), \
         s SET('a', 'b', 'c'), j JSON, y YEAR, bits BIT(8), v VARCHAR(10), c CHAR(3), \
         dt DATETIME(3), ts TIMESTAMP(6) NULL, tm TIME, small TINYINT UNSIGNED, \
         wide DECIMAL(38, 20))",
    );
    let (ctx, _) = context("flotilla").await;
    let inserted = count(
        &sql(
            &ctx,
            "INSERT INTO my.flotilla.w_special VALUES \
             (1, 'happy', 'a,c', '{\"k\": [1, 2]}', 2024, 5, 'ünïcödé', 'ab', \
              TIMESTAMP '2024-02-29 12:34:56.789', TIMESTAMP '2038-01-19 03:14:07.5', \
              TIME '23:59:59', 255, CAST('12345678.123456789' AS DECIMAL(38, 10))), \
             (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
        )
        .await
        .unwrap(),
    );
    assert_eq!(inserted, 2);
    assert_eq!(
        native(
            "SELECT id, e, s, j, y, bits + 0, v, c, dt, ts, tm, small, wide \
             FROM flotilla.w_special ORDER BY id"
        ),
        "1\thappy\ta,c\t{\"k\": [1, 2]}\t2024\t5\tünïcödé\tab\t2024-02-29 12:34:56.789\t\
         2038-01-19 03:14:07.500000\t23:59:59\t255\t12345678.12345678900000000000\n\
         2\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_constraint_violation_leaves_the_table_unchanged() {
    native(
        "CREATE TABLE flotilla.w_pk (id INT PRIMARY KEY, v TEXT) ENGINE = InnoDB; \
         INSERT INTO flotilla.w_pk VALUES (1, 'one')",
    );
    let (ctx, _) = context("flotilla").await;
    // 5000 rows go in 3 INSERT statements; the duplicate is in the last one.
    assert_violation_changes_nothing(
        async |s: &str| sql(&ctx, s).await,
        "my.flotilla.w_pk",
        || {
            native("SELECT count(*) FROM flotilla.w_pk")
                .parse()
                .unwrap()
        },
    )
    .await;
    let inserted = count(
        &sql(&ctx, "INSERT INTO my.flotilla.w_pk VALUES (2, 'two')")
            .await
            .unwrap(),
    );
    assert_eq!(inserted, 1);
    assert_eq!(native("SELECT count(*) FROM flotilla.w_pk"), "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_create_table_as_leaves_no_table() {
    let (ctx, _) = context("flotilla").await;
    assert_failed_create_leaves_nothing(
        async |s: &str| sql(&ctx, s).await,
        "my.flotilla.w_failed",
        || {
            native(
                "SELECT count(*) FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = 'flotilla' AND TABLE_NAME = 'w_failed'",
            ) == "1"
        },
    )
    .await;
    let created = sql(
        &ctx,
        "CREATE TABLE my.flotilla.w_empty (a INT NOT NULL, b VARCHAR)",
    )
    .await
    .unwrap();
    assert_eq!(count(&created), 0);
    assert_eq!(column_types("w_empty"), "int(11)!,longtext");
}
