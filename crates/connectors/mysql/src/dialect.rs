//! The MySQL dialect, in three flavors: MySQL 8, MariaDB 10.5+, TiDB.
//!
//! What differs from DataFusion and how it is handled:
//! - Text compares by the column's collation, by default case-insensitive and ignoring trailing
//!   spaces: every text comparison, `IN`, `LIKE`, join, grouping and sort key is converted to
//!   UTF-8 with a binary no-pad collation (MariaDB `utf8mb4_nopad_bin`, MySQL
//!   `utf8mb4_0900_bin`; TiDB compares `BINARY` casts). `DISTINCT` over text stays in DataFusion.
//! - `/` on integers returns a decimal: integer division is written `DIV`. Division by zero
//!   gives NULL, not an error: floating-point division is not pushed.
//! - No `NULLS FIRST/LAST`: sort keys are written `(x IS NULL), x`.
//! - No `IS [NOT] DISTINCT FROM`: `<=>`. No `FULL JOIN`.
//! - `CONCAT` is NULL when an argument is: DataFusion's `concat` is written `CONCAT_WS('', …)`.
//! - `LENGTH` counts bytes: `CHAR_LENGTH`. `SUBSTRING` with a negative start counts from the
//!   end: only pushed with a positive literal start.
//! - Case mapping (`upper`, `lower`, `ILIKE`), `LOCATE`, regular expressions: refused.
//!
//! - MariaDB joins without an index by nested loops (its hash join, `join_cache_level` ≥ 3,
//!   also replaces primary-key lookups and was measured slower on TPC-H): joins no index can
//!   serve are left to DataFusion.
//!
//! Sessions run with `NO_BACKSLASH_ESCAPES` (string literals are only quote-doubled) and
//! without `ONLY_FULL_GROUP_BY`, in time zone `+00:00`.

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{JoinType, ScalarValue};
use datafusion::logical_expr::Operator;
use flotilla_federation::Dialect;
use flotilla_federation::dialect::{
    EngineCosts, arithmetic, comparison_or_logic, numeric, standard_literal, textual, unquote,
};

/// Which server speaks the MySQL protocol (`flavor = "mysql" | "mariadb" | "tidb"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    MySql,
    MariaDb,
    TiDb,
}

impl Flavor {
    /// The flavor a `SELECT VERSION()` string reports.
    pub fn from_version(version: &str) -> Flavor {
        if version.contains("TiDB") {
            Flavor::TiDb
        } else if version.contains("MariaDB") {
            Flavor::MariaDb
        } else {
            Flavor::MySql
        }
    }

    /// The dialect of this flavor.
    pub fn dialect(self) -> &'static MysqlDialect {
        static MYSQL: MysqlDialect = MysqlDialect(Flavor::MySql);
        static MARIADB: MysqlDialect = MysqlDialect(Flavor::MariaDb);
        static TIDB: MysqlDialect = MysqlDialect(Flavor::TiDb);
        match self {
            Flavor::MySql => &MYSQL,
            Flavor::MariaDb => &MARIADB,
            Flavor::TiDb => &TIDB,
        }
    }
}

/// SQL for one flavor of MySQL.
#[derive(Debug)]
pub struct MysqlDialect(pub Flavor);

/// MariaDB's engine, from TPC-H SF 1 on a 2-core machine (MariaDB 10.11, InnoDB, default
/// `join_cache_level` and 128 MB buffer pool; `flotilla bench federation --source mysql --scale
/// 1`, each query's pushed SQL timed alone, and joins forced with `STRAIGHT_JOIN`):
/// - a scan with a filter costs 0.34 µs a row (q6: 6 M rows in 2.0 s), aggregating 1.2 µs more
///   (q1: 8.9 s for 8 aggregates of 5.9 M rows);
/// - a text pattern costs more than the scan, 0.4 µs a row: reading `o_orderkey, o_custkey`
///   of orders' 1.5 M rows takes 0.52 s with `mariadb --quick`, 1.12 s of those where
///   `(CONVERT(o_comment USING utf8mb4) COLLATE utf8mb4_nopad_bin) NOT LIKE
///   '%special%requests%'` (as the dialect writes it; 0.1 s less without the conversion), and
///   0.68 s with `o_comment` read as well instead. TPC-H q13 reads orders faster with the
///   pattern matched here (0.9 s against 1.4 s as one statement);
/// - a lookup through a primary key whose pages are in the buffer pool about 2.3 µs: 727 k
///   orders look up their customer (30 MB) in 1.6 s beyond scanning orders, 684 k lines their
///   part (30 MB) in 1.7 s;
/// - one whose page is not about 30 µs more: the 147 k orders of q3 that pass their filters
///   look up their lines in lineitem (826 MB) in 4.5 s (and 684 k lines their partsupp row,
///   187 MB, in 27 s). Lookups following the table's own order are cheaper — all 727 k orders
///   of q3's date range read their lines in 3.4 s, the pages being read ahead — which the
///   model does not see: it errs towards reading such tables here;
/// - joins through indexes or block nested loops, not hash joins; its temporary-table grouping
///   is taken as hashing. Reading rows is as for [`EngineCosts::SERVER`] (6 M lineitem rows of
///   16 columns into Arrow: 6.4 s).
pub const MARIADB_COSTS: EngineCosts = EngineCosts {
    scan_row: 3.4e-7,
    match_row: 4e-7,
    probe: 2.3e-6,
    // MariaDB's default innodb_buffer_pool_size; the source reads the server's own.
    cache_bytes: 128.0 * 1024.0 * 1024.0,
    page_read: 3e-5,
    hash_row: 2e-7,
    hash_joins: false,
    aggregate_row: 1.2e-6,
    sort_row: 3e-8,
    hash_aggregates: true,
    ..EngineCosts::SERVER
};

impl Dialect for MysqlDialect {
    /// MariaDB's measured costs ([`MARIADB_COSTS`]); MySQL 8 and TiDB, which hash-join, are
    /// taken as [`EngineCosts::SERVER`] (not measured here).
    fn costs(&self) -> EngineCosts {
        match self.0 {
            Flavor::MariaDb => MARIADB_COSTS,
            Flavor::MySql | Flavor::TiDb => EngineCosts::SERVER,
        }
    }

    fn name(&self) -> &str {
        match self.0 {
            Flavor::MySql => "mysql",
            Flavor::MariaDb => "mariadb",
            Flavor::TiDb => "tidb",
        }
    }

    fn quote_identifier(&self, identifier: &str) -> String {
        format!("`{}`", identifier.replace('`', "``"))
    }

    fn literal(&self, value: &ScalarValue) -> Option<String> {
        match value {
            // An exponent makes the literal a DOUBLE (plain digits would be DECIMAL).
            ScalarValue::Float64(Some(v)) if v.is_finite() => Some(format!("{v:e}")),
            ScalarValue::Float32(Some(v)) if v.is_finite() => Some(format!("{:e}", f64::from(*v))),
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
            Operator::IsNotDistinctFrom => "<=>",
            Operator::Divide if left.is_integer() && right.is_integer() => "DIV",
            Operator::Divide
                if matches!(left, DataType::Decimal128(..))
                    && matches!(
                        right,
                        DataType::Decimal128(..) | DataType::Int64 | DataType::Int32
                    ) =>
            {
                "/"
            }
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
        let positive_literal = |sql: &str| sql.parse::<i64>().is_ok_and(|v| v > 0);
        Some(match (name, args.len()) {
            ("abs", 1) if numeric(&arg_types[0]) => call("ABS"),
            ("coalesce", n) if n >= 1 => call("COALESCE"),
            ("nullif", 2) => call("NULLIF"),
            ("substr" | "substring", 2 | 3)
                if textual(&arg_types[0]) && positive_literal(&args[1]) =>
            {
                call("SUBSTRING")
            }
            ("length" | "char_length" | "character_length", 1) if textual(&arg_types[0]) => {
                call("CHAR_LENGTH")
            }
            ("trim" | "btrim", 1) => call("TRIM"),
            ("ltrim", 1) => call("LTRIM"),
            ("rtrim", 1) => call("RTRIM"),
            ("replace", 3) => call("REPLACE"),
            ("concat", n) if n >= 1 => format!("CONCAT_WS('', {})", args.join(", ")),
            ("date_part", 2) if arg_types[1] == DataType::Date32 => {
                let field = unquote(&args[0])?.to_ascii_uppercase();
                if !matches!(field.as_str(), "YEAR" | "QUARTER" | "MONTH" | "DAY") {
                    return None;
                }
                format!("EXTRACT({field} FROM {})", args[1])
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
        match (name, args) {
            ("count", [arg]) if distinct => Some(format!(
                "COUNT(DISTINCT {})",
                self.exact_text(arg, &arg_types[0])
            )),
            ("count", [arg]) => Some(format!("COUNT({arg})")),
            ("count", []) if !distinct => Some("COUNT(*)".into()),
            ("sum" | "avg", [arg]) if numeric(&arg_types[0]) => Some(format!(
                "{}({}{arg})",
                name.to_uppercase(),
                if distinct { "DISTINCT " } else { "" }
            )),
            ("min" | "max", [arg]) => Some(format!(
                "{}({})",
                name.to_uppercase(),
                self.collate(arg, &arg_types[0])
            )),
            _ => None,
        }
    }

    fn cast(&self, expr: &str, from: &DataType, to: &DataType) -> Option<String> {
        if from == to {
            return Some(expr.to_string());
        }
        Some(match to {
            DataType::Int64 if from.is_integer() => format!("CAST({expr} AS SIGNED)"),
            t if t.is_integer() && from.is_integer() => expr.to_string(),
            DataType::Float64 | DataType::Float32 if numeric(from) => {
                format!("({expr} + 0e0)")
            }
            // Both round half away from zero (floats: from the nearest binary value).
            DataType::Decimal128(p, s) if numeric(from) => {
                format!("CAST({expr} AS DECIMAL({p},{s}))")
            }
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View if textual(from) => {
                expr.to_string()
            }
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View if from.is_integer() => {
                format!("CAST({expr} AS CHAR)")
            }
            DataType::Timestamp(_, None) if *from == DataType::Date32 => {
                format!("CAST({expr} AS DATETIME(6))")
            }
            _ => return None,
        })
    }

    fn supports_like(&self, case_insensitive: bool) -> bool {
        !case_insensitive
    }

    fn supports_join(&self, join_type: JoinType) -> bool {
        !matches!(
            join_type,
            JoinType::Full | JoinType::LeftMark | JoinType::RightMark
        )
    }

    fn null_safe_equal(&self, left: &str, right: &str) -> String {
        format!("({left} <=> {right})")
    }

    fn exact_text(&self, expr: &str, data_type: &DataType) -> String {
        if !textual(data_type) {
            return expr.to_string();
        }
        match self.0 {
            Flavor::MariaDb => format!("(CONVERT({expr} USING utf8mb4) COLLATE utf8mb4_nopad_bin)"),
            Flavor::MySql => format!("(CONVERT({expr} USING utf8mb4) COLLATE utf8mb4_0900_bin)"),
            Flavor::TiDb => format!("CAST({expr} AS BINARY)"),
        }
    }

    fn collate(&self, expr: &str, data_type: &DataType) -> String {
        // The binary collations above order by code point, DataFusion's order.
        self.exact_text(expr, data_type)
    }

    fn distinct_text_is_exact(&self) -> bool {
        false
    }

    fn prefers_in_subqueries(&self) -> bool {
        true
    }

    fn join_needs_index(&self) -> bool {
        // MySQL 8.0.18+ and TiDB hash-join; MariaDB's default join cache does not.
        self.0 == Flavor::MariaDb
    }

    fn order_by(&self, expr: &str, asc: bool, nulls_first: bool) -> String {
        format!(
            "({expr} IS NULL) {}, {expr} {}",
            if nulls_first { "DESC" } else { "ASC" },
            if asc { "ASC" } else { "DESC" }
        )
    }

    fn limit(&self, fetch: Option<usize>, skip: usize) -> String {
        match (fetch, skip) {
            (None, 0) => String::new(),
            (Some(n), 0) => format!(" LIMIT {n}"),
            (None, m) => format!(" LIMIT 18446744073709551615 OFFSET {m}"),
            (Some(n), m) => format!(" LIMIT {n} OFFSET {m}"),
        }
    }

    fn can_return(&self, data_type: &DataType) -> bool {
        matches!(
            data_type,
            DataType::Boolean
                | DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::UInt8
                | DataType::UInt16
                | DataType::UInt32
                | DataType::UInt64
                | DataType::Float32
                | DataType::Float64
                | DataType::Decimal128(..)
                | DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Binary
                | DataType::Date32
                | DataType::Time64(TimeUnit::Microsecond)
                | DataType::Timestamp(..)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_take_backticks_and_text_compares_bytewise() {
        let d = Flavor::MariaDb.dialect();
        assert_eq!(d.quote_identifier("we`ird"), "`we``ird`");
        assert_eq!(
            d.literal(&ScalarValue::Utf8(Some("it's \\".into())))
                .unwrap(),
            "'it''s \\'"
        );
        assert_eq!(
            d.exact_text("t.`a`", &DataType::Utf8),
            "(CONVERT(t.`a` USING utf8mb4) COLLATE utf8mb4_nopad_bin)"
        );
        assert_eq!(d.exact_text("t.`n`", &DataType::Int64), "t.`n`");
        assert_eq!(
            d.binary_operator(&Operator::Divide, &DataType::Int64, &DataType::Int64),
            Some("DIV")
        );
        assert!(
            d.binary_operator(&Operator::Divide, &DataType::Float64, &DataType::Float64)
                .is_none()
        );
        assert!(!d.supports_join(JoinType::Full));
        assert_eq!(d.order_by("x", true, false), "(x IS NULL) ASC, x ASC");
        assert_eq!(
            Flavor::from_version("10.11.6-MariaDB-0+deb12u1"),
            Flavor::MariaDb
        );
        assert_eq!(Flavor::from_version("8.0.11-TiDB-v7.5.0"), Flavor::TiDb);
    }
}
