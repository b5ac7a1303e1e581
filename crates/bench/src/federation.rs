//! `flotilla bench federation`: TPC-H over one database source, four ways, side by side.
//!
//! For each query: (1) Flotilla pushing all it can (`flotilla.federation.pushdown = all`),
//! (2) the SQL of (1), run by the database itself without converting rows to Arrow (the floor
//! for a query pushed whole), (3) Flotilla pushing scans only (`none`), (4) Flotilla choosing
//! by cost (`cost`), with the better of (1) and (3) as the mark (4) is held to.
//! Each timing covers planning and reading every result row; rows transferred count the rows
//! that crossed from the database into Flotilla. The result rows of (1), (3) and (4) must agree.
//!
//! Sources: `sqlite` (the demo's file, generated on first use), `postgres` and `mysql` (a server
//! given by `--url`; TPC-H is loaded into schema/database `tpch_sf<scale>` with `psql` or the
//! `mariadb` client when it is not there yet). For the servers, a scan-throughput line follows:
//! `SELECT * FROM lineitem` into Arrow, beside the server's own fastest export.

use crate::load;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::execution::context::SessionContext;
use datafusion::physical_plan::{ExecutionPlan, collect};
use flotilla_common::{Error, Result};
use flotilla_connectors_mysql::{MysqlConfig, MysqlOptions, MysqlSource};
use flotilla_connectors_postgres::{PostgresConfig, PostgresOptions, PostgresSource};
use flotilla_connectors_sqlite::{SqliteConfig, SqliteSource};
use flotilla_federation::FederatedScanExec;
use flotilla_federation::config::Pushdown;
use flotilla_node::config::{Config, SessionDefaults, SourceConfig};
use flotilla_node::demo;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// One query's measurements.
struct Row {
    query: usize,
    pushed_whole: bool,
    flotilla: f64,
    native: Option<f64>,
    no_pushdown: f64,
    chosen: f64,
    chosen_whole: bool,
    rows_pushdown: usize,
    rows_no_pushdown: usize,
    rows_chosen: usize,
}

impl Row {
    fn best(&self) -> f64 {
        self.flotilla.min(self.no_pushdown)
    }
}

/// The TPC-H query `n` shipped in the repository.
pub(crate) fn query_text(n: usize) -> Result<String> {
    flotilla_tpch::query(n)
        .map(str::to_string)
        .ok_or_else(|| Error::invalid(format!("there is no TPC-H query {n} (1 to 22)")))
}

/// The database a benchmark runs against.
#[derive(Debug, Clone)]
pub enum BenchSource {
    Sqlite,
    Postgres { url: String },
    Mysql { url: String },
}

impl BenchSource {
    fn label(&self) -> &'static str {
        match self {
            BenchSource::Sqlite => "SQLite",
            BenchSource::Postgres { .. } => "PostgreSQL",
            BenchSource::Mysql { .. } => "MySQL/MariaDB",
        }
    }
}

/// The benchmark's source opened once more, to run SQL natively.
enum Native {
    Sqlite(SqliteSource),
    Postgres(PostgresSource),
    Mysql(Box<MysqlSource>),
}

impl Native {
    async fn run(&self, sql: &str) -> Result<u64> {
        match self {
            Native::Sqlite(s) => s.run_natively(sql),
            Native::Postgres(s) => s.run_natively(sql).await,
            Native::Mysql(s) => s.run_natively(sql).await,
        }
    }
}

/// `ctx` with `settings` (`KEY=VALUE`) set; `distributed.*` ones only on the distributed
/// side (a single node has no such options).
pub(crate) async fn with_settings(
    ctx: SessionContext,
    settings: &[String],
) -> Result<SessionContext> {
    let distributed = ctx
        .state()
        .config()
        .options()
        .extensions
        .get::<flotilla_distributed::DistributedOptions>()
        .is_some();
    for setting in settings {
        let (key, value) = setting
            .split_once('=')
            .ok_or_else(|| Error::invalid(format!("--set {setting}: expected KEY=VALUE")))?;
        if key.trim().starts_with("distributed.") && !distributed {
            continue;
        }
        let value = value.trim().replace('\'', "''");
        ctx.sql(&format!("SET {} = '{value}'", key.trim()))
            .await?
            .collect()
            .await?;
    }
    Ok(ctx)
}

/// A session over `source` as catalog `db` (default schema `schema`), pushing `pushdown`, with
/// `settings` set.
async fn context(
    source: &SourceConfig,
    schema: &str,
    pushdown: Pushdown,
    settings: &[String],
) -> Result<SessionContext> {
    let mut config = Config {
        session: SessionDefaults {
            default_catalog: Some("db".into()),
            default_schema: Some(schema.into()),
            ..SessionDefaults::default()
        },
        pushdown,
        ..Config::default()
    };
    config.sources.insert("db".into(), source.clone());
    with_settings(
        flotilla_node::context::build_context(&config).await?,
        settings,
    )
    .await
}

/// What one run measured: seconds, the executed plan, rows read from the database, and the
/// result's rows (formatted and sorted, to compare runs).
type Measured = (f64, Arc<dyn ExecutionPlan>, usize, Vec<Vec<String>>);

/// Runs `sql` `repeat` times; returns the best run.
async fn measure(ctx: &SessionContext, sql: &str, repeat: usize) -> Result<Measured> {
    let mut best = measure_once(ctx, sql).await?;
    for _ in 1..repeat {
        let run = measure_once(ctx, sql).await?;
        if run.0 < best.0 {
            best = run;
        }
    }
    Ok(best)
}

async fn measure_once(ctx: &SessionContext, sql: &str) -> Result<Measured> {
    let started = Instant::now();
    let plan = ctx.sql(sql).await?.create_physical_plan().await?;
    let batches = collect(Arc::clone(&plan), ctx.task_ctx()).await?;
    let seconds = started.elapsed().as_secs_f64();
    // Formatted after the clock stops; a scan's millions of rows are not compared.
    let result = if batches.iter().map(RecordBatch::num_rows).sum::<usize>() <= 100_000 {
        sorted_rows(&batches)?
    } else {
        vec![vec![format!(
            "{} rows",
            batches.iter().map(RecordBatch::num_rows).sum::<usize>()
        )]]
    };
    let mut scans = Vec::new();
    federated_scans(&plan, &mut scans);
    let rows = scans
        .iter()
        .filter_map(|s| s.metrics()?.output_rows())
        .sum();
    Ok((seconds, plan, rows, result))
}

/// The rows of `batches`, each as its cells' text, sorted (to compare results in any order).
pub(crate) fn sorted_rows(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|column| ArrayFormatter::try_new(column.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::internal(format!("formatting a result: {e}")))?;
        for row in 0..batch.num_rows() {
            rows.push(
                formatters
                    .iter()
                    .map(|f| f.value(row).to_string())
                    .collect(),
            );
        }
    }
    rows.sort();
    Ok(rows)
}

/// Whether two sorted results hold the same rows, numbers within a relative 1e-6 or one unit
/// of the last digit the less precise of the two prints (SQLite computes decimals in floating
/// point and rounds them to their scale; databases sum in other orders).
fn same_rows(a: &[Vec<String>], b: &[Vec<String>]) -> bool {
    let decimals = |x: &str| x.split_once('.').map_or(0, |(_, d)| d.len()) as i32;
    let cell = |x: &String, y: &String| {
        x == y
            || match (x.parse::<f64>(), y.parse::<f64>()) {
                (Ok(a), Ok(b)) => {
                    let unit = 1.5 * 10f64.powi(-decimals(x).min(decimals(y)));
                    (a - b).abs() <= (1e-6 * a.abs().max(b.abs())).max(unit)
                }
                _ => false,
            }
    };
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.len() == y.len() && x.iter().zip(y).all(|(x, y)| cell(x, y)))
}

fn federated_scans<'a>(plan: &'a Arc<dyn ExecutionPlan>, out: &mut Vec<&'a FederatedScanExec>) {
    let any: &dyn std::any::Any = plan.as_ref();
    if let Some(scan) = any.downcast_ref::<FederatedScanExec>() {
        out.push(scan);
    }
    for child in plan.children() {
        federated_scans(child, out);
    }
}

/// The SQL of the plan's only federated scan, when the query was pushed whole.
fn whole_query_sql(plan: &Arc<dyn ExecutionPlan>) -> Option<String> {
    let mut scans = Vec::new();
    federated_scans(plan, &mut scans);
    let mut nodes = 0;
    count_nodes(plan, &mut nodes);
    // The scan plus at most DataFusion's projection and cooperative wrappers.
    let wrappers_only = nodes <= scans.len() + 2;
    (scans.len() == 1 && wrappers_only).then(|| scans[0].sql().to_string())
}

fn count_nodes(plan: &Arc<dyn ExecutionPlan>, n: &mut usize) {
    let name = plan.name();
    if name != "CooperativeExec" && name != "ProjectionExec" {
        *n += 1;
    }
    for child in plan.children() {
        count_nodes(child, n);
    }
}

/// Runs the benchmark at `scale` against `source`, printing a table to `out`. Each measurement
/// is the best of `repeat` runs (the first also warms caches); generated data goes to `cache`.
pub async fn federation(
    source: &BenchSource,
    cache: &Path,
    scale: f64,
    queries: &[usize],
    repeat: usize,
    settings: &[String],
    out: &mut dyn Write,
) -> Result<()> {
    let repeat = repeat.max(1);
    let schema = federation_schema(scale);
    let (config, native, schema) = match source {
        BenchSource::Sqlite => {
            let config = demo::prepare(cache, scale)?;
            let sqlite = config
                .parent()
                .unwrap_or(Path::new("."))
                .join("sqlite")
                .join(flotilla_tpch::SQLITE_FILE_NAME);
            let native = Native::Sqlite(SqliteSource::open("db", &sqlite)?);
            let config = SourceConfig::Sqlite(SqliteConfig::new(sqlite));
            (config, native, "main".to_string())
        }
        BenchSource::Postgres { url } => {
            let native = PostgresSource::new("db", url, PostgresOptions::default())?;
            load::ensure_postgres(&native, url, cache, scale, &schema).await?;
            let config = SourceConfig::Postgres(PostgresConfig::new(url.clone()));
            (config, Native::Postgres(native), schema)
        }
        BenchSource::Mysql { url } => {
            let native = MysqlSource::new("db", url, None, MysqlOptions::default())?;
            load::ensure_mysql(&native, cache, scale, &schema).await?;
            // The source reads the benchmark's database.
            let url = load::with_database(url, &schema);
            let native = MysqlSource::new("db", &url, None, MysqlOptions::default())?;
            let config = SourceConfig::Mysql(MysqlConfig::new(url));
            (config, Native::Mysql(Box::new(native)), schema)
        }
    };
    let with_pushdown = context(&config, &schema, Pushdown::All, settings).await?;
    let without = context(&config, &schema, Pushdown::None, settings).await?;
    let by_cost = context(&config, &schema, Pushdown::Cost, settings).await?;
    let label = source.label();
    let mut rows = Vec::new();
    for &n in queries {
        let sql = query_text(n)?;
        eprint!("q{n}: pushdown… ");
        let (flotilla, plan, rows_pushdown, result) = measure(&with_pushdown, &sql, repeat).await?;
        let native_seconds = match whole_query_sql(&plan) {
            Some(pushed) => {
                eprint!("{label}… ");
                let mut best = f64::INFINITY;
                for _ in 0..repeat {
                    let started = Instant::now();
                    native.run(&pushed).await?;
                    best = best.min(started.elapsed().as_secs_f64());
                }
                Some(best)
            }
            None => None,
        };
        eprint!("no pushdown… ");
        let (no_pushdown, _, rows_no_pushdown, pulled) = measure(&without, &sql, repeat).await?;
        eprint!("by cost… ");
        let (chosen, chosen_plan, rows_chosen, by_cost_result) =
            measure(&by_cost, &sql, repeat).await?;
        eprintln!("done");
        for (mode, other) in [("none", &pulled), ("cost", &by_cost_result)] {
            if !same_rows(&result, other) {
                let differs = other
                    .iter()
                    .zip(&result)
                    .find(|(a, b)| !same_rows(&[a.to_vec()], &[b.to_vec()]))
                    .map(|(a, b)| format!("{a:?} vs {b:?}"))
                    .unwrap_or_default();
                return Err(Error::internal(format!(
                    "q{n}: pushdown = {mode} returned other rows than pushdown = all \
                     ({} rows vs {}; first difference: {differs})",
                    other.len(),
                    result.len()
                )));
            }
        }
        rows.push(Row {
            query: n,
            pushed_whole: native_seconds.is_some(),
            flotilla,
            native: native_seconds,
            no_pushdown,
            chosen,
            chosen_whole: whole_query_sql(&chosen_plan).is_some(),
            rows_pushdown,
            rows_no_pushdown,
            rows_chosen,
        });
    }
    print_table(label, scale, repeat, &rows, out)?;
    match (&native, source) {
        (Native::Postgres(pg), _) => {
            scan_throughput_postgres(&with_pushdown, pg, &schema, out).await
        }
        (Native::Mysql(my), _) => scan_throughput_mysql(&with_pushdown, my, &schema, out).await,
        _ => Ok(()),
    }
}

/// Rows per second of `SELECT * FROM lineitem` into Arrow through Flotilla.
async fn flotilla_scan(ctx: &SessionContext) -> Result<(usize, f64)> {
    eprint!("scan: Flotilla… ");
    let (seconds, _, rows, _) = measure_once(ctx, "SELECT * FROM lineitem").await?;
    Ok((rows, seconds))
}

async fn scan_throughput_postgres(
    ctx: &SessionContext,
    pg: &PostgresSource,
    schema: &str,
    out: &mut dyn Write,
) -> Result<()> {
    let (rows, flotilla) = flotilla_scan(ctx).await?;
    eprint!("COPY binary… ");
    let started = Instant::now();
    let bytes = pg
        .copy_out_bytes(&format!("SELECT * FROM {schema}.lineitem"))
        .await?;
    let copy = started.elapsed().as_secs_f64();
    eprintln!("done");
    writeln!(
        out,
        "scan of lineitem ({rows} rows): Flotilla into Arrow {:.0} rows/s ({flotilla:.2} s); \
         COPY … TO STDOUT (FORMAT binary) {:.0} rows/s ({copy:.2} s, {} MB); ratio {:.2}",
        rows as f64 / flotilla,
        rows as f64 / copy,
        bytes / 1_000_000,
        flotilla / copy
    )?;
    Ok(())
}

async fn scan_throughput_mysql(
    ctx: &SessionContext,
    my: &MysqlSource,
    schema: &str,
    out: &mut dyn Write,
) -> Result<()> {
    let (rows, flotilla) = flotilla_scan(ctx).await?;
    eprint!("mariadb --quick… ");
    let started = Instant::now();
    load::mysql_client(my)?
        .args(["--quick", "-N", "-e"])
        .arg(format!("SELECT * FROM {schema}.lineitem"))
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| Error::unavailable(format!("cannot run the mariadb client: {e}")))?;
    let client = started.elapsed().as_secs_f64();
    eprintln!("done");
    writeln!(
        out,
        "scan of lineitem ({rows} rows): Flotilla into Arrow {:.0} rows/s ({flotilla:.2} s); \
         mariadb --quick > /dev/null {:.0} rows/s ({client:.2} s); ratio {:.2}",
        rows as f64 / flotilla,
        rows as f64 / client,
        flotilla / client
    )?;
    Ok(())
}

fn print_table(
    label: &str,
    scale: f64,
    repeat: usize,
    rows: &[Row],
    out: &mut dyn Write,
) -> Result<()> {
    writeln!(
        out,
        "TPC-H SF {scale} over {label}, best of {repeat}: (1) pushdown = all, (2) {label} \
         running the SQL of (1), (3) pushdown = none, (4) pushdown = cost; \
         best = the faster of (1) and (3)"
    )?;
    writeln!(
        out,
        "{:>5} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9} {:>7} {:>9} {:>9} {:>9}",
        "query",
        "(1) s",
        "(2) s",
        "(3) s",
        "(4) s",
        "(4)/best",
        "whole",
        "(1)/(3)",
        "rows (1)",
        "rows (3)",
        "rows (4)"
    )?;
    for r in rows {
        let native = r.native.map_or("-".to_string(), |s| format!("{s:.3}"));
        let whole = match (r.pushed_whole, r.chosen_whole) {
            (true, true) => "(1)(4)",
            (true, false) => "(1)",
            (false, true) => "(4)",
            (false, false) => "-",
        };
        writeln!(
            out,
            "{:>5} {:>9.3} {:>9} {:>9.3} {:>9.3} {:>8.2} {:>9} {:>7.2} {:>9} {:>9} {:>9}",
            format!("q{}", r.query),
            r.flotilla,
            native,
            r.no_pushdown,
            r.chosen,
            r.chosen / r.best(),
            whole,
            r.flotilla / r.no_pushdown,
            r.rows_pushdown,
            r.rows_no_pushdown,
            r.rows_chosen
        )?;
    }
    let total = |f: fn(&Row) -> f64| rows.iter().map(f).sum::<f64>();
    let worst = rows
        .iter()
        .map(|r| (r.chosen / r.best(), r.query))
        .fold((0.0, 0), |a, b| if b.0 > a.0 { b } else { a });
    writeln!(
        out,
        "total: pushed {:.1} s, pulled {:.1} s, chosen {:.1} s, best-of {:.1} s, chosen/best {:.2} \
         (worst query q{}: {:.2}); rows from {label}: pushed {}, pulled {}, chosen {}",
        total(|r| r.flotilla),
        total(|r| r.no_pushdown),
        total(|r| r.chosen),
        total(Row::best),
        total(|r| r.chosen) / total(Row::best),
        worst.1,
        worst.0,
        rows.iter().map(|r| r.rows_pushdown).sum::<usize>(),
        rows.iter().map(|r| r.rows_no_pushdown).sum::<usize>(),
        rows.iter().map(|r| r.rows_chosen).sum::<usize>()
    )?;
    Ok(())
}

/// The schema (PostgreSQL) or database (MySQL) TPC-H at `scale` is loaded into:
/// `tpch_sf1`, `tpch_sf0_1`.
pub(crate) fn federation_schema(scale: f64) -> String {
    format!("tpch_sf{}", scale.to_string().replace('.', "_"))
}
