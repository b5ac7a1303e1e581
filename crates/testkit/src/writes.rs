//! Checks of writes into a source that every writable connector shares: TPC-H `orders` copied
//! from Parquet with `CREATE TABLE … AS` and `INSERT … SELECT`, a batch of every common type
//! with extremes and NULLs, and atomicity when the database refuses a row.
//!
//! Each takes a federated session, the way the caller runs SQL in it (`flotilla_federation::sql`,
//! which sends `CREATE TABLE … AS` to the source) and a target `catalog.schema.table`; the
//! caller supplies what only its database can say (counts and checksums the server computes).

use crate::compare::assert_same_rows;
use crate::plans::register_tpch_parquet;
use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int8Array, Int16Array, Int32Array, Int64Array, RecordBatch, StringArray,
    Time64MicrosecondArray, TimestampMicrosecondArray, UInt8Array, UInt16Array, UInt32Array,
    UInt64Array,
};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::error::Result as DfResult;
use datafusion::prelude::SessionContext;
use std::sync::Arc;

/// `orders`' checksum as DataFusion computes it over Parquet: row count, `sum(o_totalprice)`,
/// `sum(length(o_comment))`, `min(o_orderdate)` and `max(o_orderdate)`, as text.
pub const ORDERS_CHECKSUM: &str = "SELECT count(*), sum(o_totalprice), sum(length(o_comment)), \
     min(o_orderdate), max(o_orderdate) FROM ";

/// Copies TPC-H `orders` at `scale` from Parquet into `target` with `CREATE TABLE … AS`, then
/// appends the even orders again with `INSERT … SELECT`; checks the counts both report and that
/// the table read back holds the same rows as Parquet. Returns the expected checksum of the
/// final table ([`ORDERS_CHECKSUM`] over Parquet, for the caller to compare with the one the
/// database computes): `[count, sum, length sum, min date, max date]`.
pub async fn copy_orders(
    ctx: &SessionContext,
    sql: impl AsyncFn(&str) -> DfResult<Vec<RecordBatch>>,
    scale: f64,
    target: &str,
) -> Vec<String> {
    register_tpch_parquet(ctx, scale, &["orders"]).await;
    let run = async |text: &str| sql(text).await.unwrap_or_else(|e| panic!("{e}\n{text}"));
    let expected = run("SELECT * FROM orders").await;
    let rows: usize = expected.iter().map(RecordBatch::num_rows).sum();
    let created = count(&run(&format!("CREATE TABLE {target} AS SELECT * FROM orders")).await);
    assert_eq!(created, rows as u64, "rows reported by CREATE TABLE AS");
    let copied = run(&format!("SELECT * FROM {target}")).await;
    assert_same_rows(&expected, &copied, false);

    let inserted = count(
        &run(&format!(
            "INSERT INTO {target} SELECT * FROM orders WHERE o_orderkey % 2 = 0"
        ))
        .await,
    );
    let even = run("SELECT count(*) FROM orders WHERE o_orderkey % 2 = 0").await;
    assert_eq!(inserted, count(&even), "rows reported by INSERT … SELECT");
    let checksum = run(&format!(
        "{ORDERS_CHECKSUM} (SELECT * FROM orders UNION ALL \
         SELECT * FROM orders WHERE o_orderkey % 2 = 0)"
    ))
    .await;
    (0..5)
        .map(|i| {
            let text = cast(checksum[0].column(i), &DataType::Utf8).unwrap();
            text.as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .value(0)
                .to_string()
        })
        .collect()
}

/// The count in the result of a statement that reports one (`INSERT`, `CREATE TABLE … AS`), or
/// of `SELECT count(*)`.
pub fn count(batches: &[RecordBatch]) -> u64 {
    let counts = cast(batches[0].column(0), &DataType::UInt64).unwrap();
    counts
        .as_any()
        .downcast_ref::<UInt64Array>()
        .unwrap()
        .value(0)
}

/// Rows of the types every writable source stores, with extremes and a row of NULLs: `id`,
/// signed and unsigned integers of every width at their limits, floats, a decimal(38, 10) with
/// 38 digits, empty and non-ASCII text, bytes, dates and timestamps before 1970 and after 2100,
/// a UTC timestamp, a time of day and a boolean.
pub fn common_types() -> RecordBatch {
    let micros = |days: i64, of_day: i64| days * 86_400_000_000 + of_day;
    let big = 10i128.pow(38) - 1;
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("id", Arc::new(Int32Array::from(vec![1, 2, 3]))),
        (
            "i8",
            Arc::new(Int8Array::from(vec![Some(i8::MIN), Some(i8::MAX), None])),
        ),
        (
            "i16",
            Arc::new(Int16Array::from(vec![Some(i16::MIN), Some(i16::MAX), None])),
        ),
        (
            "i32",
            Arc::new(Int32Array::from(vec![Some(i32::MIN), Some(i32::MAX), None])),
        ),
        (
            "i64",
            Arc::new(Int64Array::from(vec![Some(i64::MIN), Some(i64::MAX), None])),
        ),
        (
            "u8",
            Arc::new(UInt8Array::from(vec![Some(0), Some(u8::MAX), None])),
        ),
        (
            "u16",
            Arc::new(UInt16Array::from(vec![Some(0), Some(u16::MAX), None])),
        ),
        (
            "u32",
            Arc::new(UInt32Array::from(vec![Some(0), Some(u32::MAX), None])),
        ),
        (
            "u64",
            Arc::new(UInt64Array::from(vec![Some(0), Some(u64::MAX), None])),
        ),
        (
            "f32",
            Arc::new(Float32Array::from(vec![Some(-1.5), Some(3.25e10), None])),
        ),
        (
            "f64",
            Arc::new(Float64Array::from(vec![Some(-2.5e-300), Some(1e300), None])),
        ),
        (
            "dec",
            Arc::new(
                Decimal128Array::from(vec![Some(-big), Some(big), None])
                    .with_precision_and_scale(38, 10)
                    .unwrap(),
            ),
        ),
        (
            "txt",
            Arc::new(StringArray::from(vec![
                Some(""),
                Some("héllo ✓ 日本 🚀"),
                None,
            ])),
        ),
        (
            "bin",
            Arc::new(BinaryArray::from(vec![
                Some(&b""[..]),
                Some(&[0u8, 1, 255, 39, 92][..]),
                None,
            ])),
        ),
        // 1900-01-01 and 2150-06-30.
        (
            "d",
            Arc::new(Date32Array::from(vec![Some(-25_567), Some(65_924), None])),
        ),
        (
            "ts",
            Arc::new(TimestampMicrosecondArray::from(vec![
                Some(micros(-25_567, 1)),
                Some(micros(65_924, 86_399_999_999)),
                None,
            ])),
        ),
        (
            "tstz",
            Arc::new(
                TimestampMicrosecondArray::from(vec![
                    Some(micros(-1, 123_456)),
                    Some(micros(47_482, 3_600_000_000)),
                    None,
                ])
                .with_timezone("UTC"),
            ),
        ),
        (
            "t",
            Arc::new(Time64MicrosecondArray::from(vec![
                Some(0),
                Some(86_399_999_999),
                None,
            ])),
        ),
        (
            "b",
            Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
        ),
    ];
    let schema = Schema::new(
        columns
            .iter()
            .map(|(name, array)| Field::new(*name, array.data_type().clone(), *name != "id"))
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(
        Arc::new(schema),
        columns.into_iter().map(|(_, array)| array).collect(),
    )
    .unwrap()
}

/// Writes `rows` into `target` with `CREATE TABLE … AS` (from a table registered as `name` in
/// `ctx`), reads it back ordered by its first column, and checks every value: each column read
/// back is cast to the type written (a source may store Int8 as a wider integer, say) and must
/// equal it.
pub async fn assert_round_trip(
    ctx: &SessionContext,
    sql: impl AsyncFn(&str) -> DfResult<Vec<RecordBatch>>,
    rows: RecordBatch,
    name: &str,
    target: &str,
) {
    ctx.register_batch(name, rows.clone()).unwrap();
    let create = format!("CREATE TABLE {target} AS SELECT * FROM {name}");
    let written = count(
        &sql(&create)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{create}")),
    );
    assert_eq!(written, rows.num_rows() as u64);
    let first = rows.schema().field(0).name().clone();
    let back = sql(&format!("SELECT * FROM {target} ORDER BY \"{first}\""))
        .await
        .unwrap();
    let back = concat_batches(&back[0].schema(), &back).unwrap();
    assert_eq!(back.num_columns(), rows.num_columns());
    for (i, field) in rows.schema().fields().iter().enumerate() {
        let read = cast(back.column(i), field.data_type()).unwrap_or_else(|e| {
            panic!(
                "column {}: {} read back as {}: {e}",
                field.name(),
                field.data_type(),
                back.column(i).data_type()
            )
        });
        assert_eq!(
            read.as_ref(),
            rows.column(i).as_ref(),
            "column {} ({} stored, read back as {})",
            field.name(),
            field.data_type(),
            back.column(i).data_type()
        );
    }
}

/// Appending rows of which one breaks `target`'s primary key (on `id`, holding `id = 1`) fails
/// with the database's message and leaves the table as it was: `native_count` (the row count as
/// the database reports it) is the same before and after. The failing row comes after 5000
/// good ones, so a connector that writes in several statements must roll them all back.
pub async fn assert_violation_changes_nothing(
    sql: impl AsyncFn(&str) -> DfResult<Vec<RecordBatch>>,
    target: &str,
    native_count: impl Fn() -> u64,
) {
    let before = native_count();
    let insert = format!(
        "INSERT INTO {target} SELECT CAST(CASE WHEN value = 4999 THEN 1 ELSE value + 10 END \
         AS INT), 'new' FROM range(5000)"
    );
    let e = sql(&insert).await.unwrap_err().to_string();
    assert!(
        e.to_lowercase().contains("duplicate"),
        "the database's message should say what broke: {e}"
    );
    assert_eq!(native_count(), before, "a failed INSERT changed the table");
}

/// `CREATE TABLE … AS` whose rows fail after 16384 good ones (a division by zero in the third
/// batch) fails and leaves no table behind: `exists` (asked of the database) is false after.
pub async fn assert_failed_create_leaves_nothing(
    sql: impl AsyncFn(&str) -> DfResult<Vec<RecordBatch>>,
    target: &str,
    exists: impl Fn() -> bool,
) {
    let create = format!(
        "CREATE TABLE {target} AS SELECT value, 10 / (value - 19999) AS q FROM range(20000)"
    );
    let e = sql(&create).await.unwrap_err().to_string();
    assert!(e.to_lowercase().contains("divide by zero"), "{e}");
    assert!(!exists(), "a failed CREATE TABLE AS left {target} behind");
}
