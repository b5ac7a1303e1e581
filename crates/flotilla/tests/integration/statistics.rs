//! Column statistics read from each real database equal what the database itself reports, and
//! reach DataFusion (`EXPLAIN` with `datafusion.explain.show_statistics`).
//!
//! Each test writes the same table of 1,000 rows: `k` a key 1..1000, `v` = k % 10 but NULL on
//! every fourth row (10 distinct values, 250 NULLs), `d` a date of 100 distinct days from
//! 2020-01-01, `s` text.

use crate::federation::result_text;
use datafusion::prelude::{SessionConfig, SessionContext};
use flotilla_connectors_mysql::{MysqlOptions, MysqlSource};
use flotilla_connectors_postgres::{PostgresOptions, PostgresSource};
use flotilla_connectors_sqlite::SqliteSource;
use flotilla_federation::{
    ColumnEstimate, FederatedTable, RemoteTable, Source, catalog_of, federated_context,
};
use std::sync::Arc;

/// A session with `source` as catalog `db`, showing statistics in `EXPLAIN`.
async fn session_over(source: Arc<dyn Source>) -> SessionContext {
    let ctx = federated_context(SessionConfig::new());
    ctx.register_catalog("db", catalog_of(source).await.unwrap());
    ctx.sql("SET datafusion.explain.show_statistics = true")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    ctx
}

/// The estimates the session's source gave for `db.schema.t`, by column name.
async fn estimates_of(ctx: &SessionContext, schema: &str) -> Vec<(String, ColumnEstimate)> {
    let remote = remote_of(ctx, schema).await;
    assert_eq!(
        remote.column_estimates.len(),
        remote.arrow_schema.fields().len()
    );
    remote
        .arrow_schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .zip(remote.column_estimates.iter().cloned())
        .collect()
}

/// `db.schema.t` as the session's source described it.
async fn remote_of(ctx: &SessionContext, schema: &str) -> RemoteTable {
    let table = ctx
        .catalog("db")
        .unwrap()
        .schema(schema)
        .unwrap()
        .table("t")
        .await
        .unwrap()
        .unwrap();
    table
        .downcast_ref::<FederatedTable>()
        .expect("a federated table")
        .remote()
        .clone()
}

fn estimate<'a>(estimates: &'a [(String, ColumnEstimate)], column: &str) -> &'a ColumnEstimate {
    &estimates
        .iter()
        .find(|(name, _)| name == column)
        .unwrap_or_else(|| panic!("no column {column}: {estimates:?}"))
        .1
}

/// The statistics line of the one federated scan in `EXPLAIN sql` (the session shows
/// statistics).
async fn scan_statistics(ctx: &SessionContext, sql: &str) -> String {
    let text = result_text(ctx, &format!("EXPLAIN {sql}")).await;
    text.lines()
        .find(|l| l.contains("FederatedScanExec"))
        .unwrap_or_else(|| panic!("no federated scan:\n{text}"))
        .to_string()
}

fn assert_close(actual: Option<f64>, expected: f64, what: &str) {
    let actual = actual.unwrap_or_else(|| panic!("{what}: no estimate"));
    assert!(
        (actual - expected).abs() <= 1e-6 * expected.abs().max(1.0),
        "{what}: {actual} != {expected}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_statistics_equal_pg_stats_and_reach_explain() {
    let postgres = flotilla_testkit::postgres();
    postgres
        .script(
            "DROP SCHEMA IF EXISTS stats_test CASCADE; CREATE SCHEMA stats_test;
             CREATE TABLE stats_test.t (k int PRIMARY KEY, v int, d date, s text);
             INSERT INTO stats_test.t SELECT k, CASE WHEN k % 4 = 0 THEN NULL ELSE k % 10 END,
                 DATE '2020-01-01' + k % 100, 'row ' || k FROM generate_series(1, 1000) AS k;
             ANALYZE stats_test.t;",
        )
        .unwrap();
    let source = PostgresSource::new("db", &postgres.url(), PostgresOptions::default()).unwrap();
    let ctx = session_over(Arc::new(source)).await;
    let estimates = estimates_of(&ctx, "stats_test").await;

    // What PostgreSQL reports, read with psql.
    let reltuples: f64 = postgres
        .query("SELECT reltuples FROM pg_class WHERE oid = 'stats_test.t'::regclass")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let reported = postgres
        .query(
            "SELECT attname, null_frac, n_distinct, avg_width FROM pg_stats \
             WHERE schemaname = 'stats_test' AND tablename = 't'",
        )
        .unwrap();
    let mut columns = 0;
    for line in reported.lines() {
        let cells: Vec<&str> = line.split('|').collect();
        let [name, null_frac, n_distinct, avg_width] = cells[..] else {
            panic!("{reported}");
        };
        let n_distinct: f64 = n_distinct.parse().unwrap();
        let distinct = if n_distinct < 0.0 {
            -n_distinct * reltuples
        } else {
            n_distinct
        };
        let ours = estimate(&estimates, name);
        assert_close(ours.null_fraction, null_frac.parse().unwrap(), name);
        assert_close(ours.distinct, distinct, name);
        assert_close(ours.width, avg_width.parse().unwrap(), name);
        columns += 1;
    }
    assert_eq!(columns, 4, "{reported}");
    assert_close(estimate(&estimates, "v").distinct, 10.0, "v");
    assert_close(estimate(&estimates, "v").null_fraction, 0.25, "v");
    // Bounds from the most common values and the histogram; none for text (collations).
    let bounds = |c: &str| {
        let e = estimate(&estimates, c);
        (
            e.min.as_ref().map(ToString::to_string),
            e.max.as_ref().map(ToString::to_string),
        )
    };
    assert_eq!(bounds("k"), (Some("1".into()), Some("1000".into())));
    assert_eq!(bounds("v"), (Some("0".into()), Some("9".into())));
    assert_eq!(
        bounds("d"),
        (Some("2020-01-01".into()), Some("2020-04-09".into()))
    );
    assert_eq!(bounds("s"), (None, None));

    let scan = scan_statistics(&ctx, "SELECT k, v FROM db.stats_test.t").await;
    assert!(scan.contains("Rows=Inexact(1000)"), "{scan}");
    assert!(
        scan.contains("(Col[1]: Min=Inexact(Int32(0)) Max=Inexact(Int32(9)) Null=Inexact(250) Distinct=Inexact(10)"),
        "{scan}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_statistics_equal_its_column_stats_and_reach_explain() {
    let mariadb = flotilla_testkit::mariadb();
    mariadb
        .query(
            "DROP DATABASE IF EXISTS stats_test; CREATE DATABASE stats_test; USE stats_test;
             CREATE TABLE stats_test.t (k int PRIMARY KEY, v int, d date, s varchar(20),
                 INDEX (v));
             INSERT INTO stats_test.t SELECT seq, IF(seq % 4 = 0, NULL, seq % 10),
                 DATE '2020-01-01' + INTERVAL seq % 100 DAY, CONCAT('row ', seq)
                 FROM seq_1_to_1000;
             ANALYZE TABLE stats_test.t PERSISTENT FOR ALL;",
        )
        .unwrap();
    let url = format!("{}/stats_test", mariadb.url().rsplit_once('/').unwrap().0);
    let source = Arc::new(MysqlSource::new("db", &url, None, MysqlOptions::default()).unwrap());
    let ctx = session_over(Arc::clone(&source) as Arc<dyn Source>).await;
    let estimates = estimates_of(&ctx, "stats_test").await;

    // The table's bytes and the server's buffer pool, which weigh a lookup into the table.
    let reported = |sql: &str| -> f64 { mariadb.query(sql).unwrap().trim().parse().unwrap() };
    let data_length = reported(
        "SELECT DATA_LENGTH FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = 'stats_test' AND TABLE_NAME = 't'",
    );
    assert_eq!(
        remote_of(&ctx, "stats_test").await.bytes.map(|b| b as f64),
        Some(data_length)
    );
    assert_eq!(
        source.costs().cache_bytes,
        reported("SELECT @@innodb_buffer_pool_size")
    );

    // What MariaDB reports: its row estimate and its engine-independent column statistics.
    let rows: f64 = mariadb
        .query(
            "SELECT TABLE_ROWS FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = 'stats_test' AND TABLE_NAME = 't'",
        )
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let reported = mariadb
        .query(
            "SELECT column_name, nulls_ratio, avg_length, avg_frequency FROM mysql.column_stats \
             WHERE db_name = 'stats_test' AND table_name = 't'",
        )
        .unwrap();
    let mut columns = 0;
    for line in reported.lines() {
        let cells: Vec<&str> = line.split('\t').collect();
        let [name, nulls, length, frequency] = cells[..] else {
            panic!("{reported}");
        };
        let (nulls, frequency): (f64, f64) = (nulls.parse().unwrap(), frequency.parse().unwrap());
        let ours = estimate(&estimates, name);
        assert_close(ours.null_fraction, nulls, name);
        assert_close(ours.width, length.parse().unwrap(), name);
        assert_close(ours.distinct, rows * (1.0 - nulls) / frequency, name);
        columns += 1;
    }
    assert_eq!(columns, 4, "{reported}");
    assert_close(estimate(&estimates, "v").null_fraction, 0.25, "v");
    let v = estimate(&estimates, "v");
    assert!(
        (v.distinct.unwrap() - 10.0).abs() < 1.0,
        "v: {:?} distinct",
        v.distinct
    );
    assert_eq!(v.min.as_ref().map(ToString::to_string), Some("0".into()));
    assert_eq!(v.max.as_ref().map(ToString::to_string), Some("9".into()));
    let d = estimate(&estimates, "d");
    assert_eq!(
        d.min.as_ref().map(ToString::to_string),
        Some("2020-01-01".into())
    );
    assert_eq!(
        d.max.as_ref().map(ToString::to_string),
        Some("2020-04-09".into())
    );
    assert_eq!(estimate(&estimates, "s").min, None);

    let scan = scan_statistics(&ctx, "SELECT k, v FROM db.stats_test.t").await;
    assert!(
        scan.contains("(Col[1]: Min=Inexact(Int32(0)) Max=Inexact(Int32(9)) Null=Inexact(250)"),
        "{scan}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_statistics_come_from_its_indexes_and_sqlite_stat1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stats.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER, d DATE, s TEXT);
         CREATE INDEX t_v ON t (v);
         WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < 1000)
         INSERT INTO t SELECT k, CASE WHEN k % 4 = 0 THEN NULL ELSE k % 10 END,
             date('2020-01-01', '+' || (k % 100) || ' days'), 'row ' || k FROM n;",
    )
    .unwrap();

    // Not analyzed: bounds of the indexed columns (an index lookup each), distinct values of
    // the rowid only.
    let source = SqliteSource::open("db", &path).unwrap();
    let ctx = session_over(Arc::new(source)).await;
    let estimates = estimates_of(&ctx, "main").await;
    let k = estimate(&estimates, "k");
    assert_close(k.distinct, 1000.0, "k");
    assert_eq!(k.min.as_ref().map(ToString::to_string), Some("1".into()));
    assert_eq!(k.max.as_ref().map(ToString::to_string), Some("1000".into()));
    let v = estimate(&estimates, "v");
    assert_eq!(v.distinct, None);
    assert_eq!(v.min.as_ref().map(ToString::to_string), Some("0".into()));
    assert_eq!(v.max.as_ref().map(ToString::to_string), Some("9".into()));
    // Not indexed: nothing is read.
    assert_eq!(estimate(&estimates, "d"), &ColumnEstimate::default());

    // Analyzed: sqlite_stat1's `rows rows-per-value` of the index on v.
    conn.execute_batch("ANALYZE").unwrap();
    let stat: String = conn
        .query_row("SELECT stat FROM sqlite_stat1 WHERE idx = 't_v'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let figures: Vec<f64> = stat
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .collect();
    let source = SqliteSource::open("db", &path).unwrap();
    let ctx = session_over(Arc::new(source)).await;
    let estimates = estimates_of(&ctx, "main").await;
    assert_close(
        estimate(&estimates, "v").distinct,
        figures[0] / figures[1],
        "v",
    );
    let scan = scan_statistics(&ctx, "SELECT k, v FROM db.main.t").await;
    assert!(scan.contains("Rows=Inexact(1000)"), "{scan}");
    assert!(
        scan.contains("(Col[0]: Min=Inexact(Int64(1)) Max=Inexact(Int64(1000)) Null=Inexact(0) Distinct=Inexact(1000))"),
        "{scan}"
    );
    assert!(
        scan.contains("(Col[1]: Min=Inexact(Int64(0)) Max=Inexact(Int64(9)) Distinct=Inexact("),
        "{scan}"
    );
}
