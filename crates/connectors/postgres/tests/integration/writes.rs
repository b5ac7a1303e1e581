//! Writes into PostgreSQL: `CREATE TABLE … AS` and `INSERT … SELECT` from Parquet with counts
//! and checksums computed by PostgreSQL, every type round-tripped, and atomicity.

use crate::common::{context, server};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result as DfResult;
use datafusion::prelude::SessionContext;
use flotilla_testkit::writes::{
    assert_failed_create_leaves_nothing, assert_round_trip, assert_violation_changes_nothing,
    common_types, copy_orders, count,
};

/// Runs SQL the way `flotilla` does (so `CREATE TABLE … AS` goes to PostgreSQL).
async fn sql(ctx: &SessionContext, text: &str) -> DfResult<Vec<RecordBatch>> {
    flotilla_federation::sql(ctx, text).await?.collect().await
}

fn native(sql: &str) -> String {
    server().query(sql).unwrap().trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_copied_from_parquet_match_checksums_computed_by_postgres() {
    let (ctx, _) = context().await;
    let expected = copy_orders(
        &ctx,
        async |s: &str| sql(&ctx, s).await,
        0.1,
        "pg.public.w_orders",
    )
    .await;
    let checksum = native(
        "SELECT count(*), sum(o_totalprice), sum(length(o_comment)), min(o_orderdate), \
         max(o_orderdate) FROM public.w_orders",
    );
    assert_eq!(checksum.split('|').collect::<Vec<_>>(), expected);
    // The columns PostgreSQL created, by the Arrow types of the Parquet file.
    assert_eq!(
        native(
            "SELECT string_agg(format_type(atttypid, atttypmod) || CASE WHEN attnotnull \
             THEN '!' ELSE '' END, ',' ORDER BY attnum) FROM pg_attribute \
             WHERE attrelid = 'public.w_orders'::regclass AND attnum > 0"
        ),
        "bigint!,bigint!,text!,numeric(15,2)!,date!,text!,text!,integer!,text!"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_common_type_round_trips_with_extremes_and_nulls() {
    let (ctx, _) = context().await;
    assert_round_trip(
        &ctx,
        async |s: &str| sql(&ctx, s).await,
        common_types(),
        "common_types",
        "pg.public.w_common",
    )
    .await;
    // PostgreSQL itself sees the values (not only Flotilla reading back its own encoding).
    assert_eq!(
        native("SELECT i64, u64, dec, txt, d, ts, tstz, t FROM public.w_common WHERE id = 2"),
        "9223372036854775807|18446744073709551615|\
         9999999999999999999999999999.9999999999|héllo ✓ 日本 🚀|2150-06-30|\
         2150-06-30 23:59:59.999999|2100-01-01 01:00:00+00|23:59:59.999999"
    );
    assert_eq!(
        native("SELECT d, ts, tstz FROM public.w_common WHERE id = 1"),
        "1900-01-01|1900-01-01 00:00:00.000001|1969-12-31 00:00:00.123456+00"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_reach_postgres_only_types() {
    server()
        .query(
            "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy'); \
             CREATE TABLE public.w_special (id int, u uuid, j jsonb, js json, c char(5), \
             one \"char\", m mood, n numeric, tags text[], nums int4[], span interval, \
             raw bytea, at timestamptz)",
        )
        .unwrap();
    let (ctx, _) = context().await;
    let inserted = count(
        &sql(
            &ctx,
            "INSERT INTO pg.public.w_special VALUES \
             (1, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"b\": [1, 2], \"a\": null}', \
              '{\"b\": 1}', 'ab', 'x', 'happy', CAST('12345678901234567890.0123456789' AS DECIMAL(38, 10)), \
              ['x', NULL, 'ünï'], [1, -2], INTERVAL '1 month 2 days 3 hours 4.5 seconds', \
              X'00ff', TIMESTAMP '2024-02-29 12:00:00'), \
             (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, [], NULL, NULL, NULL)",
        )
        .await
        .unwrap(),
    );
    assert_eq!(inserted, 2);
    assert_eq!(
        native("SELECT * FROM public.w_special ORDER BY id"),
        "1|a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11|{\"a\": null, \"b\": [1, 2]}|{\"b\": 1}|ab   |x|\
         happy|12345678901234567890.0123456789|{x,NULL,ünï}|{1,-2}|\
         1 mon 2 days 03:00:04.5|\\x00ff|2024-02-29 12:00:00+00\n\
         2|||||||||{}|||"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_constraint_violation_leaves_the_table_unchanged() {
    server()
        .query(
            "CREATE TABLE public.w_pk (id int PRIMARY KEY, v text); \
             INSERT INTO public.w_pk VALUES (1, 'one')",
        )
        .unwrap();
    let (ctx, _) = context().await;
    assert_violation_changes_nothing(
        async |s: &str| sql(&ctx, s).await,
        "pg.public.w_pk",
        || native("SELECT count(*) FROM public.w_pk").parse().unwrap(),
    )
    .await;
    // The connection went back clean: the next write works.
    let inserted = count(
        &sql(&ctx, "INSERT INTO pg.public.w_pk VALUES (2, 'two')")
            .await
            .unwrap(),
    );
    assert_eq!(inserted, 1);
    assert_eq!(native("SELECT count(*) FROM public.w_pk"), "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_create_table_as_leaves_no_table_and_existing_tables_are_refused() {
    let (ctx, _) = context().await;
    assert_failed_create_leaves_nothing(
        async |s: &str| sql(&ctx, s).await,
        "pg.public.w_failed",
        || native("SELECT to_regclass('public.w_failed') IS NOT NULL") == "t",
    )
    .await;
    server()
        .query("CREATE TABLE public.w_exists (a int)")
        .unwrap();
    let e = sql(&ctx, "CREATE TABLE pg.public.w_exists AS SELECT 1 AS a")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("source 'pg'") && e.contains("already exists"),
        "{e}"
    );
    let skipped = sql(
        &ctx,
        "CREATE TABLE IF NOT EXISTS pg.public.w_exists AS SELECT 1 AS a",
    )
    .await
    .unwrap();
    assert_eq!(count(&skipped), 0);
    let e = sql(&ctx, "CREATE TABLE pg.nowhere.t AS SELECT 1 AS a")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no schema 'nowhere'") && e.contains("public"),
        "{e}"
    );
    // A plain CREATE TABLE (no rows) makes an empty table in PostgreSQL.
    let created = sql(
        &ctx,
        "CREATE TABLE pg.public.w_empty (a INT NOT NULL, b VARCHAR)",
    )
    .await
    .unwrap();
    assert_eq!(count(&created), 0);
    assert_eq!(
        native(
            "SELECT string_agg(format_type(atttypid, atttypmod) || CASE WHEN attnotnull \
             THEN '!' ELSE '' END, ',' ORDER BY attnum) FROM pg_attribute \
             WHERE attrelid = 'public.w_empty'::regclass AND attnum > 0"
        ),
        "integer!,text"
    );
}
