//! `EXPLAIN` ends with the statements each database is sent, laid out as a person would write
//! them. The plan shows each on one line, after its `FederatedScanExec`, which is what tools and
//! tests read; this is for reading.

use crate::exec::FederatedScan;
use datafusion::common::display::{PlanType, StringifiedPlan};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::explain::ExplainExec;
use sqlformat::{FormatOptions, Indent, QueryParams};
use std::sync::Arc;

/// `explain` (the physical plan of `plan`, an `EXPLAIN` after the cut) with the statements of
/// `plan`'s federated scans appended to its physical plan. Anything else (`EXPLAIN ANALYZE`, a
/// plan without federated scans) is returned as it is.
pub(crate) fn with_statements(
    explain: Arc<dyn ExecutionPlan>,
    plan: &LogicalPlan,
) -> Arc<dyn ExecutionPlan> {
    let Some(exec) = explain.downcast_ref::<ExplainExec>() else {
        return explain;
    };
    let sent = statements(plan);
    if sent.is_empty() {
        return explain;
    }
    let plans = exec
        .stringified_plans()
        .iter()
        .map(|shown| match shown.plan_type {
            PlanType::FinalPhysicalPlan => StringifiedPlan::new(
                shown.plan_type.clone(),
                format!("{}\n{}", shown.plan.trim_end(), listing(&sent).trim_end()),
            ),
            _ => shown.clone(),
        })
        .collect();
    Arc::new(ExplainExec::new(exec.schema(), plans, exec.verbose()))
}

/// Each federated scan's source and SQL, in plan order, each statement once.
fn statements(plan: &LogicalPlan) -> Vec<(String, String)> {
    let mut sent: Vec<(String, String)> = Vec::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::Extension(extension) = node
            && let Some(scan) = extension.node.as_any().downcast_ref::<FederatedScan>()
        {
            let statement = (scan.source.name().to_string(), scan.sql.clone());
            if !sent.contains(&statement) {
                sent.push(statement);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    sent
}

/// The statements as `EXPLAIN` lists them: a heading, then each under a comment naming its
/// source.
fn listing(sent: &[(String, String)]) -> String {
    let mut text = String::from(
        "\nStatements sent (a scan read in key ranges sends one per range, its range added to \
         WHERE):\n",
    );
    for (i, (source, sql)) in sent.iter().enumerate() {
        text.push_str(&format!("\n-- {} of {}, to {source}\n", i + 1, sent.len()));
        text.push_str(&laid_out(sql));
        text.push('\n');
    }
    text
}

/// `sql` with a line per clause and nested queries indented. Only whitespace changes: string
/// literals are set aside while the formatter runs (it reads a backslash as an escape, which
/// none of the dialects written here does: `ESCAPE '\'` would come back as `' \ '`).
fn laid_out(sql: &str) -> String {
    let (masked, literals) = set_aside_literals(sql);
    restore_literals(&format(&masked), &literals)
}

/// `sql` with each string literal replaced by `''` (in order), and the literals.
fn set_aside_literals(sql: &str) -> (String, Vec<String>) {
    let mut masked = String::with_capacity(sql.len());
    let mut literals = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let mut literal = String::from(c);
                while let Some(c) = chars.next() {
                    literal.push(c);
                    if c == '\'' {
                        // `''` inside a literal is a quote.
                        match chars.peek() {
                            Some('\'') => literal.extend(chars.next()),
                            _ => break,
                        }
                    }
                }
                literals.push(literal);
                masked.push_str("''");
            }
            '"' | '`' => copy_quoted_name(c, &mut chars, &mut masked),
            _ => masked.push(c),
        }
    }
    (masked, literals)
}

/// A quoted name opened by `quote`, copied to `out` as it is up to its closing quote (a quote
/// in it is doubled: the next call copies the rest).
fn copy_quoted_name(quote: char, chars: &mut impl Iterator<Item = char>, out: &mut String) {
    out.push(quote);
    for c in chars {
        out.push(c);
        if c == quote {
            break;
        }
    }
}

/// `formatted` with its `''`s (outside quoted names) replaced by `literals`, in order.
fn restore_literals(formatted: &str, literals: &[String]) -> String {
    let mut out = String::with_capacity(formatted.len());
    let mut literals = literals.iter();
    let mut chars = formatted.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if chars.peek() == Some(&'\'') => {
                chars.next();
                out.push_str(literals.next().map_or("''", String::as_str));
            }
            '"' | '`' => copy_quoted_name(c, &mut chars, &mut out),
            _ => out.push(c),
        }
    }
    out
}

/// The formatter's layout of `sql`.
fn format(sql: &str) -> String {
    let options = FormatOptions {
        indent: Indent::Spaces(2),
        // Short lists stay on one line.
        max_inline_arguments: Some(80),
        max_inline_top_level: Some(80),
        max_inline_block: 80,
        joins_as_top_level: true,
        ..FormatOptions::default()
    };
    sqlformat::format(sql, &QueryParams::None, &options)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What MariaDB is sent for a join and a grouping: a line per clause, the text otherwise
    /// the same (quotes, literals, the `ESCAPE`).
    #[test]
    fn a_statement_is_laid_out_a_clause_a_line_changing_only_whitespace() {
        let sql = "SELECT t0.`n_name`, sum(t1.`o_totalprice`) AS `total` FROM `tpch`.`nation` AS t0 \
                   INNER JOIN `tpch`.`customer` AS t2 ON (t0.`n_nationkey` = t2.`c_nationkey`) \
                   INNER JOIN `tpch`.`orders` AS t1 ON (t2.`c_custkey` = t1.`o_custkey`) \
                   WHERE (t1.`o_comment` NOT LIKE '%special  requests%' ESCAPE '\\') \
                   AND t0.`n_nationkey` IN (SELECT t3.`r_regionkey` FROM `tpch`.`region` AS t3) \
                   AND t0.`n_comment` <> 'it''s' AND t0.`it's` > 0 \
                   GROUP BY t0.`n_name` ORDER BY `total` DESC";
        let out = laid_out(sql);
        println!("{out}");
        let lines: Vec<&str> = out.lines().collect();
        for clause in ["FROM", "INNER JOIN", "WHERE", "GROUP BY", "ORDER BY"] {
            assert!(
                lines.iter().any(|l| l.trim_start().starts_with(clause)),
                "{clause}:\n{out}"
            );
        }
        // The literals are as sent (two spaces, a backslash, a doubled quote); nothing but
        // whitespace differs.
        assert!(out.contains("'%special  requests%' ESCAPE '\\'"), "{out}");
        assert!(out.contains("'it''s'"), "{out}");
        let squeezed = |s: &str| s.split_whitespace().collect::<String>();
        assert_eq!(squeezed(&out), squeezed(sql));
    }
}
