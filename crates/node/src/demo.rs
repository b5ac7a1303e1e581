//! `flotilla demo`: the embedded default. No server to install.
//!
//! On first run it generates TPC-H data into a cache directory twice, as Parquet files (the
//! "lake") and as one SQLite database (the "shop"), writes a `flotilla.toml` describing both,
//! then runs queries that join SQLite tables with Parquet tables and prints each result with
//! the plan that shows what SQLite was sent. Later runs reuse the cache.
//!
//! ```text
//!  <cache>/tpch-sf<scale>/
//!      parquet/<table>.parquet     source "lake" (schema public)
//!      sqlite/tpch.sqlite          source "shop" (schema main)
//!      flotilla.toml               both sources; try `flotilla sql --config <this file>`
//! ```

use crate::config::Config;
use crate::datagen::generate_with_progress;
use crate::output::{OutputFormat, Printer};
use crate::run::{collect, parse_statements, run_statement};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::execution::context::SessionContext;
use flotilla_common::{Error, Result};
use flotilla_tpch::{Format, GenerateOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One demo query: a title, what it shows, and its SQL.
pub struct DemoQuery {
    pub title: &'static str,
    pub sql: &'static str,
}

/// The queries the demo runs. Each joins tables of the SQLite source with the Parquet source.
pub const QUERIES: &[DemoQuery] = &[
    DemoQuery {
        title: "Top customers of 1995 by revenue: customers, orders and nations from SQLite, line items from Parquet",
        sql: "SELECT c.c_name, n.n_name AS nation, count(DISTINCT o.o_orderkey) AS orders,
       sum(l.l_extendedprice * (1 - l.l_discount)) AS revenue
FROM shop.main.customer c
JOIN shop.main.orders o ON o.o_custkey = c.c_custkey
JOIN shop.main.nation n ON n.n_nationkey = c.c_nationkey
JOIN lake.public.lineitem l ON l.l_orderkey = o.o_orderkey
WHERE o.o_orderdate >= DATE '1995-01-01' AND o.o_orderdate < DATE '1996-01-01'
GROUP BY c.c_name, n.n_name
ORDER BY revenue DESC
LIMIT 10",
    },
    DemoQuery {
        title: "TPC-H Q3 (shipping priority) across both: the segment and date filters reach SQLite",
        sql: "SELECT l.l_orderkey, sum(l.l_extendedprice * (1 - l.l_discount)) AS revenue,
       o.o_orderdate, o.o_shippriority
FROM shop.main.customer c
JOIN shop.main.orders o ON c.c_custkey = o.o_custkey
JOIN lake.public.lineitem l ON l.l_orderkey = o.o_orderkey
WHERE c.c_mktsegment = 'BUILDING'
  AND o.o_orderdate < DATE '1995-03-15'
  AND l.l_shipdate > DATE '1995-03-15'
GROUP BY l.l_orderkey, o.o_orderdate, o.o_shippriority
ORDER BY revenue DESC, o.o_orderdate
LIMIT 10",
    },
    DemoQuery {
        title: "European order volume per year: orders from Parquet, geography from SQLite",
        sql: "SELECT extract(year FROM o.o_orderdate) AS year, count(*) AS orders,
       sum(o.o_totalprice) AS total_price
FROM lake.public.orders o
JOIN shop.main.customer c ON c.c_custkey = o.o_custkey
JOIN shop.main.nation n ON n.n_nationkey = c.c_nationkey
JOIN shop.main.region r ON r.r_regionkey = n.n_regionkey
WHERE r.r_name = 'EUROPE'
GROUP BY 1
ORDER BY 1",
    },
];

/// The default cache directory: `$FLOTILLA_CACHE_DIR`, else `$XDG_CACHE_HOME/flotilla`, else
/// `~/.cache/flotilla`, else `./.flotilla-cache`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FLOTILLA_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("flotilla");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache").join("flotilla"),
        None => PathBuf::from(".flotilla-cache"),
    }
}

/// Makes sure the demo data at `scale` exists under `cache`; returns the path of its
/// `flotilla.toml`. Generates it when missing (into a temporary directory renamed at the end,
/// so an interrupted run never leaves a half-written cache).
pub fn prepare(cache: &Path, scale: f64) -> Result<PathBuf> {
    let dir = cache.join(format!("tpch-sf{scale}"));
    let config = dir.join("flotilla.toml");
    if config.is_file() {
        return Ok(config);
    }
    eprintln!(
        "First run: generating TPC-H SF {scale} into {} (once).",
        dir.display()
    );
    let partial = cache.join(format!("tpch-sf{scale}.partial"));
    if partial.exists() {
        std::fs::remove_dir_all(&partial)?;
    }
    for (format, sub, label) in [
        (Format::Parquet, "parquet", "parquet"),
        (Format::Sqlite, "sqlite", "sqlite"),
    ] {
        let options = GenerateOptions {
            scale,
            format,
            out: partial.join(sub),
            tables: vec![],
        };
        generate_with_progress(&options, label)?;
    }
    std::fs::write(
        partial.join("flotilla.toml"),
        format!(
            "# Written by `flotilla demo`: TPC-H SF {scale} twice, as SQLite and as Parquet.\n\
             # Try: flotilla sql --config {}\n\n\
             [sources.shop]\nkind = \"sqlite\"\npath = \"sqlite/{}\"\n\n\
             [sources.lake]\nkind = \"parquet\"\npath = \"parquet\"\n",
            config.display(),
            flotilla_tpch::SQLITE_FILE_NAME
        ),
    )?;
    std::fs::rename(&partial, &dir)?;
    Ok(config)
}

/// Runs the demo: prepares the data, then runs and explains every query in [`QUERIES`].
pub async fn run(cache: &Path, scale: f64, out: &mut dyn Write) -> Result<()> {
    let started = Instant::now();
    let config_path = prepare(cache, scale)?;
    let config = Config::load(&config_path)?;
    let ctx = crate::context::build_context(&config).await?;
    eprintln!(
        "Sources ready in {:.2}s: shop (SQLite), lake (Parquet).",
        started.elapsed().as_secs_f64()
    );
    for (i, query) in QUERIES.iter().enumerate() {
        writeln!(out, "\n── {}. {} ──\n\n{}\n", i + 1, query.title, query.sql)?;
        let started = Instant::now();
        let mut printer = Printer::new(OutputFormat::Table, out);
        for statement in parse_statements(&ctx, query.sql)? {
            run_statement(&ctx, statement, &mut printer).await?;
        }
        writeln!(
            out,
            "({:.3}s)\n\nPlan — what SQLite was sent is in each FederatedScanExec line:\n",
            started.elapsed().as_secs_f64()
        )?;
        writeln!(out, "{}", physical_plan(&ctx, query.sql).await?)?;
    }
    writeln!(
        out,
        "\nExplore the same data yourself:\n  flotilla sql --config {}\n",
        config_path.display()
    )?;
    Ok(())
}

/// The physical plan of `sql`, as `EXPLAIN` prints it.
pub async fn physical_plan(ctx: &SessionContext, sql: &str) -> Result<String> {
    let batches = collect(ctx, &format!("EXPLAIN {sql}")).await?;
    for batch in &batches {
        let kinds = batch.column(0).as_string_opt::<i32>();
        let plans = batch.column(1).as_string_opt::<i32>();
        if let (Some(kinds), Some(plans)) = (kinds, plans) {
            for row in 0..batch.num_rows() {
                if kinds.value(row) == "physical_plan" && !plans.is_null(row) {
                    return Ok(plans.value(row).to_string());
                }
            }
        }
    }
    Err(Error::internal("EXPLAIN returned no physical plan"))
}
