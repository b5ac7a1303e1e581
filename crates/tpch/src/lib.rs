//! TPC-H data for Flotilla: the 8 tables generated with the `tpchgen` crates and written as
//! Parquet, CSV or one SQLite database.
//!
//! Used by `flotilla datagen`, `flotilla demo` and the test kit (which loads the same rows into
//! PostgreSQL and MariaDB), so that every engine in a comparison sees identical data.
//!
//! ```text
//!  tpchgen generators ──▶ RecordBatch iterators (Table::batches) ──▶ writer (parquet | csv | sqlite)
//! ```
//!
//! Generation is deterministic: the same scale factor always gives the same rows.

mod csv;
pub mod load;
mod parquet;
mod sqlite;

use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use flotilla_common::{Error, Result};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use tpchgen::generators as g;
use tpchgen_arrow as ta;

/// Rows per generated batch.
const BATCH_SIZE: usize = 8192;

/// The 22 TPC-H queries shipped in the repository (`tests/tpch/queries`), compiled in.
const QUERIES: [&str; 22] = [
    include_str!("../../../tests/tpch/queries/q1.sql"),
    include_str!("../../../tests/tpch/queries/q2.sql"),
    include_str!("../../../tests/tpch/queries/q3.sql"),
    include_str!("../../../tests/tpch/queries/q4.sql"),
    include_str!("../../../tests/tpch/queries/q5.sql"),
    include_str!("../../../tests/tpch/queries/q6.sql"),
    include_str!("../../../tests/tpch/queries/q7.sql"),
    include_str!("../../../tests/tpch/queries/q8.sql"),
    include_str!("../../../tests/tpch/queries/q9.sql"),
    include_str!("../../../tests/tpch/queries/q10.sql"),
    include_str!("../../../tests/tpch/queries/q11.sql"),
    include_str!("../../../tests/tpch/queries/q12.sql"),
    include_str!("../../../tests/tpch/queries/q13.sql"),
    include_str!("../../../tests/tpch/queries/q14.sql"),
    include_str!("../../../tests/tpch/queries/q15.sql"),
    include_str!("../../../tests/tpch/queries/q16.sql"),
    include_str!("../../../tests/tpch/queries/q17.sql"),
    include_str!("../../../tests/tpch/queries/q18.sql"),
    include_str!("../../../tests/tpch/queries/q19.sql"),
    include_str!("../../../tests/tpch/queries/q20.sql"),
    include_str!("../../../tests/tpch/queries/q21.sql"),
    include_str!("../../../tests/tpch/queries/q22.sql"),
];

/// TPC-H query `n` (1 to 22), or `None` for any other number.
pub fn query(n: usize) -> Option<&'static str> {
    QUERIES.get(n.checked_sub(1)?).copied()
}

/// The name of the SQLite database file written by [`Format::Sqlite`].
pub const SQLITE_FILE_NAME: &str = "tpch.sqlite";

/// One of the 8 TPC-H tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Region,
    Nation,
    Supplier,
    Customer,
    Part,
    PartSupp,
    Orders,
    LineItem,
}

impl Table {
    /// All tables, in the order that respects foreign keys (a table only references earlier ones).
    pub const ALL: [Table; 8] = [
        Table::Region,
        Table::Nation,
        Table::Supplier,
        Table::Customer,
        Table::Part,
        Table::PartSupp,
        Table::Orders,
        Table::LineItem,
    ];

    /// The table's SQL name, as used by the TPC-H queries.
    pub fn name(self) -> &'static str {
        match self {
            Table::Region => "region",
            Table::Nation => "nation",
            Table::Supplier => "supplier",
            Table::Customer => "customer",
            Table::Part => "part",
            Table::PartSupp => "partsupp",
            Table::Orders => "orders",
            Table::LineItem => "lineitem",
        }
    }

    /// The columns of the primary key.
    pub fn primary_key(self) -> &'static [&'static str] {
        match self {
            Table::Region => &["r_regionkey"],
            Table::Nation => &["n_nationkey"],
            Table::Supplier => &["s_suppkey"],
            Table::Customer => &["c_custkey"],
            Table::Part => &["p_partkey"],
            Table::PartSupp => &["ps_partkey", "ps_suppkey"],
            Table::Orders => &["o_orderkey"],
            Table::LineItem => &["l_orderkey", "l_linenumber"],
        }
    }

    /// Foreign-key columns that are not a prefix of the primary key; database outputs index
    /// them so that joins and correlated subqueries on them do not scan whole tables.
    pub fn foreign_keys(self) -> &'static [&'static str] {
        match self {
            Table::Region | Table::Part => &[],
            Table::Nation => &["n_regionkey"],
            Table::Supplier => &["s_nationkey"],
            Table::Customer => &["c_nationkey"],
            Table::PartSupp => &["ps_suppkey"],
            Table::Orders => &["o_custkey"],
            Table::LineItem => &["l_partkey", "l_suppkey"],
        }
    }

    /// The Arrow schema of the generated batches.
    pub fn schema(self) -> SchemaRef {
        match self {
            Table::Region => ta::RegionArrow::schema_ref(),
            Table::Nation => ta::NationArrow::schema_ref(),
            Table::Supplier => ta::SupplierArrow::schema_ref(),
            Table::Customer => ta::CustomerArrow::schema_ref(),
            Table::Part => ta::PartArrow::schema_ref(),
            Table::PartSupp => ta::PartSuppArrow::schema_ref(),
            Table::Orders => ta::OrderArrow::schema_ref(),
            Table::LineItem => ta::LineItemArrow::schema_ref(),
        }
    }

    /// The row count the TPC-H specification gives for this table at `scale`; for `lineitem`,
    /// whose size is random per order, an estimate within a fraction of a percent.
    pub fn expected_rows(self, scale: f64) -> u64 {
        match self {
            Table::Region => 5,
            Table::Nation => 25,
            Table::Supplier => g::SupplierGenerator::calculate_row_count(scale, 1, 1) as u64,
            Table::Customer => g::CustomerGenerator::calculate_row_count(scale, 1, 1) as u64,
            Table::Part => g::PartGenerator::calculate_row_count(scale, 1, 1) as u64,
            Table::PartSupp => g::PartSuppGenerator::calculate_row_count(scale, 1, 1) as u64,
            Table::Orders => g::OrderGenerator::calculate_row_count(scale, 1, 1) as u64,
            // Each order has 1 to 7 line items, 4 on average (SF 1: 6,001,215 for 1,500,000).
            Table::LineItem => {
                (g::OrderGenerator::calculate_row_count(scale, 1, 1) as f64 * 4.0008) as u64
            }
        }
    }

    /// Generates the table's rows at `scale` as a stream of record batches.
    pub fn batches(
        self,
        scale: f64,
    ) -> Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>> + Send> {
        match self {
            Table::Region => Box::new(
                ta::RegionArrow::new(g::RegionGenerator::new(scale, 1, 1))
                    .with_batch_size(BATCH_SIZE),
            ),
            Table::Nation => Box::new(
                ta::NationArrow::new(g::NationGenerator::new(scale, 1, 1))
                    .with_batch_size(BATCH_SIZE),
            ),
            Table::Supplier => Box::new(
                ta::SupplierArrow::new(g::SupplierGenerator::new(scale, 1, 1))
                    .with_batch_size(BATCH_SIZE),
            ),
            Table::Customer => Box::new(
                ta::CustomerArrow::new(g::CustomerGenerator::new(scale, 1, 1))
                    .with_batch_size(BATCH_SIZE),
            ),
            Table::Part => Box::new(
                ta::PartArrow::new(g::PartGenerator::new(scale, 1, 1)).with_batch_size(BATCH_SIZE),
            ),
            Table::PartSupp => Box::new(
                ta::PartSuppArrow::new(g::PartSuppGenerator::new(scale, 1, 1))
                    .with_batch_size(BATCH_SIZE),
            ),
            Table::Orders => Box::new(
                ta::OrderArrow::new(g::OrderGenerator::new(scale, 1, 1))
                    .with_batch_size(BATCH_SIZE),
            ),
            Table::LineItem => Box::new(
                ta::LineItemArrow::new(g::LineItemGenerator::new(scale, 1, 1))
                    .with_batch_size(BATCH_SIZE),
            ),
        }
    }
}

impl FromStr for Table {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Table::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::invalid(format!("'{s}' is not a TPC-H table")))
    }
}

/// The output format of [`generate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One `<table>.parquet` file per table (zstd-compressed).
    Parquet,
    /// One `<table>.csv` file per table, comma-separated, with a header line.
    Csv,
    /// One SQLite database, [`SQLITE_FILE_NAME`], with declared types and primary keys.
    Sqlite,
}

impl FromStr for Format {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "parquet" => Ok(Format::Parquet),
            "csv" => Ok(Format::Csv),
            "sqlite" => Ok(Format::Sqlite),
            _ => Err(Error::invalid(format!(
                "unknown format '{s}' (expected parquet, csv or sqlite)"
            ))),
        }
    }
}

/// What to generate, and where.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// TPC-H scale factor: 1.0 is about 1 GB of raw data, 8.66 M rows.
    pub scale: f64,
    pub format: Format,
    /// Output directory; created if missing.
    pub out: PathBuf,
    /// Which tables; all 8 when empty.
    pub tables: Vec<Table>,
}

/// Reports generation progress: the table and how many rows were just written.
pub type Progress<'a> = &'a (dyn Fn(Table, u64) + Sync);

/// Generates the requested tables and writes them. Returns the rows written per table.
///
/// # Errors
/// When the scale is not positive, or the output cannot be written.
pub fn generate(options: &GenerateOptions, progress: Progress<'_>) -> Result<Vec<(Table, u64)>> {
    if !(options.scale.is_finite() && options.scale > 0.0) {
        return Err(Error::invalid(format!(
            "scale must be a positive number, got {}",
            options.scale
        )));
    }
    std::fs::create_dir_all(&options.out).map_err(|e| {
        Error::from(e).with_source(format!("output directory {}", options.out.display()))
    })?;
    let tables = if options.tables.is_empty() {
        Table::ALL.to_vec()
    } else {
        options.tables.clone()
    };
    match options.format {
        Format::Sqlite => sqlite::write_database(
            &options.out.join(SQLITE_FILE_NAME),
            &tables,
            options.scale,
            progress,
        ),
        Format::Parquet => write_files(&tables, options, progress, parquet::write_table),
        Format::Csv => write_files(&tables, options, progress, csv::write_table),
    }
}

/// A function that writes one table to one file.
type FileWriter = fn(&Path, Table, f64, Progress<'_>) -> Result<u64>;

/// Writes one file per table, on as many threads as there are cores, largest tables first.
fn write_files(
    tables: &[Table],
    options: &GenerateOptions,
    progress: Progress<'_>,
    write: FileWriter,
) -> Result<Vec<(Table, u64)>> {
    let mut queue = tables.to_vec();
    queue.sort_by_key(|t| std::cmp::Reverse(t.expected_rows(options.scale)));
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(queue.len());
    let extension = match options.format {
        Format::Parquet => "parquet",
        _ => "csv",
    };
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while let Some(&table) = queue.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let path = options.out.join(format!("{}.{extension}", table.name()));
                    let outcome = write(&path, table, options.scale, progress);
                    let failed = outcome.is_err();
                    results
                        .lock()
                        .expect("no panics while locked")
                        .push((table, outcome));
                    if failed {
                        // Let the other threads run out of work quickly.
                        next.store(queue.len(), Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let mut written = Vec::new();
    for (table, outcome) in results.into_inner().expect("threads have ended") {
        written.push((table, outcome?));
    }
    written.sort();
    Ok(written)
}

/// Turns an Arrow error met while generating or writing `table` into a Flotilla error.
fn table_error(table: Table, e: impl std::fmt::Display) -> Error {
    Error::internal(format!("writing TPC-H table {}: {e}", table.name()))
}
