//! Every MariaDB type Flotilla maps, read through a federated scan, and text comparisons that
//! must follow DataFusion (byte-wise) rather than the columns' case-insensitive collation.

use crate::common::{context, plan_text, run, server};
use datafusion::arrow::datatypes::{DataType, TimeUnit};

const SETUP: &str = "
DROP DATABASE IF EXISTS flotilla_types;
CREATE DATABASE flotilla_types;
USE flotilla_types;
CREATE TABLE all_types (
    id INT PRIMARY KEY,
    i1 TINYINT, u1 TINYINT UNSIGNED, i2 SMALLINT, u2 SMALLINT UNSIGNED, i3 MEDIUMINT,
    i4 INT, u4 INT UNSIGNED, i8 BIGINT, u8 BIGINT UNSIGNED,
    d38 DECIMAL(38,10), d5 DECIMAL(5,2), f4 FLOAT, f8 DOUBLE,
    c CHAR(5), vc VARCHAR(20), t TEXT, bin VARBINARY(8), bl BLOB,
    d DATE, dt DATETIME(6), ts TIMESTAMP(6) NULL, tm TIME(6), y YEAR,
    j JSON, e ENUM('sad', 'happy'), s SET('a', 'b'), b BIT(10)
);
INSERT INTO all_types VALUES
(1, -128, 0, -32768, 0, -8388608, -2147483648, 0, -9223372036854775808, 0,
 -9999999999999999999999999999.9999999999, -999.99, -1.5, -1.7976931348623157e308,
 'ab', 'héllo', '', X'00ff', X'', '1000-01-01', '1900-01-01 00:00:00.000001',
 '1970-01-01 00:00:01', '00:00:00', 1901, '{\"a\": 1}', 'happy', 'a,b', b'0000000001'),
(2, 127, 255, 32767, 65535, 8388607, 2147483647, 4294967295, 9223372036854775807,
 18446744073709551615, 9999999999999999999999999999.9999999999, 999.99, 1.5,
 1.7976931348623157e308, 'abcde', '日本語 ✓', 'x', X'', X'01', '9999-12-31',
 '2200-06-15 12:30:45.500000', '2038-01-19 03:14:07.999999', '23:59:59.999999', 2155,
 '[]', 'sad', '', b'1111111111'),
(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
CREATE TABLE words (id INT PRIMARY KEY, w VARCHAR(20));
INSERT INTO words VALUES (1, 'apple'), (2, 'Apple'), (3, 'APPLE'), (4, 'apple '), (5, 'banana');
CREATE TABLE odd (id INT, g GEOMETRY);
INSERT INTO odd VALUES (1, POINT(1, 2));
";

/// Creates the test tables once per test binary.
fn setup() {
    static DONE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        server().query(SETUP).unwrap();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mapped_type_round_trips_with_nulls_and_extremes() {
    setup();
    let (ctx, _) = context("flotilla_types").await;
    let (batches, _) = run(
        &ctx,
        "SELECT * FROM my.flotilla_types.all_types ORDER BY id",
    )
    .await;
    let micros = |tz: Option<&str>| DataType::Timestamp(TimeUnit::Microsecond, tz.map(Into::into));
    let expected: Vec<(&str, DataType, [&str; 3])> = vec![
        ("id", DataType::Int32, ["1", "2", "3"]),
        ("i1", DataType::Int8, ["-128", "127", ""]),
        ("u1", DataType::UInt8, ["0", "255", ""]),
        ("i2", DataType::Int16, ["-32768", "32767", ""]),
        ("u2", DataType::UInt16, ["0", "65535", ""]),
        ("i3", DataType::Int32, ["-8388608", "8388607", ""]),
        ("i4", DataType::Int32, ["-2147483648", "2147483647", ""]),
        ("u4", DataType::UInt32, ["0", "4294967295", ""]),
        (
            "i8",
            DataType::Int64,
            ["-9223372036854775808", "9223372036854775807", ""],
        ),
        ("u8", DataType::UInt64, ["0", "18446744073709551615", ""]),
        (
            "d38",
            DataType::Decimal128(38, 10),
            [
                "-9999999999999999999999999999.9999999999",
                "9999999999999999999999999999.9999999999",
                "",
            ],
        ),
        ("d5", DataType::Decimal128(5, 2), ["-999.99", "999.99", ""]),
        ("f4", DataType::Float32, ["-1.5", "1.5", ""]),
        (
            "f8",
            DataType::Float64,
            ["-1.7976931348623157e308", "1.7976931348623157e308", ""],
        ),
        ("c", DataType::Utf8, ["ab", "abcde", ""]),
        ("vc", DataType::Utf8, ["héllo", "日本語 ✓", ""]),
        ("t", DataType::Utf8, ["", "x", ""]),
        ("bin", DataType::Binary, ["00ff", "", ""]),
        ("bl", DataType::Binary, ["", "01", ""]),
        ("d", DataType::Date32, ["1000-01-01", "9999-12-31", ""]),
        (
            "dt",
            micros(None),
            ["1900-01-01T00:00:00.000001", "2200-06-15T12:30:45.500", ""],
        ),
        (
            "ts",
            micros(Some("UTC")),
            ["1970-01-01T00:00:01Z", "2038-01-19T03:14:07.999999Z", ""],
        ),
        (
            "tm",
            DataType::Time64(TimeUnit::Microsecond),
            ["00:00:00", "23:59:59.999999", ""],
        ),
        ("y", DataType::Int16, ["1901", "2155", ""]),
        ("j", DataType::Utf8, ["{\"a\": 1}", "[]", ""]),
        ("e", DataType::Utf8, ["happy", "sad", ""]),
        ("s", DataType::Utf8, ["a,b", "", ""]),
        ("b", DataType::UInt64, ["1", "1023", ""]),
    ];
    let expected: Vec<(&str, DataType, &[&str])> = expected
        .iter()
        .map(|(name, data_type, values)| (*name, data_type.clone(), &values[..]))
        .collect();
    flotilla_testkit::assert_columns(&batches, &expected);
}

/// The ids a query returns, sorted.
async fn ids(ctx: &datafusion::prelude::SessionContext, sql: &str) -> (Vec<i32>, String) {
    let (batches, plan) = run(ctx, sql).await;
    let mut ids = Vec::new();
    for batch in &batches {
        let column = batch
            .column(0)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int32Array>()
            .unwrap();
        ids.extend(column.iter().flatten());
    }
    ids.sort();
    (ids, plan_text(&plan))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_compares_case_and_space_exactly_although_the_collation_does_not() {
    setup();
    // The server's collation says 'apple' = 'Apple' = 'APPLE' = 'apple '.
    let raw = server()
        .query("SELECT count(*) FROM flotilla_types.words WHERE w = 'apple'")
        .unwrap();
    assert_eq!(
        raw.trim(),
        "4",
        "the test needs a case-insensitive, padding collation"
    );
    let (ctx, _) = context("flotilla_types").await;
    for (sql, expected) in [
        (
            "SELECT id FROM my.flotilla_types.words WHERE w = 'apple'",
            vec![1],
        ),
        (
            "SELECT id FROM my.flotilla_types.words WHERE w IN ('Apple', 'x')",
            vec![2],
        ),
        (
            "SELECT id FROM my.flotilla_types.words WHERE w LIKE 'a%'",
            vec![1, 4],
        ),
        (
            "SELECT id FROM my.flotilla_types.words WHERE w < 'a'",
            vec![2, 3],
        ),
        (
            "SELECT min(id) FROM my.flotilla_types.words GROUP BY w",
            vec![1, 2, 3, 4, 5],
        ),
        (
            "SELECT a.id FROM my.flotilla_types.words a JOIN my.flotilla_types.words b \
             ON a.w = b.w WHERE b.id = 4",
            vec![4],
        ),
        (
            "SELECT id FROM my.flotilla_types.words ORDER BY w LIMIT 1",
            vec![3],
        ),
    ] {
        let (actual, plan) = ids(&ctx, sql).await;
        assert_eq!(actual, expected, "{sql}\n{plan}");
        assert!(plan.contains("FederatedScanExec"), "{plan}");
    }
    // DISTINCT over text stays in DataFusion, and is right.
    let (batches, _) = run(&ctx, "SELECT DISTINCT w FROM my.flotilla_types.words").await;
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsupported_type_names_the_column() {
    setup();
    let (ctx, _) = context("flotilla_types").await;
    let e = ctx
        .sql("SELECT * FROM my.flotilla_types.odd")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("source 'my'") && e.contains("column 'g'") && e.contains("geometry"),
        "{e}"
    );
}
