//! Column statistics from `pg_stats`, as the federation engine keeps them.
//!
//! `pg_stats` holds what the last `ANALYZE` computed from a sample of the table: `null_frac`,
//! `n_distinct` (a count when positive, minus a share of the rows when negative, unknown at 0),
//! `avg_width`, the most common values and the histogram bounds of the rest. The smallest and
//! largest of those two lists are the sample's bounds, taken as the column's.

use datafusion::arrow::datatypes::Field;
use flotilla_federation::ColumnEstimate;
use flotilla_federation::stats::{bound_from_text, extremes};

/// One row of `pg_stats` for a column.
pub(crate) struct PgStats {
    pub null_frac: f64,
    pub n_distinct: f64,
    pub avg_width: i32,
    /// `most_common_vals` and `histogram_bounds` as PostgreSQL writes arrays (`{1,2,"a b"}`).
    pub common_values: Option<String>,
    pub histogram_bounds: Option<String>,
}

impl PgStats {
    /// The estimate for `field` of a table of `rows` rows.
    pub fn estimate(&self, field: &Field, rows: f64) -> ColumnEstimate {
        let distinct = if self.n_distinct > 0.0 {
            Some(self.n_distinct)
        } else if self.n_distinct < 0.0 {
            Some(-self.n_distinct * rows)
        } else {
            None
        };
        let values = [&self.common_values, &self.histogram_bounds]
            .into_iter()
            .flatten()
            .flat_map(|array| array_elements(array))
            .flatten()
            .filter_map(|text| bound_from_text(&text, field.data_type()));
        let (min, max) = extremes(values);
        ColumnEstimate {
            null_fraction: Some(self.null_frac.clamp(0.0, 1.0)),
            distinct,
            min,
            max,
            width: Some(f64::from(self.avg_width.max(0))),
        }
    }
}

/// The elements of a one-dimensional array in PostgreSQL's text form: `{a,"b c",NULL}` →
/// `a`, `b c`, NULL. Quoted elements may hold commas, braces and backslash escapes. Text that is
/// not such an array gives no elements.
pub(crate) fn array_elements(text: &str) -> Vec<Option<String>> {
    let Some(inner) = text
        .trim()
        .strip_prefix('{')
        .and_then(|rest| rest.strip_suffix('}'))
    else {
        return Vec::new();
    };
    let mut elements = Vec::new();
    let mut chars = inner.chars().peekable();
    while chars.peek().is_some() {
        let mut element = String::new();
        let mut quoted = false;
        if chars.peek() == Some(&'"') {
            quoted = true;
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => element.extend(chars.next()),
                    '"' => break,
                    c => element.push(c),
                }
            }
        }
        for c in chars.by_ref() {
            if c == ',' {
                break;
            }
            element.push(c);
        }
        let null = !quoted && element.eq_ignore_ascii_case("NULL");
        elements.push((!null).then_some(element));
    }
    elements
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::DataType;
    use datafusion::common::ScalarValue;

    #[test]
    fn array_text_splits_into_elements() {
        assert_eq!(
            array_elements(r#"{1,"a, b","q\"x",NULL,"NULL"}"#),
            vec![
                Some("1".to_string()),
                Some("a, b".to_string()),
                Some("q\"x".to_string()),
                None,
                Some("NULL".to_string()),
            ]
        );
        assert!(array_elements("{}").is_empty());
        assert!(array_elements("not an array").is_empty());
    }

    #[test]
    fn an_estimate_takes_bounds_from_both_lists_and_distinct_as_count_or_share() {
        let stats = PgStats {
            null_frac: 0.25,
            n_distinct: -0.5,
            avg_width: 4,
            common_values: Some("{7,3}".into()),
            histogram_bounds: Some("{1,4,9}".into()),
        };
        let field = Field::new("k", DataType::Int32, true);
        let estimate = stats.estimate(&field, 1000.0);
        assert_eq!(estimate.distinct, Some(500.0));
        assert_eq!(estimate.null_fraction, Some(0.25));
        assert_eq!(estimate.min, Some(ScalarValue::Int32(Some(1))));
        assert_eq!(estimate.max, Some(ScalarValue::Int32(Some(9))));
        assert_eq!(estimate.width, Some(4.0));
        let text = Field::new("t", DataType::Utf8, true);
        let estimate = PgStats {
            n_distinct: 12.0,
            ..stats
        }
        .estimate(&text, 1000.0);
        assert_eq!(estimate.distinct, Some(12.0));
        assert_eq!((estimate.min, estimate.max), (None, None));
    }
}
