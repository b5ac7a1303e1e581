//! Every PostgreSQL type Flotilla maps, read through a federated scan: the Arrow type of each
//! column, and each value (NULLs and extremes included) as Arrow displays it.

use crate::common::{context, plan_text, pushed_whole, run, server};
use datafusion::arrow::datatypes::{DataType, Field, IntervalUnit, TimeUnit};
use std::sync::Arc;

const SETUP: &str = r#"
DROP SCHEMA IF EXISTS flotilla_types CASCADE;
CREATE SCHEMA flotilla_types;
CREATE TYPE flotilla_types.mood AS ENUM ('sad', 'happy');
CREATE DOMAIN flotilla_types.positive AS integer CHECK (VALUE > 0);
CREATE TABLE flotilla_types.all_types (
    id integer PRIMARY KEY,
    i2 smallint, i4 integer, i8 bigint,
    n38 numeric(38,10), n5 numeric(5,2), n numeric,
    f4 real, f8 double precision,
    t text, vc varchar(10), ch char(5), bin bytea, bo boolean,
    d date, tm time, ts timestamp, tstz timestamptz, iv interval,
    u uuid, j json, jb jsonb, ints integer[], texts text[], mood flotilla_types.mood,
    pos flotilla_types.positive
);
INSERT INTO flotilla_types.all_types VALUES
(1, -32768, -2147483648, -9223372036854775808,
 -9999999999999999999999999999.9999999999, -999.99, 1.5,
 -3.4e38, -1.7976931348623157e308,
 '', 'héllo', 'ab', '\x00ff', false,
 '1900-01-01', '00:00:00', '1901-12-13 20:45:52.123456', '1950-01-01 00:00:00+02',
 '1 year 2 mons 3 days 04:05:06.789',
 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": 1}', '{"b": [1, 2]}', '{1,NULL,3}',
 '{"x","y z"}', 'happy', 7),
(2, 32767, 2147483647, 9223372036854775807,
 9999999999999999999999999999.9999999999, 999.99, 123456789.0123456789,
 3.4e38, 1.7976931348623157e308,
 '日本語 ✓', 'x', 'abcde', '', true,
 '9999-12-31', '23:59:59.999999', '2200-01-01 00:00:00', '2150-06-15 12:00:00+00',
 '-1 days', '00000000-0000-0000-0000-000000000000', '[]', 'null', '{}', '{}', 'sad', 1),
(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
CREATE TABLE flotilla_types.odd (id integer, p point);
INSERT INTO flotilla_types.odd VALUES (1, point(1, 2));
"#;

/// Creates the test tables once per test binary (the tests share the server).
fn setup() {
    static DONE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        server().script(SETUP).unwrap();
    });
}

fn list(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", item, true)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mapped_type_round_trips_with_nulls_and_extremes() {
    setup();
    let (ctx, _) = context().await;
    let (batches, _) = run(
        &ctx,
        "SELECT * FROM pg.flotilla_types.all_types ORDER BY id",
    )
    .await;
    let expected: Vec<(&str, DataType, [&str; 3])> = vec![
        ("id", DataType::Int32, ["1", "2", "3"]),
        ("i2", DataType::Int16, ["-32768", "32767", ""]),
        ("i4", DataType::Int32, ["-2147483648", "2147483647", ""]),
        (
            "i8",
            DataType::Int64,
            ["-9223372036854775808", "9223372036854775807", ""],
        ),
        (
            "n38",
            DataType::Decimal128(38, 10),
            [
                "-9999999999999999999999999999.9999999999",
                "9999999999999999999999999999.9999999999",
                "",
            ],
        ),
        ("n5", DataType::Decimal128(5, 2), ["-999.99", "999.99", ""]),
        (
            "n",
            DataType::Decimal128(38, 10),
            ["1.5000000000", "123456789.0123456789", ""],
        ),
        ("f4", DataType::Float32, ["-3.4e38", "3.4e38", ""]),
        (
            "f8",
            DataType::Float64,
            ["-1.7976931348623157e308", "1.7976931348623157e308", ""],
        ),
        ("t", DataType::Utf8, ["", "日本語 ✓", ""]),
        ("vc", DataType::Utf8, ["héllo", "x", ""]),
        ("ch", DataType::Utf8, ["ab", "abcde", ""]),
        ("bin", DataType::Binary, ["00ff", "", ""]),
        ("bo", DataType::Boolean, ["false", "true", ""]),
        ("d", DataType::Date32, ["1900-01-01", "9999-12-31", ""]),
        (
            "tm",
            DataType::Time64(TimeUnit::Microsecond),
            ["00:00:00", "23:59:59.999999", ""],
        ),
        (
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            ["1901-12-13T20:45:52.123456", "2200-01-01T00:00:00", ""],
        ),
        (
            "tstz",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            ["1949-12-31T22:00:00Z", "2150-06-15T12:00:00Z", ""],
        ),
        (
            "iv",
            DataType::Interval(IntervalUnit::MonthDayNano),
            [
                "14 mons 3 days 4 hours 5 mins 6.789000000 secs",
                "-1 days",
                "",
            ],
        ),
        (
            "u",
            DataType::Utf8,
            [
                "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
                "00000000-0000-0000-0000-000000000000",
                "",
            ],
        ),
        ("j", DataType::Utf8, ["{\"a\": 1}", "[]", ""]),
        ("jb", DataType::Utf8, ["{\"b\": [1, 2]}", "null", ""]),
        ("ints", list(DataType::Int32), ["[1, , 3]", "[]", ""]),
        ("texts", list(DataType::Utf8), ["[x, y z]", "[]", ""]),
        ("mood", DataType::Utf8, ["happy", "sad", ""]),
        ("pos", DataType::Int32, ["7", "1", ""]),
    ];
    let expected: Vec<(&str, DataType, &[&str])> = expected
        .iter()
        .map(|(name, data_type, values)| (*name, data_type.clone(), &values[..]))
        .collect();
    flotilla_testkit::assert_columns(&batches, &expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_on_mapped_types_are_pushed_and_agree() {
    setup();
    let (ctx, _) = context().await;
    for (sql, rows) in [
        (
            "SELECT id FROM pg.flotilla_types.all_types WHERE ch = 'ab'",
            1,
        ),
        (
            "SELECT id FROM pg.flotilla_types.all_types WHERE t < 'a'",
            1,
        ),
        ("SELECT id FROM pg.flotilla_types.all_types WHERE n5 > 0", 1),
        (
            "SELECT id FROM pg.flotilla_types.all_types WHERE d >= DATE '2000-01-01'",
            1,
        ),
        (
            "SELECT id FROM pg.flotilla_types.all_types WHERE i8 IS NULL",
            1,
        ),
        (
            "SELECT id FROM pg.flotilla_types.all_types WHERE mood = 'sad'",
            1,
        ),
    ] {
        let (batches, plan) = run(&ctx, sql).await;
        let count: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(count, rows, "{sql}");
        // The filter runs in PostgreSQL: one scan carrying a WHERE, nothing filtering above it.
        let plan = plan_text(&plan);
        assert!(
            pushed_whole(&plan) && plan.contains(" WHERE "),
            "{sql}\n{plan}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsupported_type_names_the_column_or_is_skipped() {
    setup();
    let (ctx, _) = context().await;
    let e = ctx
        .sql("SELECT * FROM pg.flotilla_types.odd")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("source 'pg'") && e.contains("column 'p'") && e.contains("point"),
        "{e}"
    );
    let skipping = datafusion::prelude::SessionContext::new();
    let options = flotilla_connectors_postgres::PostgresOptions {
        unsupported_types: flotilla_connectors_postgres::UnsupportedTypes::Skip,
        ..Default::default()
    };
    let source = Arc::new(
        flotilla_connectors_postgres::PostgresSource::new("pg", &server().url(), options).unwrap(),
    );
    skipping.register_catalog("pg", flotilla_federation::catalog_of(source).await.unwrap());
    let (batches, _) = run(&skipping, "SELECT * FROM pg.flotilla_types.odd").await;
    assert_eq!(batches[0].schema().fields().len(), 1, "only 'id' is left");
}
