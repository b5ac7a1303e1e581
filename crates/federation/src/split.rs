//! Parallel reads of big remote tables: one statement per range of an integer key.
//!
//! ```text
//!  SELECT … FROM orders WHERE …            (estimated 1.5 M rows, key o_orderkey 1..6 000 000)
//!   ├ partition 0: SELECT * FROM (…) AS "part" WHERE "o_orderkey" < 3000001
//!   └ partition 1: SELECT * FROM (…) AS "part" WHERE "o_orderkey" >= 3000001
//! ```
//!
//! A scan is split when it reads one table through filters and projections only (no limit,
//! aggregate or join: those run whole in the database), keeps the table's split key (see
//! [`SplitKey`]) among its columns and is estimated at more than
//! `flotilla.federation.partition_rows` rows: one range per that many rows, up to
//! `datafusion.execution.target_partitions`. Each range is its own statement on its own
//! connection; the first and last ranges are open so rows outside the described key range are
//! still read.

use crate::config::FederationConfig;
use crate::source::{Source, SplitKey};
use datafusion::common::ScalarValue;
use datafusion::config::ConfigOptions;

/// How many ranges a scan of `rows` estimated rows is read in (1: not split).
pub(crate) fn partition_count(config: &ConfigOptions, rows: Option<usize>) -> usize {
    let per_partition = config.extensions.get::<FederationConfig>().map_or(
        FederationConfig::default().partition_rows,
        |c| {
            if c.pushdown { c.partition_rows } else { 0 }
        },
    );
    match rows {
        Some(rows) if per_partition > 0 => rows
            .div_ceil(per_partition)
            .clamp(1, config.execution.target_partitions.max(1)),
        _ => 1,
    }
}

/// `sql` once per range of `key` (named `column` among `sql`'s result columns), or nothing
/// when `n` is below 2 or a bound cannot be written in the source's dialect.
pub(crate) fn split_statements(
    source: &dyn Source,
    sql: &str,
    column: &str,
    key: &SplitKey,
    n: usize,
) -> Vec<String> {
    if n < 2 {
        return Vec::new();
    }
    let dialect = source.dialect();
    let quoted = dialect.quote_identifier(column);
    let alias = dialect.quote_identifier("part");
    let mut statements = Vec::new();
    for (low, high) in key.ranges(n) {
        let mut conditions = Vec::new();
        if let Some(low) = low {
            let Some(literal) = dialect.literal(&ScalarValue::Int64(Some(low))) else {
                return Vec::new();
            };
            conditions.push(format!("{quoted} >= {literal}"));
        }
        if let Some(high) = high {
            let Some(literal) = dialect.literal(&ScalarValue::Int64(Some(high))) else {
                return Vec::new();
            };
            conditions.push(format!("{quoted} < {literal}"));
        }
        statements.push(format!(
            "SELECT * FROM ({sql}) AS {alias} WHERE {}",
            conditions.join(" AND ")
        ));
    }
    if statements.len() < 2 {
        return Vec::new();
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_every_key_and_leave_the_ends_open() {
        let key = SplitKey {
            column: "k".into(),
            min: 1,
            max: 6_000_000,
        };
        assert_eq!(
            key.ranges(2),
            vec![(None, Some(3_000_001)), (Some(3_000_001), None)]
        );
        let three = key.ranges(3);
        assert_eq!(three.len(), 3);
        assert_eq!(three[0].1, three[1].0);
        assert_eq!(three[1].1, three[2].0);
        // Never more ranges than values.
        let tiny = SplitKey {
            column: "k".into(),
            min: 5,
            max: 5,
        };
        assert_eq!(tiny.ranges(4), vec![(None, None)]);
        let extreme = SplitKey {
            column: "k".into(),
            min: i64::MIN,
            max: i64::MAX,
        };
        assert_eq!(extreme.ranges(2), vec![(None, Some(0)), (Some(0), None)]);
    }
}
