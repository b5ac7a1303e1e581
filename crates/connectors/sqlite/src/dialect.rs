//! The SQLite dialect: how to write SQL for SQLite, and what SQLite evaluates exactly as
//! DataFusion does.
//!
//! SQLite has five storage classes and no DECIMAL, DATE or BOOLEAN type. Flotilla stores and
//! reads dates as ISO-8601 text (which compares in date order) and booleans as 0/1. Decimals are
//! REAL inside SQLite: sums and averages over them are computed in floating point and rounded to
//! the declared scale when decoded, so they can differ from DataFusion's exact decimal results in
//! the last digit. Refused (evaluated by DataFusion instead):
//! - `upper`/`lower` (SQLite folds ASCII only), `ILIKE`, regular expressions;
//! - arithmetic on dates, timestamps and text; casts SQLite would do differently;
//! - mark joins (they only appear for subqueries inside `OR`).

use crate::types::ColumnType;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{JoinType, ScalarValue};
use datafusion::logical_expr::Operator;
use flotilla_federation::Dialect;
use flotilla_federation::dialect::{
    EngineCosts, arithmetic, comparison_or_logic, date, numeric, standard_literal, textual, unquote,
};

/// SQL as SQLite 3.39+ speaks it (bundled with the connector, so always at least that).
#[derive(Debug, Default)]
pub struct SqliteDialect;

fn text_or_null(t: &DataType) -> bool {
    textual(t) || t.is_null()
}

/// SQLite's engine, measured on the 2-core machine of the benchmarks with
/// `flotilla bench federation --source sqlite --scale 1` (TPC-H SF 1, the demo's file):
/// - `scan_row`: q6 pushed whole (a scan of lineitem's 6 M rows, its filters and one sum) runs
///   in 0.76 s in SQLite itself: ~0.1 µs a row;
/// - `aggregate_row`, `sort_row`: q1 (6 M rows grouped into 4, eight aggregates) takes 3.9 s:
///   GROUP BY sorts (n log2 n × 0.015 µs) and each row costs ~0.15 µs more;
/// - `probe`: q9 pushed whole scans lineitem and looks part up for each of its 6 M rows (then
///   four more tables for the fifth that pass) in 12 s (`EXPLAIN QUERY PLAN`); q4 looks 57 k
///   orders up in lineitem (~4 rows each) in 0.3 s: ~1.5 µs a lookup or row found, random
///   reads in a file bigger than SQLite's cache;
/// - `fetch_row`, `fetch_byte`: with scans only, q13 reads 1.65 M rows of 2–3 columns in
///   0.24 s, q6 6 M rows of 4 columns in 1.3 s, q9 8.5 M rows in 1.9 s — queries included:
///   ~0.1 µs a row and ~1.5 ns a byte;
/// - `match_row`: `o_comment NOT LIKE '%special%requests%'` over orders' 1.5 M rows takes
///   0.26 s in the `sqlite3` shell, 0.08 s more than `sum(length(o_comment))`;
/// - no hash join and GROUP BY by sorting: q15 pushed whole runs 43 s against 2.6 s with scans
///   only, because SQLite reads lineitem through its `l_suppkey` index, twice, to group
///   without sorting (`EXPLAIN QUERY PLAN`).
pub const SQLITE_COSTS: EngineCosts = EngineCosts {
    scan_row: 1e-7,
    match_row: 5e-8,
    probe: 1.5e-6,
    cache_bytes: f64::INFINITY,
    page_read: 0.0,
    hash_row: 5e-8,
    hash_cache_bytes: f64::INFINITY,
    hash_miss: 0.0,
    serial_big_aggregate: false,
    hash_joins: false,
    aggregate_row: 1.5e-7,
    sort_row: 1.5e-8,
    hash_aggregates: false,
    fetch_row: 1e-7,
    fetch_byte: 1.5e-9,
    statement: 1e-4,
    serial_factor: 1.0,
    serial_outer_hash: false,
};

impl Dialect for SqliteDialect {
    fn name(&self) -> &str {
        "sqlite"
    }

    fn costs(&self) -> EngineCosts {
        SQLITE_COSTS
    }

    /// SQLite's planner, without `ANALYZE` histograms, takes any range on an indexed column as
    /// selective and reads it through the index: at TPC-H SF 1 a join key range spanning all of
    /// `l_partkey` made a scan of lineitem take 35 s instead of 2 s. A unary `+` keeps a term
    /// from using an index (and leaves its value and type as they are): the range is still
    /// applied, row by row during the scan.
    fn key_range_operand(&self, column: &str) -> String {
        format!("+{column}")
    }

    /// Rowids spread between the table's first and last — one in each of `rows` equal spans,
    /// at a scrambled place in it — each a lookup, so about `rows` lookups whatever the table's
    /// size (fewer rows where rowids have gaps), in rowid order: the order the table is stored
    /// in. The same rows every time, so the same query gets the same plan (random rowids made
    /// close choices flip between runs). Tables without rowids fail the statement, and the cut
    /// guesses.
    fn sample_sql(&self, table: &str, columns: &str, rows: usize) -> Option<String> {
        Some(format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}), \
             span(low, count) AS (SELECT min(_rowid_), max(_rowid_) - min(_rowid_) + 1 \
             FROM {table}) \
             SELECT {columns} FROM {table} WHERE _rowid_ IN \
             (SELECT low + (i - 1) * count / {rows} + (i * 7919) % max(count / {rows}, 1) \
             FROM n, span WHERE count > 0) \
             ORDER BY _rowid_"
        ))
    }

    fn literal(&self, value: &ScalarValue) -> Option<String> {
        match value {
            v if v.is_null() => Some("NULL".into()),
            ScalarValue::Boolean(Some(b)) => Some((if *b { "1" } else { "0" }).into()),
            ScalarValue::UInt64(Some(v)) if *v > i64::MAX as u64 => None,
            // No DATE type: dates are ISO text, which compares and sorts as the dates do.
            ScalarValue::Date32(Some(days)) => Some(self.quote_string(&date(*days)?)),
            ScalarValue::TimestampMicrosecond(..) => None,
            _ => standard_literal(self, value),
        }
    }

    fn binary_operator(
        &self,
        op: &Operator,
        left: &DataType,
        right: &DataType,
    ) -> Option<&'static str> {
        if let Some(symbol) = comparison_or_logic(op).or_else(|| arithmetic(op, left, right)) {
            return Some(symbol);
        }
        Some(match op {
            Operator::IsDistinctFrom => "IS NOT",
            Operator::IsNotDistinctFrom => "IS",
            Operator::Divide if numeric(left) && numeric(right) => "/",
            Operator::StringConcat if text_or_null(left) && text_or_null(right) => "||",
            _ => return None,
        })
    }

    fn scalar_function(
        &self,
        name: &str,
        args: &[String],
        arg_types: &[DataType],
    ) -> Option<String> {
        let call = |f: &str| format!("{f}({})", args.join(", "));
        Some(match (name, args.len()) {
            ("abs", 1) if numeric(&arg_types[0]) => call("abs"),
            ("coalesce", 1) => args[0].clone(),
            ("coalesce", n) if n >= 2 => call("coalesce"),
            ("nullif", 2) => call("nullif"),
            ("substr" | "substring", 2 | 3) if textual(&arg_types[0]) => call("substr"),
            ("length" | "char_length" | "character_length", 1) if textual(&arg_types[0]) => {
                call("length")
            }
            ("trim" | "btrim", 1) => call("trim"),
            ("ltrim", 1) => call("ltrim"),
            ("rtrim", 1) => call("rtrim"),
            ("replace", 3) => call("replace"),
            ("strpos" | "instr", 2) => call("instr"),
            ("date_part", 2) if arg_types[1] == DataType::Date32 => {
                let format = match unquote(&args[0])?.to_ascii_lowercase().as_str() {
                    "year" => "%Y",
                    "month" => "%m",
                    "day" => "%d",
                    _ => return None,
                };
                format!("CAST(strftime('{format}', {}) AS INTEGER)", args[1])
            }
            _ => return None,
        })
    }

    fn aggregate_function(
        &self,
        name: &str,
        distinct: bool,
        args: &[String],
        arg_types: &[DataType],
    ) -> Option<String> {
        let distinct = if distinct { "DISTINCT " } else { "" };
        match (name, args) {
            ("count", [arg]) => Some(format!("count({distinct}{arg})")),
            ("count", []) if distinct.is_empty() => Some("count(*)".into()),
            ("sum" | "avg", [arg]) if numeric(&arg_types[0]) => {
                Some(format!("{name}({distinct}{arg})"))
            }
            ("min" | "max", [arg]) => Some(format!("{name}({arg})")),
            _ => None,
        }
    }

    fn cast(&self, expr: &str, from: &DataType, to: &DataType) -> Option<String> {
        if from == to {
            return Some(expr.to_string());
        }
        match to {
            DataType::Float64 | DataType::Float32 if numeric(from) => {
                Some(format!("CAST({expr} AS REAL)"))
            }
            t if t.is_integer() && from.is_integer() => Some(expr.to_string()),
            t if t.is_integer() && numeric(from) => Some(format!("CAST({expr} AS INTEGER)")),
            DataType::Decimal128(_, _) if from.is_integer() => Some(expr.to_string()),
            DataType::Decimal128(_, scale) if numeric(from) => {
                Some(format!("round({expr}, {scale})"))
            }
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 if textual(from) => {
                Some(expr.to_string())
            }
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 if from.is_integer() => {
                Some(format!("CAST({expr} AS TEXT)"))
            }
            _ => None,
        }
    }

    fn supports_like(&self, case_insensitive: bool) -> bool {
        // Connections run with `PRAGMA case_sensitive_like = ON`.
        !case_insensitive
    }

    fn supports_join(&self, join_type: JoinType) -> bool {
        !matches!(join_type, JoinType::LeftMark | JoinType::RightMark)
    }

    fn null_safe_equal(&self, left: &str, right: &str) -> String {
        format!("({left} IS {right})")
    }

    fn limit(&self, fetch: Option<usize>, skip: usize) -> String {
        match (fetch, skip) {
            (None, 0) => String::new(),
            (Some(n), 0) => format!(" LIMIT {n}"),
            // SQLite needs a LIMIT before an OFFSET; -1 means no limit.
            (None, m) => format!(" LIMIT -1 OFFSET {m}"),
            (Some(n), m) => format!(" LIMIT {n} OFFSET {m}"),
        }
    }

    fn can_return(&self, data_type: &DataType) -> bool {
        ColumnType::for_arrow(data_type).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_quoted_and_dates_are_iso_text() {
        let d = SqliteDialect;
        assert_eq!(
            d.literal(&ScalarValue::Utf8(Some("it's".into()))).unwrap(),
            "'it''s'"
        );
        assert_eq!(
            d.literal(&ScalarValue::Date32(Some(10_000))).unwrap(),
            "'1997-05-19'"
        );
        assert_eq!(
            d.literal(&ScalarValue::Decimal128(Some(5), 15, 2)).unwrap(),
            "0.05"
        );
        assert_eq!(d.literal(&ScalarValue::Int64(None)).unwrap(), "NULL");
        assert!(d.literal(&ScalarValue::Float64(Some(f64::NAN))).is_none());
        assert_eq!(d.quote_identifier("we\"ird"), "\"we\"\"ird\"");
    }

    #[test]
    fn refused_constructs_are_refused() {
        let d = SqliteDialect;
        assert!(
            d.scalar_function("upper", &["x".into()], &[DataType::Utf8])
                .is_none()
        );
        assert!(
            d.scalar_function(
                "regexp_like",
                &["x".into(), "'a'".into()],
                &[DataType::Utf8, DataType::Utf8]
            )
            .is_none()
        );
        assert!(
            d.binary_operator(&Operator::Plus, &DataType::Date32, &DataType::Int64)
                .is_none()
        );
        assert!(!d.supports_like(true));
        assert!(!d.supports_join(JoinType::LeftMark));
        assert_eq!(d.limit(None, 5), " LIMIT -1 OFFSET 5");
    }
}
