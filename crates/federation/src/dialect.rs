//! Dialects: how to write SQL for a database, and what the database can run.
//!
//! A dialect answers, for every construct the SQL writer meets, either with the text to send or
//! with `None` — "this database cannot do that exactly as DataFusion would". The planner then
//! cuts the plan below that construct and DataFusion evaluates the rest. So adding a database
//! means implementing this trait; the planner never names a database.
//!
//! The default methods write ANSI SQL; a dialect overrides what its database does differently.

use datafusion::arrow::array::temporal_conversions::{as_date, as_datetime};
use datafusion::arrow::datatypes::{DataType, Date32Type, TimestampMicrosecondType};
use datafusion::common::{JoinType, ScalarValue};
use datafusion::logical_expr::Operator;
use std::fmt::Debug;

/// SQL writing and capabilities of one database.
pub trait Dialect: Debug + Send + Sync {
    /// A short name for plans and errors, e.g. `sqlite`.
    fn name(&self) -> &str;

    /// Quotes an identifier (always; never bare).
    fn quote_identifier(&self, identifier: &str) -> String {
        format!("\"{}\"", identifier.replace('"', "\"\""))
    }

    /// Quotes a string literal.
    fn quote_string(&self, value: &str) -> String {
        format!("'{}'", value.replace('\'', "''"))
    }

    /// A literal value, or `None` when the database has no faithful literal for it.
    fn literal(&self, value: &ScalarValue) -> Option<String>;

    /// A binary operator applied to operands of the given types, or `None` when the database's
    /// result would differ from DataFusion's.
    fn binary_operator(
        &self,
        op: &Operator,
        left: &DataType,
        right: &DataType,
    ) -> Option<&'static str>;

    /// A call of DataFusion's scalar function `name` with the written arguments.
    fn scalar_function(
        &self,
        name: &str,
        args: &[String],
        arg_types: &[DataType],
    ) -> Option<String>;

    /// A call of DataFusion's aggregate function `name`.
    fn aggregate_function(
        &self,
        name: &str,
        distinct: bool,
        args: &[String],
        arg_types: &[DataType],
    ) -> Option<String>;

    /// A call of DataFusion's window function `name` (ranking, offset and value functions; not
    /// aggregates used as windows), without its `OVER` clause. Default: the SQL-standard ones
    /// ([`standard_window_function`]).
    fn window_function(
        &self,
        name: &str,
        args: &[String],
        arg_types: &[DataType],
    ) -> Option<String> {
        let _ = arg_types;
        standard_window_function(name, args)
    }

    /// Whether the database runs window functions (`OVER (...)`) at all. Default: yes.
    fn supports_windows(&self) -> bool {
        true
    }

    /// A cast of `expr` from one type to another.
    fn cast(&self, expr: &str, from: &DataType, to: &DataType) -> Option<String>;

    /// Whether `LIKE` (or `ILIKE` when `case_insensitive`) matches as DataFusion's does.
    fn supports_like(&self, case_insensitive: bool) -> bool;

    /// Whether the database runs this join type.
    fn supports_join(&self, join_type: JoinType) -> bool;

    /// Equality that treats two NULLs as equal.
    fn null_safe_equal(&self, left: &str, right: &str) -> String {
        format!("({left} IS NOT DISTINCT FROM {right})")
    }

    /// `expr` of `data_type` as an operand of an ordering (sort keys, `<`, `BETWEEN`, `min`):
    /// where the database orders text by a collation, this must select code-point order, which
    /// is DataFusion's. Default: unchanged.
    fn collate(&self, expr: &str, data_type: &DataType) -> String {
        let _ = data_type;
        expr.to_string()
    }

    /// `expr` of `data_type` as an operand of an equality, `IN`, `LIKE`, join key, grouping or
    /// partitioning key: where the database compares text by a case- or accent-insensitive
    /// collation, or ignores trailing spaces, this must make it compare bytes, as DataFusion
    /// does. Default: unchanged (byte-wise equality, as PostgreSQL's deterministic collations
    /// and SQLite's `BINARY` have).
    fn exact_text(&self, expr: &str, data_type: &DataType) -> String {
        let _ = data_type;
        expr.to_string()
    }

    /// Whether `SELECT DISTINCT` over text columns removes the duplicates DataFusion would
    /// (false where text is compared by a collation: the cut then leaves DISTINCT to DataFusion).
    fn distinct_text_is_exact(&self) -> bool {
        true
    }

    /// Whether the database runs a semi join written `x IN (SELECT y …)` (and an anti join over
    /// non-nullable keys written `NOT IN`) better than `[NOT] EXISTS (… WHERE x = y)`: MySQL and
    /// MariaDB materialize `IN` subqueries into hashed lookups but run `EXISTS` row by row.
    fn prefers_in_subqueries(&self) -> bool {
        false
    }

    /// Whether the database joins efficiently only through an index (no hash join): then a
    /// join is pushed only when an index can serve it — an inner join when either key column
    /// is indexed, an outer join when the inner side's is, a correlated `EXISTS` when the
    /// subquery's is — and otherwise DataFusion joins the two sides (requires sources to report
    /// [`RemoteTable::indexed`](crate::RemoteTable)).
    fn join_needs_index(&self) -> bool {
        false
    }

    /// `column` (written) as the operand of a join key's range bound (`k >= 3`, sent into a
    /// scan by join-key pushdown) — written so the database does not read the table through an
    /// index on it when that is what the dialect's engine would do. A range taken from a hash
    /// join's build side usually spans most of the key's values: read through an index, that
    /// is a random lookup per row instead of one sequential scan. Default: `column` as is, for
    /// engines that estimate how many rows a range holds and choose the scan themselves.
    fn key_range_operand(&self, column: &str) -> String {
        column.to_string()
    }

    /// A statement reading about `rows` rows spread over the whole of `table` (quoted, with its
    /// schema) with `columns` (quoted, comma-separated), cheaply: the cost-based cut measures
    /// the share of rows a scan's conditions keep on them. Rows in the order the table is
    /// stored in, where it has one: the cut sees on them which columns follow that order (an
    /// index on such a column is read about sequentially). `None`: no cheap way (the cut then
    /// guesses per kind of condition).
    fn sample_sql(&self, table: &str, columns: &str, rows: usize) -> Option<String> {
        let _ = (table, columns, rows);
        None
    }

    /// What the database's engine does fast and slow, for the cost-based cut
    /// (`flotilla.federation.pushdown = cost`). Default: a server engine with hash joins and
    /// hash aggregation, where running a sub-plan is cheap next to sending its inputs.
    fn costs(&self) -> EngineCosts {
        EngineCosts::SERVER
    }

    /// The ordering of one sort key, explicit about NULLs.
    fn order_by(&self, expr: &str, asc: bool, nulls_first: bool) -> String {
        format!(
            "{expr} {} NULLS {}",
            if asc { "ASC" } else { "DESC" },
            if nulls_first { "FIRST" } else { "LAST" }
        )
    }

    /// `LIMIT`/`OFFSET` clause (with a leading space), or empty.
    fn limit(&self, fetch: Option<usize>, skip: usize) -> String {
        let mut clause = String::new();
        if let Some(n) = fetch {
            clause.push_str(&format!(" LIMIT {n}"));
        }
        if skip > 0 {
            clause.push_str(&format!(" OFFSET {skip}"));
        }
        clause
    }

    /// Whether a pushed query may produce a column of this type (the connector can decode it).
    fn can_return(&self, data_type: &DataType) -> bool;
}

/// The SQL-standard window functions (ranking, offset and value functions) as most databases
/// spell them: `name(args)`, or `None` for another function or arity.
pub fn standard_window_function(name: &str, args: &[String]) -> Option<String> {
    let known = matches!(
        (name, args.len()),
        (
            "row_number" | "rank" | "dense_rank" | "percent_rank" | "cume_dist",
            0
        ) | ("ntile" | "first_value" | "last_value", 1)
            | ("nth_value", 2)
            | ("lag" | "lead", 1..=3)
    );
    known.then(|| format!("{name}({})", args.join(", ")))
}

/// The comparison and boolean operators, which every SQL database spells alike (`=`, `<>`,
/// `<`, `<=`, `>`, `>=`, `AND`, `OR`); `None` for any other operator.
pub fn comparison_or_logic(op: &Operator) -> Option<&'static str> {
    Some(match op {
        Operator::Eq => "=",
        Operator::NotEq => "<>",
        Operator::Lt => "<",
        Operator::LtEq => "<=",
        Operator::Gt => ">",
        Operator::GtEq => ">=",
        Operator::And => "AND",
        Operator::Or => "OR",
        _ => return None,
    })
}

/// `+`, `-` and `*` between numbers (or NULLs) and `%` between integers, which SQL databases
/// spell and compute alike; `None` for any other operator or types. Division is left to each
/// dialect: databases differ in what `/` of two integers or two floats returns.
pub fn arithmetic(op: &Operator, left: &DataType, right: &DataType) -> Option<&'static str> {
    let numbers = numeric(left) && numeric(right);
    Some(match op {
        Operator::Plus if numbers => "+",
        Operator::Minus if numbers => "-",
        Operator::Multiply if numbers => "*",
        Operator::Modulo if left.is_integer() && right.is_integer() => "%",
        _ => return None,
    })
}

/// A number, or the NULL type (an untyped `NULL` operand).
pub fn numeric(data_type: &DataType) -> bool {
    data_type.is_numeric() || data_type.is_null()
}

/// One of Arrow's three string types.
pub fn textual(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// The SQL-standard literal of `value`: `NULL`, `TRUE`/`FALSE`, integers and decimals as their
/// digits, finite floats as the shortest digits that read back exactly, quoted text,
/// `DATE 'YYYY-MM-DD'` and `TIMESTAMP 'YYYY-MM-DD HH:MM:SS.ffffff'` (microseconds, no time
/// zone); `None` for any other value. A dialect writes what its database reads differently and
/// leaves the rest to this.
pub fn standard_literal(dialect: &(impl Dialect + ?Sized), value: &ScalarValue) -> Option<String> {
    if value.is_null() {
        return Some("NULL".into());
    }
    if let Some(text) = text(value) {
        return Some(dialect.quote_string(text));
    }
    Some(match value {
        ScalarValue::Boolean(Some(b)) => (if *b { "TRUE" } else { "FALSE" }).into(),
        ScalarValue::Int8(Some(v)) => v.to_string(),
        ScalarValue::Int16(Some(v)) => v.to_string(),
        ScalarValue::Int32(Some(v)) => v.to_string(),
        ScalarValue::Int64(Some(v)) => v.to_string(),
        ScalarValue::UInt8(Some(v)) => v.to_string(),
        ScalarValue::UInt16(Some(v)) => v.to_string(),
        ScalarValue::UInt32(Some(v)) => v.to_string(),
        ScalarValue::UInt64(Some(v)) => v.to_string(),
        ScalarValue::Float64(Some(v)) if v.is_finite() => format!("{v:?}"),
        ScalarValue::Float32(Some(v)) if v.is_finite() => format!("{:?}", f64::from(*v)),
        ScalarValue::Decimal128(Some(_), _, _) => value.to_string(),
        ScalarValue::Date32(Some(days)) => format!("DATE '{}'", date(*days)?),
        ScalarValue::TimestampMicrosecond(Some(micros), None) => format!(
            "TIMESTAMP '{}'",
            as_datetime::<TimestampMicrosecondType>(*micros)?.format("%Y-%m-%d %H:%M:%S%.6f")
        ),
        _ => return None,
    })
}

/// The text of a string value (any of Arrow's three string types), not NULL.
pub fn text(value: &ScalarValue) -> Option<&str> {
    match value {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
        | ScalarValue::LargeUtf8(Some(s)) => Some(s),
        _ => None,
    }
}

/// A `Date32` (days since 1970-01-01) as `YYYY-MM-DD`; `None` out of chrono's range.
pub fn date(days: i32) -> Option<String> {
    Some(
        as_date::<Date32Type>(i64::from(days))?
            .format("%Y-%m-%d")
            .to_string(),
    )
}

/// The text of a string literal the SQL writer rendered, e.g. `'year'` → `year`; `None` for
/// anything but a single-quoted literal.
pub fn unquote(sql: &str) -> Option<String> {
    let inner = sql.strip_prefix('\'')?.strip_suffix('\'')?;
    Some(inner.replace("''", "'"))
}

/// What an engine takes per unit of work, in seconds on the machine the constants were
/// measured on (each dialect says how it measured its own). The cut compares a sub-plan run in
/// the database plus sending its result against its inputs sent and the sub-plan run in
/// DataFusion, and keeps the cheaper (see the `cost` module).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineCosts {
    /// Reading one row in a full scan, its filters evaluated (but text patterns).
    pub scan_row: f64,
    /// Evaluating one text pattern (`LIKE`, `ILIKE`, `SIMILAR TO`) on one row, beyond
    /// `scan_row`: a filter whose patterns cost the database more than sending the columns
    /// they read and matching here is evaluated here.
    pub match_row: f64,
    /// One index lookup of a nested-loop join, per row looked up or found, its page in the
    /// engine's memory.
    pub probe: f64,
    /// Bytes of table data the engine keeps in memory (InnoDB's buffer pool);
    /// `f64::INFINITY` where a lookup costs `probe` in a table of any size.
    pub cache_bytes: f64,
    /// What a lookup costs besides `probe` when its page is not in that memory and is read
    /// again (from the operating system's cache). Lookups into a table of `B` bytes are taken
    /// to miss in the share `1 − cache_bytes / B`.
    pub page_read: f64,
    /// One row into or out of a hash table (join build and probe, hash aggregation); for an
    /// engine without hash joins, one row into a temporary index, times log2 of its size.
    pub hash_row: f64,
    /// Bytes of hash table the engine aggregates in at `hash_row` a row: about a core's
    /// cache; `f64::INFINITY` where the size is not priced.
    pub hash_cache_bytes: f64,
    /// What an input row of an aggregate whose groups take more (see `HASH_ENTRY_BYTES` in
    /// the `cost` module) costs besides `hash_row`, times the share of them beyond
    /// `hash_cache_bytes`: an access to memory rather than to the cache.
    pub hash_miss: f64,
    /// Whether such an aggregate makes the plan serial (see `serial_factor`).
    pub serial_big_aggregate: bool,
    /// Whether joins without a usable index are hash joins (else: a temporary index is built).
    pub hash_joins: bool,
    /// One input row of an aggregate (evaluating its functions).
    pub aggregate_row: f64,
    /// One row of a sort, times log2 of the rows sorted (ORDER BY, and GROUP BY of an engine
    /// that groups by sorting).
    pub sort_row: f64,
    /// Whether GROUP BY is hashed (else sorted).
    pub hash_aggregates: bool,
    /// Sending one result row to Flotilla and decoding it into Arrow, per row and per byte.
    pub fetch_row: f64,
    pub fetch_byte: f64,
    /// One statement: round trip, parsing, planning.
    pub statement: f64,
    /// How many times longer the engine takes over a plan it cannot run in parallel (the
    /// figures above are for plans it does run in parallel); 1 for an engine that never does.
    pub serial_factor: f64,
    /// Whether an outer join that hashes its preserved side makes the plan serial (when that
    /// side is the smaller: PostgreSQL before 16 has no parallel right or full hash join).
    pub serial_outer_hash: bool,
}

impl EngineCosts {
    /// A server engine with hash joins and hash aggregation over a network (PostgreSQL's
    /// shape): pushing is nearly always right, so its work is priced low next to moving rows.
    pub const SERVER: EngineCosts = EngineCosts {
        scan_row: 5e-8,
        // PostgreSQL 15, TPC-H SF 1: `o_comment NOT LIKE '%special%requests%'` over orders'
        // 1.5 M rows, in parallel, 0.09 s beyond summing a column (0.07 s).
        match_row: 6e-8,
        probe: 5e-7,
        cache_bytes: f64::INFINITY,
        page_read: 0.0,
        hash_row: 1e-7,
        hash_cache_bytes: f64::INFINITY,
        hash_miss: 0.0,
        serial_big_aggregate: false,
        hash_joins: true,
        aggregate_row: 1e-7,
        sort_row: 2e-8,
        hash_aggregates: true,
        fetch_row: 4e-7,
        fetch_byte: 5e-9,
        statement: 1e-3,
        serial_factor: 1.0,
        serial_outer_hash: false,
    };
}
