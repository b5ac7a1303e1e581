//! Scans: filter pushdown is exact, values are decoded by declared type, results stream, and a
//! dropped query stops its statement.

use datafusion::arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int64Array,
    RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use flotilla_connectors_sqlite::SqliteSource;
use flotilla_testkit::{assert_same_rows, query_is_ordered};
use futures::StreamExt;
use rusqlite::Connection;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The rows of table `t`, written to SQLite with SQL and built independently as Arrow arrays.
const ROWS: &str = "
    INSERT INTO t VALUES (1, 'apple', 1.50, '2024-01-31', 1, 0.5, x'00ff');
    INSERT INTO t VALUES (2, 'Äpfel 🍎', 20, '1969-07-20', 0, -1e300, NULL);
    INSERT INTO t VALUES (3, NULL, NULL, NULL, NULL, NULL, x'');
    INSERT INTO t VALUES (9223372036854775807, 'max', 99999999.99, '2100-12-31', 1, 3.25, NULL);
    INSERT INTO t VALUES (-9223372036854775808, 'it''s 100%', -0.01, '0001-01-01', 0, 0.0, x'41');
    INSERT INTO t VALUES (6, 'APPLE', '7.25', '2024-02-29', 'true', 2, NULL);
    INSERT INTO t VALUES (7, 'a_b', 0.05, '2000-01-01', 'f', 0.05, NULL);
";

fn create_database(path: &Path) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name VARCHAR(20), price DECIMAL(10,2),
                         day DATE, flag BOOLEAN, score DOUBLE, data BLOB);",
    )
    .unwrap();
    conn.execute_batch(ROWS).unwrap();
    conn.execute_batch(
        "CREATE TABLE bad (id INTEGER, day DATE);
         INSERT INTO bad VALUES (1, '2024-01-01'), (2, 'tomorrow');
         CREATE TABLE big (n INTEGER NOT NULL);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000)
         INSERT INTO big SELECT x FROM c;
         CREATE VIEW endless AS
           WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)
           SELECT count(*) AS n FROM c;",
    )
    .unwrap();
}

fn expected_t() -> RecordBatch {
    let days =
        |d: &[Option<&str>]| -> Date32Array { d.iter().map(|s| s.map(chrono_free_days)).collect() };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![1, 2, 3, i64::MAX, i64::MIN, 6, 7])),
        Arc::new(StringArray::from(vec![
            Some("apple"),
            Some("Äpfel 🍎"),
            None,
            Some("max"),
            Some("it's 100%"),
            Some("APPLE"),
            Some("a_b"),
        ])),
        Arc::new(
            Decimal128Array::from(vec![
                Some(150),
                Some(2000),
                None,
                Some(9_999_999_999),
                Some(-1),
                Some(725),
                Some(5),
            ])
            .with_precision_and_scale(10, 2)
            .unwrap(),
        ),
        Arc::new(days(&[
            Some("2024-01-31"),
            Some("1969-07-20"),
            None,
            Some("2100-12-31"),
            Some("0001-01-01"),
            Some("2024-02-29"),
            Some("2000-01-01"),
        ])),
        Arc::new(BooleanArray::from(vec![
            Some(true),
            Some(false),
            None,
            Some(true),
            Some(false),
            Some(true),
            Some(false),
        ])),
        Arc::new(Float64Array::from(vec![
            Some(0.5),
            Some(-1e300),
            None,
            Some(3.25),
            Some(0.0),
            Some(2.0),
            Some(0.05),
        ])),
        Arc::new(BinaryArray::from(vec![
            Some(&[0u8, 255][..]),
            None,
            Some(&[][..]),
            None,
            Some(&b"A"[..]),
            None,
            None,
        ])),
    ];
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("price", DataType::Decimal128(10, 2), true),
        Field::new("day", DataType::Date32, true),
        Field::new("flag", DataType::Boolean, true),
        Field::new("score", DataType::Float64, true),
        Field::new("data", DataType::Binary, true),
    ]);
    RecordBatch::try_new(Arc::new(schema), columns).unwrap()
}

/// Days since 1970-01-01 of an ISO date, computed without the code under test.
fn chrono_free_days(iso: &str) -> i32 {
    let parts: Vec<i64> = iso.split('-').map(|p| p.parse().unwrap()).collect();
    let (y, m, d) = (parts[0], parts[1], parts[2]);
    // Days from civil (proleptic Gregorian), counting from 0000-03-01.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) as i32
}

async fn contexts(batch_size: usize) -> (tempfile::TempDir, Arc<SqliteSource>, SessionContext) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test.db");
    create_database(&path);
    let source = Arc::new(SqliteSource::open("lite", &path).unwrap());
    let ctx =
        flotilla_federation::federated_context(SessionConfig::new().with_batch_size(batch_size));
    let as_source: Arc<dyn flotilla_federation::Source> = Arc::clone(&source) as _;
    ctx.register_catalog(
        "lite",
        flotilla_federation::catalog_of(as_source).await.unwrap(),
    );
    let reference = MemTable::try_new(expected_t().schema(), vec![vec![expected_t()]]).unwrap();
    ctx.register_table("reference", Arc::new(reference))
        .unwrap();
    (dir, source, ctx)
}

/// The output of `EXPLAIN sql` as table text.
pub(crate) async fn explain(ctx: &SessionContext, sql: &str) -> String {
    let batches = ctx
        .sql(&format!("EXPLAIN {sql}"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn every_filter_gives_the_rows_datafusion_gives() {
    let (_dir, _source, ctx) = contexts(8192).await;
    // (filter, whether it must reach SQLite)
    let filters = [
        ("id > 2", true),
        ("id = 9223372036854775807", true),
        ("name = 'Äpfel 🍎'", true),
        ("name <> 'apple'", true),
        ("name LIKE 'a%'", true),
        ("name LIKE 'a\\_b'", true),
        ("name NOT LIKE '%1%'", true),
        ("name ILIKE 'apple'", false),
        ("price >= 7.25", true),
        ("price BETWEEN -1 AND 1.5", true),
        ("price = 0.05", true),
        ("day < DATE '2000-01-01'", true),
        ("day >= DATE '2024-01-31'", true),
        ("day >= DATE '2024-01-31' AND flag", true),
        ("flag = false OR name IS NULL", false),
        ("NOT flag", false),
        ("id IN (1, 3, 7)", true),
        ("id NOT IN (1, 3, 7)", true),
        ("score < 1", true),
        ("name IS NOT NULL AND price IS NULL", true),
        ("id + 1 = 3", true),
        ("upper(name) = 'APPLE'", false),
        ("data = X'41'", false),
    ];
    for (filter, pushed) in filters {
        for query in [
            format!("SELECT * FROM {{t}} WHERE {filter}"),
            format!("SELECT id, name FROM {{t}} WHERE {filter} ORDER BY id LIMIT 2"),
            format!("SELECT count(*) FROM {{t}} WHERE {filter}"),
        ] {
            let ours = query.replace("{t}", "lite.main.t");
            let theirs = query.replace("{t}", "reference");
            let actual = ctx.sql(&ours).await.unwrap().collect().await.unwrap();
            let expected = ctx.sql(&theirs).await.unwrap().collect().await.unwrap();
            assert_same_rows(&expected, &actual, query_is_ordered(&query));
        }
        let plan = explain(&ctx, &format!("SELECT id FROM lite.main.t WHERE {filter}")).await;
        let sql_line = plan
            .lines()
            .find(|l| l.contains("FederatedScanExec"))
            .unwrap()
            .to_string();
        assert_eq!(sql_line.contains("WHERE"), pushed, "{filter}:\n{plan}");
    }
}

#[tokio::test]
async fn limits_and_empty_projections_reach_sqlite() {
    let (_dir, _source, ctx) = contexts(8192).await;
    let plan = explain(&ctx, "SELECT n FROM lite.main.big LIMIT 3").await;
    assert!(plan.contains("LIMIT 3"), "{plan}");
    let rows = ctx
        .sql("SELECT count(*) AS c FROM lite.main.big")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let count = rows[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .value(0);
    assert_eq!(count, 10_000);
}

#[tokio::test]
async fn a_value_that_does_not_fit_its_declared_type_names_the_column() {
    let (_dir, _source, ctx) = contexts(8192).await;
    let e = ctx
        .sql("SELECT * FROM lite.main.bad")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err();
    let message = e.to_string();
    assert!(
        message.contains("source 'lite'") && message.contains("column 'day'"),
        "{message}"
    );
    assert!(message.contains("'tomorrow'"), "{message}");
}

#[tokio::test]
async fn results_stream_in_batches_of_the_session_batch_size() {
    let (_dir, _source, ctx) = contexts(1000).await;
    let mut stream = ctx
        .sql("SELECT n FROM lite.main.big")
        .await
        .unwrap()
        .execute_stream()
        .await
        .unwrap();
    let mut sizes = Vec::new();
    while let Some(batch) = stream.next().await {
        sizes.push(batch.unwrap().num_rows());
    }
    assert_eq!(sizes.iter().sum::<usize>(), 10_000);
    assert!(
        sizes.len() >= 10 && sizes.iter().all(|&n| n <= 1000),
        "{sizes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_query_interrupts_its_statement() {
    let (_dir, source, ctx) = contexts(8192).await;
    let idle_before = source.idle_connections();
    assert!(idle_before >= 1);
    // `endless` never finishes on its own: it counts an infinite recursive CTE.
    let mut stream = ctx
        .sql("SELECT n FROM lite.main.endless")
        .await
        .unwrap()
        .execute_stream()
        .await
        .unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(300), stream.next()).await;
    assert!(waited.is_err(), "the endless view produced a row");
    drop(stream);
    // The statement is interrupted and its connection returns to the pool.
    let deadline = Instant::now() + Duration::from_secs(20);
    while source.idle_connections() < idle_before {
        assert!(
            Instant::now() < deadline,
            "the SQLite statement kept running after the query was dropped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // And the source keeps serving.
    let rows = ctx
        .sql("SELECT count(*) FROM lite.main.t")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(rows[0].num_rows(), 1);
}

/// A big table whose primary key is not an `INTEGER PRIMARY KEY` (here two columns, the rowid
/// left hidden, with gaps from deleted rows) is read as ranges of its rowid, one statement
/// each: the rows equal one statement's at 1 to 4 partitions, with filters, and by cost and
/// pulled. A `WITHOUT ROWID` table, and one with a column named `rowid`, are read whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_without_an_integer_primary_key_is_read_in_ranges_of_its_rowid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rowid.db");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE pairs (a INTEGER NOT NULL, b TEXT NOT NULL, v INTEGER, PRIMARY KEY (a, b));
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 150000)
         INSERT INTO pairs SELECT x % 1000, 'k' || x, CASE WHEN x % 7 = 0 THEN NULL ELSE x END
         FROM c;
         DELETE FROM pairs WHERE a BETWEEN 100 AND 199;
         CREATE TABLE clustered (a INTEGER NOT NULL, b TEXT NOT NULL, PRIMARY KEY (a, b))
           WITHOUT ROWID;
         INSERT INTO clustered SELECT a, b FROM pairs;
         CREATE TABLE named (rowid_like INTEGER, \"RowId\" INTEGER);
         INSERT INTO named SELECT a, v FROM pairs;",
    )
    .unwrap();
    drop(conn);
    let source: Arc<dyn flotilla_federation::Source> =
        Arc::new(SqliteSource::open("lite", &path).unwrap());
    let pairs = source.describe("main", "pairs").await.unwrap().unwrap();
    let key = pairs.split_key.expect("a split key");
    assert_eq!(
        (key.column.as_str(), key.min, key.max),
        ("_rowid_", 1, 150_000)
    );
    for table in ["clustered", "named"] {
        let described = source.describe("main", table).await.unwrap().unwrap();
        assert_eq!(described.split_key, None, "{table}");
    }

    let ctx = flotilla_federation::federated_context(SessionConfig::new());
    ctx.register_catalog(
        "lite",
        flotilla_federation::catalog_of(source).await.unwrap(),
    );
    let sql = "SELECT a % 10 AS g, count(*) AS n, count(v) AS vs, sum(v) AS total, \
               min(b) AS first FROM lite.main.pairs WHERE a <> 500 GROUP BY g ORDER BY g";
    let rows = |sql: &'static str| {
        let ctx = ctx.clone();
        async move { ctx.sql(sql).await.unwrap().collect().await.unwrap() }
    };
    rows("SET flotilla.federation.partition_rows = 0").await;
    let whole = rows(sql).await;
    assert!(!explain(&ctx, sql).await.contains("partitions=["));
    rows("SET flotilla.federation.partition_rows = 20000").await;
    for pushdown in ["none", "cost"] {
        for partitions in 1..=4 {
            ctx.sql(&format!("SET flotilla.federation.pushdown = '{pushdown}'"))
                .await
                .unwrap();
            ctx.sql(&format!(
                "SET datafusion.execution.target_partitions = {partitions}"
            ))
            .await
            .unwrap();
            let plan = explain(&ctx, sql).await;
            let split = plan.contains("partitions=[_rowid_ < ");
            if pushdown == "none" {
                assert_eq!(split, partitions > 1, "{partitions} partition(s):\n{plan}");
            }
            assert_same_rows(&whole, &rows(sql).await, true);
        }
    }
    rows("SET flotilla.federation.pushdown = 'none'").await;
    for table in ["clustered", "named"] {
        let sql = format!("SELECT count(*) FROM lite.main.{table}");
        let plan = explain(&ctx, &sql).await;
        assert!(!plan.contains("partitions=["), "{table}:\n{plan}");
        let counted = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        let n = counted[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0);
        assert_eq!(n, 150_000 - 15_000, "{table}");
    }
}

/// A source limited to one connection runs one statement at a time: a second statement waits
/// while the first one's rows are being read, runs once it is done, and fails with a message
/// naming the setting when no turn comes in time. Key ranges are never more than the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_runs_no_more_statements_at_once_than_its_connection_limit() {
    let (_dir, source, _ctx) = contexts(2).await;
    let wait = Duration::from_millis(300);
    let limited = flotilla_federation::with_connection_limit(source, 1, wait);
    assert_eq!(limited.max_connections(), Some(1));
    let sql = "SELECT n FROM main.big";
    let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
    let mut first = limited.execute(sql, Arc::clone(&schema), 2).unwrap();
    assert!(first.next().await.unwrap().is_ok());
    // The first statement holds the only connection: the second fails after `wait`.
    let started = Instant::now();
    let mut second = limited.execute(sql, Arc::clone(&schema), 2).unwrap();
    let error = second.next().await.unwrap().unwrap_err().to_string();
    assert!(started.elapsed() >= wait, "{:?}", started.elapsed());
    assert!(
        error.contains("all 1 connections (sources.lite.max_connections) were busy"),
        "{error}"
    );
    // Once the first is done (read to its end, or dropped), the next one runs.
    let mut rows = 2;
    while let Some(batch) = first.next().await {
        rows += batch.unwrap().num_rows();
    }
    assert_eq!(rows, 10_000);
    drop(first);
    let mut third = limited.execute(sql, schema, 8192).unwrap();
    let mut rows = 0;
    while let Some(batch) = third.next().await {
        rows += batch.unwrap().num_rows();
    }
    assert_eq!(rows, 10_000);
}
