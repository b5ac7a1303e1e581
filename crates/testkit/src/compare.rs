//! Row-for-row comparison of two query results.
//!
//! Every correctness test compares Flotilla's answer with an independent one (DataFusion over
//! Parquet, another database, single-node vs distributed). The rules:
//!
//! - Rows are compared as sets (multisets) unless the query orders its result; then in order.
//!   [`query_is_ordered`] tells from the SQL.
//! - Values are compared by meaning, not by Arrow type: `Int32 7`, `Int64 7` and `Decimal 7.00`
//!   are equal; `Utf8` and `Utf8View` are both text.
//! - Decimals are exact. An integer against a decimal is compared exactly at the decimal's
//!   scale. Two decimals of different non-zero scales (one engine's `avg` keeps 6 digits,
//!   another's 16) are compared at the smaller scale, rounding half away from zero.
//! - Floats (or a float against a decimal) match within a relative tolerance of 1e-9.
//! - Dates, timestamps and other types are compared in their canonical text form.
//! - Column names are not compared (engines name expressions differently); column counts are.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Decimal128Type, Float32Type, Float64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use std::cmp::Ordering;

/// Relative tolerance for floating-point values.
const FLOAT_TOLERANCE: f64 = 1e-9;

/// How strictly decimals are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decimals {
    /// Equal at the common scale (see the module documentation).
    Exact,
    /// Within one unit of the last decimal place: for engines that compute decimals in floating
    /// point (SQLite has no decimal type), whose rounding of the last digit can differ.
    LastDigit,
}

/// One value, normalized.
#[derive(Debug, Clone)]
enum Cell {
    Null,
    Bool(bool),
    /// An exact number: `mantissa × 10^-scale`, at the scale of its Arrow type.
    Exact {
        mantissa: i128,
        scale: u32,
    },
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
    /// Anything else, as canonical text (dates, timestamps, intervals, nested types).
    Other(String),
}

impl Cell {
    fn exact(mantissa: i128, scale: u32) -> Cell {
        Cell::Exact { mantissa, scale }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Cell::Exact { mantissa, scale } => Some(*mantissa as f64 / 10f64.powi(*scale as i32)),
            Cell::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// Equality by the rules in the module documentation.
    fn matches(&self, other: &Cell, decimals: Decimals) -> bool {
        let slack = match decimals {
            Decimals::Exact => 0,
            Decimals::LastDigit => 1,
        };
        match (self, other) {
            (Cell::Null, Cell::Null) => true,
            (Cell::Bool(a), Cell::Bool(b)) => a == b,
            (
                Cell::Exact {
                    mantissa: a,
                    scale: sa,
                },
                Cell::Exact {
                    mantissa: b,
                    scale: sb,
                },
            ) => {
                let common = if *sa == 0 || *sb == 0 {
                    // An integer against a decimal: exact at the decimal's scale.
                    (*sa).max(*sb)
                } else {
                    (*sa).min(*sb)
                };
                (round_to(*a, *sa, common) - round_to(*b, *sb, common)).abs() <= slack
            }
            (Cell::Float(_), Cell::Float(_) | Cell::Exact { .. })
            | (Cell::Exact { .. }, Cell::Float(_)) => {
                let (a, b) = (
                    self.as_f64().unwrap_or(f64::NAN),
                    other.as_f64().unwrap_or(f64::NAN),
                );
                if a.is_nan() || b.is_nan() {
                    return a.is_nan() && b.is_nan();
                }
                let magnitude = a.abs().max(b.abs()).max(1.0);
                // A decimal side allows `slack` units of its last place.
                let last_place = match (self, other) {
                    (Cell::Exact { scale, .. }, _) | (_, Cell::Exact { scale, .. }) => {
                        slack as f64 * 10f64.powi(-(*scale as i32))
                    }
                    _ => 0.0,
                };
                (a - b).abs() <= (FLOAT_TOLERANCE * magnitude).max(last_place * 1.000_001)
            }
            (Cell::Text(a), Cell::Text(b)) => a == b,
            (Cell::Bytes(a), Cell::Bytes(b)) => a == b,
            (Cell::Other(a), Cell::Other(b)) => a == b,
            _ => false,
        }
    }

    /// A total order for sorting rows: nulls first, numbers numerically, then by kind.
    fn order(&self, other: &Cell) -> Ordering {
        fn rank(c: &Cell) -> u8 {
            match c {
                Cell::Null => 0,
                Cell::Bool(_) => 1,
                Cell::Exact { .. } | Cell::Float(_) => 2,
                Cell::Text(_) => 3,
                Cell::Bytes(_) => 4,
                Cell::Other(_) => 5,
            }
        }
        match (self, other) {
            (Cell::Bool(a), Cell::Bool(b)) => a.cmp(b),
            (Cell::Text(a), Cell::Text(b)) | (Cell::Other(a), Cell::Other(b)) => a.cmp(b),
            (Cell::Bytes(a), Cell::Bytes(b)) => a.cmp(b),
            _ => match (self.as_f64(), other.as_f64()) {
                (Some(a), Some(b)) => a.total_cmp(&b),
                _ => rank(self).cmp(&rank(other)),
            },
        }
    }
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cell::Null => f.write_str("NULL"),
            Cell::Bool(b) => write!(f, "{b}"),
            Cell::Exact { mantissa, scale: 0 } => write!(f, "{mantissa}"),
            Cell::Exact { mantissa, scale } => {
                let digits = format!(
                    "{:0>width$}",
                    mantissa.unsigned_abs(),
                    width = *scale as usize + 1
                );
                let (int, frac) = digits.split_at(digits.len() - *scale as usize);
                write!(f, "{}{int}.{frac}", if *mantissa < 0 { "-" } else { "" })
            }
            Cell::Float(v) => write!(f, "{v:?}"),
            Cell::Text(s) => write!(f, "{s:?}"),
            Cell::Bytes(b) => write!(
                f,
                "0x{}",
                b.iter().map(|x| format!("{x:02x}")).collect::<String>()
            ),
            Cell::Other(s) => f.write_str(s),
        }
    }
}

/// `mantissa × 10^-from` rounded (half away from zero) to `to` decimal places, as a mantissa.
fn round_to(mantissa: i128, from: u32, to: u32) -> i128 {
    if from <= to {
        return mantissa * 10i128.pow(to - from);
    }
    let divisor = 10i128.pow(from - to);
    let (quotient, remainder) = (mantissa / divisor, mantissa % divisor);
    if remainder.abs() * 2 >= divisor {
        quotient + mantissa.signum()
    } else {
        quotient
    }
}

type Row = Vec<Cell>;

fn rows_of(batches: &[RecordBatch]) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for batch in batches {
        let columns: Vec<Vec<Cell>> = batch
            .columns()
            .iter()
            .map(|c| cells(c.as_ref()))
            .collect::<Result<_, _>>()?;
        for i in 0..batch.num_rows() {
            rows.push(columns.iter().map(|c| c[i].clone()).collect());
        }
    }
    Ok(rows)
}

fn cells(array: &dyn Array) -> Result<Vec<Cell>, String> {
    let n = array.len();
    let mut out: Vec<Cell> = match array.data_type() {
        DataType::Boolean => {
            let a = array.as_boolean();
            (0..n).map(|i| Cell::Bool(a.value(i))).collect()
        }
        t if t.is_integer() => {
            let as_i64 = arrow::compute::cast(array, &DataType::Decimal128(38, 0))
                .map_err(|e| e.to_string())?;
            let a = as_i64.as_primitive::<Decimal128Type>();
            (0..n).map(|i| Cell::exact(a.value(i), 0)).collect()
        }
        DataType::Decimal128(_, scale) => {
            let a = array.as_primitive::<Decimal128Type>();
            let scale = (*scale).max(0) as u32;
            (0..n).map(|i| Cell::exact(a.value(i), scale)).collect()
        }
        DataType::Decimal32(_, s) | DataType::Decimal64(_, s) | DataType::Decimal256(_, s) => {
            let cast = arrow::compute::cast(array, &DataType::Decimal128(38, *s))
                .map_err(|e| e.to_string())?;
            return cells(cast.as_ref());
        }
        DataType::Float64 => {
            let a = array.as_primitive::<Float64Type>();
            (0..n).map(|i| Cell::Float(a.value(i))).collect()
        }
        DataType::Float32 => {
            let a = array.as_primitive::<Float32Type>();
            (0..n).map(|i| Cell::Float(a.value(i) as f64)).collect()
        }
        DataType::Float16 => {
            let cast =
                arrow::compute::cast(array, &DataType::Float64).map_err(|e| e.to_string())?;
            return cells(cast.as_ref());
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(..) => {
            let cast = arrow::compute::cast(array, &DataType::Utf8).map_err(|e| e.to_string())?;
            let a = cast.as_string::<i32>();
            (0..n).map(|i| Cell::Text(a.value(i).to_string())).collect()
        }
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => {
            let cast = arrow::compute::cast(array, &DataType::Binary).map_err(|e| e.to_string())?;
            let a = cast.as_binary::<i32>();
            (0..n).map(|i| Cell::Bytes(a.value(i).to_vec())).collect()
        }
        _ => {
            let formatter = ArrayFormatter::try_new(array, &FormatOptions::default())
                .map_err(|e| e.to_string())?;
            (0..n)
                .map(|i| Cell::Other(formatter.value(i).to_string()))
                .collect()
        }
    };
    for (i, cell) in out.iter_mut().enumerate() {
        if array.is_null(i) {
            *cell = Cell::Null;
        }
    }
    Ok(out)
}

fn row_order(a: &Row, b: &Row) -> Ordering {
    a.iter()
        .zip(b)
        .map(|(x, y)| x.order(y))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

fn show(row: &Row) -> String {
    let cells: Vec<String> = row.iter().map(|c| c.to_string()).collect();
    format!("({})", cells.join(", "))
}

/// Compares two results. `ordered`: the row order is part of the result (the query has an
/// `ORDER BY`). Returns a description of the first differences.
pub fn compare_batches(
    expected: &[RecordBatch],
    actual: &[RecordBatch],
    ordered: bool,
) -> Result<(), String> {
    compare_batches_with(expected, actual, ordered, Decimals::Exact)
}

/// [`compare_batches`] with a choice of how strictly decimals are compared.
pub fn compare_batches_with(
    expected: &[RecordBatch],
    actual: &[RecordBatch],
    ordered: bool,
    decimals: Decimals,
) -> Result<(), String> {
    let width = |b: &[RecordBatch]| b.first().map(|b| b.num_columns());
    if let (Some(e), Some(a)) = (width(expected), width(actual))
        && e != a
    {
        return Err(format!("expected {e} columns, got {a}"));
    }
    let mut expected = rows_of(expected)?;
    let mut actual = rows_of(actual)?;
    if !ordered {
        expected.sort_by(row_order);
        actual.sort_by(row_order);
    }
    let mut differences = Vec::new();
    for (i, (e, a)) in expected.iter().zip(&actual).enumerate() {
        if e.len() != a.len() || !e.iter().zip(a).all(|(x, y)| x.matches(y, decimals)) {
            differences.push(format!(
                "  row {i}: expected {}\n  row {i}:      got {}",
                show(e),
                show(a)
            ));
            if differences.len() == 5 {
                break;
            }
        }
    }
    if expected.len() != actual.len() {
        differences.insert(
            0,
            format!("  expected {} rows, got {}", expected.len(), actual.len()),
        );
        let longer = if expected.len() > actual.len() {
            ("missing", &expected)
        } else {
            ("extra", &actual)
        };
        let shorter = expected.len().min(actual.len());
        for row in longer.1.iter().skip(shorter).take(3) {
            differences.push(format!("  {}: {}", longer.0, show(row)));
        }
    }
    if differences.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "results differ ({}):\n{}",
            if ordered {
                "in order"
            } else {
                "as sets of rows"
            },
            differences.join("\n")
        ))
    }
}

/// Panics with the differences when the results are not the same (see [`compare_batches`]).
#[track_caller]
pub fn assert_same_rows(expected: &[RecordBatch], actual: &[RecordBatch], ordered: bool) {
    if let Err(e) = compare_batches(expected, actual, ordered) {
        panic!("{e}");
    }
}

/// [`assert_same_rows`] with a choice of how strictly decimals are compared.
#[track_caller]
pub fn assert_same_rows_with(
    expected: &[RecordBatch],
    actual: &[RecordBatch],
    ordered: bool,
    decimals: Decimals,
) {
    if let Err(e) = compare_batches_with(expected, actual, ordered, decimals) {
        panic!("{e}");
    }
}

/// Whether the outermost query of `sql` has an `ORDER BY` (outside parentheses, string
/// literals and comments), i.e. whether its row order is part of its result.
pub fn query_is_ordered(sql: &str) -> bool {
    let mut depth = 0i32;
    let mut cleaned = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                for d in chars.by_ref() {
                    if d == '\'' {
                        break;
                    }
                }
                cleaned.push(' ');
            }
            '-' if chars.peek() == Some(&'-') => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
                cleaned.push(' ');
            }
            '(' => {
                depth += 1;
                cleaned.push(' ');
            }
            ')' => {
                depth -= 1;
                cleaned.push(' ');
            }
            _ if depth == 0 => cleaned.push(c.to_ascii_lowercase()),
            _ => {}
        }
    }
    let words: Vec<&str> = cleaned.split_whitespace().collect();
    words.windows(2).any(|w| w == ["order", "by"])
}

/// Checks each column of `batches` (concatenated) against its expected name, Arrow type and
/// values as Arrow displays them (`""` for NULL); panics listing every difference.
pub fn assert_columns(
    batches: &[arrow::record_batch::RecordBatch],
    expected: &[(&str, arrow::datatypes::DataType, &[&str])],
) {
    use arrow::array::Array;
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    let batch = arrow::compute::concat_batches(&batches[0].schema(), batches).unwrap();
    assert_eq!(batch.num_columns(), expected.len(), "column count");
    let options = FormatOptions::default();
    let mut problems = Vec::new();
    for (i, (name, data_type, values)) in expected.iter().enumerate() {
        let field = batch.schema().field(i).clone();
        assert_eq!(field.name(), name);
        if field.data_type() != data_type {
            problems.push(format!(
                "{name}: type {} (expected {data_type})",
                field.data_type()
            ));
            continue;
        }
        let column = batch.column(i);
        assert_eq!(column.len(), values.len(), "{name}: row count");
        let formatter = ArrayFormatter::try_new(column.as_ref(), &options).unwrap();
        for (row, value) in values.iter().enumerate() {
            let actual = if column.is_null(row) {
                String::new()
            } else {
                formatter.value(row).to_string()
            };
            if actual != *value {
                problems.push(format!(
                    "{name} row {}: {actual:?} (expected {value:?})",
                    row + 1
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        Decimal128Array, Float64Array, Int32Array, Int64Array, StringArray, StringViewArray,
    };
    use std::sync::Arc;

    fn batch(columns: Vec<Arc<dyn Array>>) -> RecordBatch {
        RecordBatch::try_from_iter(
            columns
                .into_iter()
                .enumerate()
                .map(|(i, c)| (format!("c{i}"), c)),
        )
        .unwrap()
    }

    #[test]
    fn equal_values_of_different_types_match() {
        let a = batch(vec![
            Arc::new(Int32Array::from(vec![1, 2])),
            Arc::new(StringArray::from(vec!["x", "y"])),
            Arc::new(
                Decimal128Array::from(vec![150, 200])
                    .with_precision_and_scale(15, 2)
                    .unwrap(),
            ),
        ]);
        let b = batch(vec![
            Arc::new(Int64Array::from(vec![2, 1])),
            Arc::new(StringViewArray::from(vec!["y", "x"])),
            Arc::new(
                Decimal128Array::from(vec![2, 15])
                    .with_precision_and_scale(10, 0)
                    .unwrap()
                    .with_precision_and_scale(10, 0)
                    .unwrap(),
            ),
        ]);
        // 1.50 vs 15 must NOT match: prove the comparison looks at values.
        assert!(compare_batches(std::slice::from_ref(&a), &[b], false).is_err());
        let c = batch(vec![
            Arc::new(Int64Array::from(vec![2, 1])),
            Arc::new(StringViewArray::from(vec!["y", "x"])),
            Arc::new(
                Decimal128Array::from(vec![20000, 15000])
                    .with_precision_and_scale(20, 4)
                    .unwrap(),
            ),
        ]);
        compare_batches(std::slice::from_ref(&a), std::slice::from_ref(&c), false).unwrap();
        // The same rows in another order differ when order matters.
        assert!(compare_batches(&[a], &[c], true).is_err());
    }

    #[test]
    fn decimals_are_exact_and_floats_tolerant() {
        let d = |v: i128, s: i8| {
            batch(vec![Arc::new(
                Decimal128Array::from(vec![v])
                    .with_precision_and_scale(38, s)
                    .unwrap(),
            )])
        };
        let f = |v: f64| batch(vec![Arc::new(Float64Array::from(vec![v]))]);
        assert!(compare_batches(&[d(100, 2)], &[d(101, 2)], true).is_err());
        // Different scales compare at the smaller one: 25.5220058 ≈ 25.522006.
        compare_batches(&[d(255220058, 7)], &[d(25522006, 6)], true).unwrap();
        assert!(compare_batches(&[d(255220048, 7)], &[d(25522006, 6)], true).is_err());
        compare_batches(&[f(1.0 / 3.0)], &[f(0.333_333_333_333_333_4)], true).unwrap();
        assert!(compare_batches(&[f(1.0)], &[f(1.000_001)], true).is_err());
        compare_batches(&[f(1.5)], &[d(150, 2)], true).unwrap();
        // A float engine's last digit: off by one unit passes only when asked for.
        assert!(compare_batches(&[d(25575155, 6)], &[d(25575154, 6)], true).is_err());
        compare_batches_with(
            &[d(25575155, 6)],
            &[d(25575154, 6)],
            true,
            Decimals::LastDigit,
        )
        .unwrap();
        assert!(
            compare_batches_with(
                &[d(25575156, 6)],
                &[d(25575154, 6)],
                true,
                Decimals::LastDigit
            )
            .is_err()
        );
        let i = |v: i32| batch(vec![Arc::new(Int32Array::from(vec![v]))]);
        compare_batches(&[i(7)], &[d(700, 2)], true).unwrap();
        assert!(compare_batches(&[i(7)], &[d(701, 2)], true).is_err());
    }

    #[test]
    fn row_counts_and_nulls_matter() {
        let a = batch(vec![Arc::new(Int32Array::from(vec![Some(1), None]))]);
        let b = batch(vec![Arc::new(Int32Array::from(vec![Some(1), Some(0)]))]);
        let c = batch(vec![Arc::new(Int32Array::from(vec![Some(1)]))]);
        assert!(compare_batches(std::slice::from_ref(&a), &[b], false).is_err());
        let e = compare_batches(&[a], &[c], false).unwrap_err();
        assert!(e.contains("expected 2 rows, got 1"), "{e}");
    }

    #[test]
    fn ordered_queries_are_recognized() {
        assert!(query_is_ordered("select a from t order by a"));
        assert!(!query_is_ordered(
            "select a from (select a from t order by a) limit 3"
        ));
        assert!(!query_is_ordered("select 'order by' from t -- order by\n"));
        assert!(query_is_ordered("SELECT x FROM t\nORDER\n BY 1 LIMIT 5"));
    }
}
