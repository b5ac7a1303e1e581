//! TPC-H references and plan checks shared by the federation tests of every connector.

use crate::reaper;
use datafusion::physical_plan::{ExecutionPlan, displayable};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use flotilla_tpch::{Format, GenerateOptions, Table};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The TPC-H query `n` (1–22), from `tests/tpch/queries`.
pub fn tpch_query(n: usize) -> String {
    match flotilla_tpch::query(n) {
        Some(sql) => sql.to_string(),
        None => panic!("TPC-H has queries 1 to 22, not {n}"),
    }
}

/// A directory with `<table>.parquet` for TPC-H at `scale`, generated once per test binary.
pub fn tpch_parquet_dir(scale: f64) -> PathBuf {
    static DIRS: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    let mut dirs = DIRS.lock().unwrap_or_else(|e| e.into_inner());
    let key = scale.to_string();
    if let Some((_, dir)) = dirs.iter().find(|(k, _)| *k == key) {
        return dir.clone();
    }
    let dir = reaper::temp_dir("flotilla-tpch-parquet-").expect("a temp dir");
    let options = GenerateOptions {
        scale,
        format: Format::Parquet,
        out: dir.clone(),
        tables: vec![],
    };
    flotilla_tpch::generate(&options, &|_, _| {}).expect("TPC-H generation");
    dirs.push((key, dir.clone()));
    dir
}

/// DataFusion alone over TPC-H at `scale` in Parquet: the reference answers.
pub async fn tpch_parquet_context(scale: f64) -> SessionContext {
    let ctx = SessionContext::new();
    register_tpch_parquet(&ctx, scale, &Table::ALL.map(|t| t.name())).await;
    ctx
}

/// Registers the TPC-H tables `names` at `scale` from Parquet in `ctx`'s default schema.
pub async fn register_tpch_parquet(ctx: &SessionContext, scale: f64, names: &[&str]) {
    let dir = tpch_parquet_dir(scale);
    for name in names {
        let path = dir.join(format!("{name}.parquet"));
        ctx.register_parquet(*name, path.to_str().unwrap(), ParquetReadOptions::default())
            .await
            .unwrap();
    }
}

/// Registers `catalog.schema.<table>` under the bare table name for each of `names`.
pub async fn register_tpch_from(ctx: &SessionContext, catalog_schema: &str, names: &[&str]) {
    for name in names {
        let provider = ctx
            .table_provider(format!("{catalog_schema}.{name}"))
            .await
            .unwrap_or_else(|e| panic!("{catalog_schema}.{name}: {e}"));
        ctx.register_table(*name, provider).unwrap();
    }
}

/// The physical plan as indented text.
pub fn plan_text(plan: &Arc<dyn ExecutionPlan>) -> String {
    displayable(plan.as_ref()).indent(false).to_string()
}

/// Whether a plan is one federated scan under at most projections (with the round-robin
/// repartition DataFusion puts below a projection to run it on several cores).
pub fn pushed_whole(plan: &str) -> bool {
    let lines: Vec<&str> = plan.lines().map(str::trim).collect();
    lines
        .iter()
        .filter(|l| l.starts_with("FederatedScanExec"))
        .count()
        == 1
        && lines.iter().all(|l| {
            l.starts_with("FederatedScanExec")
                || l.starts_with("ProjectionExec")
                || l.starts_with("CooperativeExec")
                || l.starts_with("RepartitionExec: partitioning=RoundRobinBatch")
        })
}

/// The SQL of each federated scan in a plan's text (its `sql=` field).
pub fn scan_sql(plan: &str) -> Vec<String> {
    const NEXT: [&str; 4] = [", partitions=[", ", join_keys=[", ", sent=", ", cost="];
    plan.lines()
        .filter_map(|line| {
            line.split_once("FederatedScanExec: source=")?
                .1
                .split_once(", sql=")
        })
        .map(|(_, rest)| {
            let end = NEXT.iter().filter_map(|m| rest.find(m)).min();
            rest[..end.unwrap_or(rest.len())].to_string()
        })
        .collect()
}

/// `sql` without the table aliases the SQL writer qualifies columns with (`t3."a"` → `"a"`),
/// for tests that look for a condition whatever alias its table got.
pub fn without_aliases(sql: &str) -> String {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    while i < sql.len() {
        let starts_word = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if starts_word && bytes[i] == b't' {
            let digits = bytes[i + 1..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            if digits > 0 && bytes.get(i + 1 + digits) == Some(&b'.') {
                i += digits + 2;
                continue;
            }
        }
        let c = sql[i..].chars().next().unwrap_or(' ');
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// How many derived tables (`FROM (SELECT …)`, `JOIN (SELECT …)`) a statement has.
pub fn derived_tables(sql: &str) -> usize {
    let words: Vec<String> = sql
        .to_ascii_uppercase()
        .replace('(', " ( ")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    words
        .windows(3)
        .filter(|w| (w[0] == "FROM" || w[0] == "JOIN") && w[1] == "(" && w[2] == "SELECT")
        .count()
}

/// How many subqueries (`(SELECT …)`, including a `WITH` query's) a statement has.
pub fn subqueries(sql: &str) -> usize {
    let words: Vec<String> = sql
        .to_ascii_uppercase()
        .replace('(', " ( ")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    words
        .windows(2)
        .filter(|w| w[0] == "(" && w[1] == "SELECT")
        .count()
}

/// For TPC-H query `n` pushed whole (`plan` its text): what is wrong when the SQL sent has
/// more derived tables than the query has subqueries — the SQL writer nests a SELECT only
/// where SQL's clause order needs it.
pub fn too_many_derived_tables(n: usize, plan: &str) -> Option<String> {
    let allowed = subqueries(&tpch_query(n));
    let sql = scan_sql(plan).join("\n");
    let derived = derived_tables(&sql);
    (derived > allowed)
        .then(|| format!("q{n}: {derived} derived tables for {allowed} subqueries:\n{sql}"))
}

/// Runs `sql`, returning its batches and physical plan; panics with the query on error.
pub async fn run(
    ctx: &SessionContext,
    sql: &str,
) -> (
    Vec<arrow::record_batch::RecordBatch>,
    Arc<dyn ExecutionPlan>,
) {
    let frame = ctx.sql(sql).await.unwrap_or_else(|e| panic!("{e}\n{sql}"));
    let plan = frame.clone().create_physical_plan().await.unwrap();
    let batches = frame
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{sql}"));
    (batches, plan)
}

/// Runs `sql` in `ctx` and in `reference` and asserts the same rows (in order where the query
/// orders them; a decimal's last digit may differ: databases divide decimals with more digits
/// than DataFusion keeps, then round). Returns the plan `ctx` ran, as text.
pub async fn answers_like(reference: &SessionContext, ctx: &SessionContext, sql: &str) -> String {
    let (expected, _) = run(reference, sql).await;
    let (actual, plan) = run(ctx, sql).await;
    crate::assert_same_rows_with(
        &expected,
        &actual,
        crate::query_is_ordered(sql),
        crate::Decimals::LastDigit,
    );
    plan_text(&plan)
}

/// What one federated scan did while a query ran.
#[derive(Debug, Clone)]
pub struct ScanReport {
    /// The statement it sent: with join keys when it added them, else its own SQL.
    pub sent: String,
    /// The rows it received.
    pub rows: usize,
}

/// Runs `sql`; returns its rows, the plan as text before running, and a report of each federated
/// scan (depth first) after running.
pub async fn run_with_scans(
    ctx: &SessionContext,
    sql: &str,
) -> (
    Vec<arrow::record_batch::RecordBatch>,
    String,
    Vec<ScanReport>,
) {
    let plan = ctx
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{sql}"))
        .create_physical_plan()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{sql}"));
    let before = plan_text(&plan);
    let rows = datafusion::physical_plan::collect(Arc::clone(&plan), ctx.task_ctx())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{sql}"));
    let mut reports = Vec::new();
    collect_scans(&plan, &mut reports);
    (rows, before, reports)
}

fn collect_scans(plan: &Arc<dyn ExecutionPlan>, reports: &mut Vec<ScanReport>) {
    if plan.name() == "FederatedScanExec" {
        let line = displayable(plan.as_ref()).one_line().to_string();
        let sent = match line.split_once(", sent=") {
            Some((_, sent)) => sent.trim_end().to_string(),
            None => line
                .split_once(", sql=")
                .map(|(_, sql)| sql.trim_end().to_string())
                .unwrap_or(line),
        };
        let rows = plan
            .metrics()
            .and_then(|m| m.output_rows())
            .unwrap_or_default();
        reports.push(ScanReport { sent, rows });
    }
    for child in plan.children() {
        collect_scans(child, reports);
    }
}
