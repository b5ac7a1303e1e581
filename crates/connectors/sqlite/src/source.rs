//! The SQLite [`Source`]: discovery, identity and execution.

use crate::dialect::SqliteDialect;
use crate::pool::Pool;
use crate::types::ColumnType;
use async_trait::async_trait;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::execution::SendableRecordBatchStream;
use flotilla_common::{Error, Result};
use flotilla_federation::stats::bound_from_text;
use flotilla_federation::{
    ColumnEstimate, Dialect, RemoteTable, Source, SourceIdentity, SplitKey, TableName,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One SQLite database file, opened read-only.
#[derive(Debug)]
pub struct SqliteSource {
    name: String,
    pool: Arc<Pool>,
    identity: SourceIdentity,
    dialect: SqliteDialect,
}

impl SqliteSource {
    /// The rowid of a table without an `INTEGER PRIMARY KEY` (a composite or text primary key,
    /// or none), by its name `_rowid_`, and the range it held (the two ends of the table's b-tree,
    /// two lookups): its ranges are ranges of the table's storage, read as fast as those of an
    /// `INTEGER PRIMARY KEY`. At SF 1, lineitem (primary key `l_orderkey, l_linenumber`) split in
    /// two by rowid was read in 0.29 s a half against 0.62 s whole. `None` for a table without
    /// rowids (`WITHOUT ROWID`: the statement fails) or with a column that takes one of the
    /// rowid's names.
    fn hidden_rowid_key(
        &self,
        conn: &rusqlite::Connection,
        schema: &str,
        table: &str,
        fields: &[Field],
    ) -> Option<SplitKey> {
        let named = |f: &Field| {
            ["_rowid_", "rowid", "oid"]
                .iter()
                .any(|n| f.name().eq_ignore_ascii_case(n))
        };
        if fields.iter().any(named) {
            return None;
        }
        let sql = format!(
            "SELECT min(_rowid_), max(_rowid_) FROM {}.{}",
            self.dialect.quote_identifier(schema),
            self.dialect.quote_identifier(table)
        );
        let (min, max): (Option<i64>, Option<i64>) = conn
            .query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?)))
            .ok()?;
        Some(SplitKey {
            column: "_rowid_".into(),
            min: min?,
            max: max?,
        })
    }

    /// Opens the database at `path` as the source `name`.
    ///
    /// # Errors
    /// When the file does not exist or is not a SQLite database.
    pub fn open(name: &str, path: &Path) -> Result<Self> {
        Self::open_attached(name, path, &[])
    }

    /// Opens the database at `path` with further files attached as schemas: `(schema, file)`.
    /// Tables of all of them join inside SQLite.
    ///
    /// # Errors
    /// When a file does not exist or is not a SQLite database.
    pub fn open_attached(name: &str, path: &Path, attached: &[(String, PathBuf)]) -> Result<Self> {
        for (_, file) in attached {
            if !file.is_file() {
                return Err(Error::not_found(format!(
                    "SQLite file {} does not exist",
                    file.display()
                ))
                .with_source(name));
            }
        }
        if !path.is_file() {
            return Err(
                Error::not_found(format!("SQLite file {} does not exist", path.display()))
                    .with_source(name),
            );
        }
        let pool = Pool::open(path, attached).map_err(|e| {
            Error::invalid(format!("cannot open {} as SQLite: {e}", path.display()))
                .with_source(name)
        })?;
        // Two sources over the same files, attached under the same names, are the same database.
        let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let mut endpoint = canonical(path).display().to_string();
        let mut attachments: Vec<String> = attached
            .iter()
            .map(|(schema, file)| format!("{schema}={}", canonical(file).display()))
            .collect();
        attachments.sort();
        for attachment in attachments {
            endpoint.push(';');
            endpoint.push_str(&attachment);
        }
        let identity = SourceIdentity {
            backend: "sqlite".into(),
            endpoint,
            database: String::new(),
            principal: String::new(),
        };
        Ok(Self {
            name: name.to_string(),
            pool: Arc::new(pool),
            identity,
            dialect: SqliteDialect,
        })
    }

    /// Runs `sql` in SQLite itself, stepping through every row without decoding it into Arrow,
    /// and returns the row count: the floor a pushed query can reach (for benchmarks).
    pub fn run_natively(&self, sql: &str) -> Result<u64> {
        let conn = self.pool.get().map_err(|e| self.error(e))?;
        let mut statement = conn.prepare(sql).map_err(|e| self.error(e))?;
        let mut rows = statement.query([]).map_err(|e| self.error(e))?;
        let mut count = 0;
        while rows.next().map_err(|e| self.error(e))?.is_some() {
            count += 1;
        }
        drop(rows);
        drop(statement);
        self.pool.put(conn);
        Ok(count)
    }

    /// How many pooled connections are idle; a finished or cancelled scan returns its own.
    pub fn idle_connections(&self) -> usize {
        self.pool.idle_count()
    }

    fn error(&self, e: rusqlite::Error) -> Error {
        Error::unavailable(format!("SQLite {}: {e}", self.pool.path().display()))
            .with_source(&self.name)
    }

    /// Runs `f` on a pooled connection, returning the connection to the pool afterwards.
    fn with_connection<T>(&self, f: impl FnOnce(&rusqlite::Connection) -> Result<T>) -> Result<T> {
        let conn = self.pool.get().map_err(|e| self.error(e))?;
        let result = f(&conn);
        self.pool.put(conn);
        result
    }

    fn schema_names(&self, conn: &rusqlite::Connection) -> Result<Vec<String>> {
        conn.prepare("SELECT name FROM pragma_database_list ORDER BY seq")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(|e| self.error(e))
    }

    fn table_names(&self, conn: &rusqlite::Connection) -> Result<Vec<TableName>> {
        let mut tables = Vec::new();
        for schema in self.schema_names(conn)? {
            let list = format!(
                "SELECT name, type FROM {}.sqlite_schema \
                 WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
                self.dialect.quote_identifier(&schema)
            );
            let names: Vec<(String, String)> = conn
                .prepare(&list)
                .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
                .map_err(|e| self.error(e))?;
            tables.extend(names.into_iter().map(|(name, kind)| TableName {
                schema: schema.clone(),
                name,
                table_type: table_type(&kind),
            }));
        }
        Ok(tables)
    }

    /// The table's type from the schema table, `None` when it does not exist.
    fn kind_of(
        &self,
        conn: &rusqlite::Connection,
        schema: &str,
        table: &str,
    ) -> Result<Option<TableType>> {
        let sql = format!(
            "SELECT type FROM {}.sqlite_schema WHERE type IN ('table', 'view') AND name = ?1",
            self.dialect.quote_identifier(schema)
        );
        match conn.query_row(&sql, [table], |r| r.get::<_, String>(0)) {
            Ok(kind) => Ok(Some(table_type(&kind))),
            Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
            // An unknown schema is a table that does not exist.
            Err(e) if e.to_string().contains("unknown database") => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }

    fn describe_table(
        &self,
        conn: &rusqlite::Connection,
        schema: &str,
        table: &str,
        table_type: TableType,
    ) -> Result<RemoteTable> {
        let is_view = table_type == TableType::View;
        let sql = "SELECT name, type, \"notnull\" FROM pragma_table_info(?1, ?2) ORDER BY cid";
        let columns: Vec<(String, String, bool)> = conn
            .prepare(sql)
            .and_then(|mut s| {
                s.query_map([table, schema], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect()
            })
            .map_err(|e| self.error(e))?;
        let mut fields = Vec::new();
        let mut opaque = Vec::new();
        for (name, declared, not_null) in &columns {
            let column_type = ColumnType::from_declared(declared);
            fields.push(Field::new(name, column_type.arrow_type(), !not_null));
            opaque.push(is_opaque(declared, column_type));
        }
        let (row_estimate, indexed, column_estimates, split_key) = if is_view {
            (None, None, Vec::new(), None)
        } else {
            let rowid: Option<String> = conn
                .query_row(ROWID_COLUMN, [table, schema], |r| r.get(0))
                .ok();
            let leading = self.index_leaders(conn, schema, table, rowid.as_deref());
            let indexed: Vec<bool> = columns
                .iter()
                .map(|(name, _, _)| leading.iter().any(|l| l.eq_ignore_ascii_case(name)))
                .collect();
            let rows = self.row_estimate(conn, schema, table);
            let estimates = match rows {
                Some(rows) => {
                    // Only index-leading columns SQLite orders as DataFusion does are read.
                    let readable: Vec<bool> = opaque
                        .iter()
                        .zip(&indexed)
                        .map(|(&opaque, &indexed)| indexed && !opaque)
                        .collect();
                    let table = (schema, table);
                    self.column_estimates(conn, table, &fields, &readable, rows, rowid.as_deref())
                }
                None => Vec::new(),
            };
            let split_key = match (rows, rowid) {
                (Some(rows), Some(rowid)) if rows >= SPLIT_MIN_ROWS => {
                    split_key(rowid, &fields, &estimates)
                }
                (Some(rows), None) if rows >= SPLIT_MIN_ROWS => {
                    self.hidden_rowid_key(conn, schema, table, &fields)
                }
                _ => None,
            };
            (rows, Some(indexed), estimates, split_key)
        };
        Ok(RemoteTable {
            column_estimates,
            row_estimate,
            bytes: None,
            schema: schema.to_string(),
            name: table.to_string(),
            arrow_schema: Arc::new(Schema::new(fields)),
            opaque,
            indexed,
            table_type,
            split_key,
        })
    }
}

/// The `INTEGER PRIMARY KEY` column of table `?1` in schema `?2`, if it has one: an alias of
/// the rowid.
const ROWID_COLUMN: &str = "SELECT name FROM pragma_table_info(?1, ?2) WHERE pk = 1 \
                            AND upper(type) = 'INTEGER' \
                            AND (SELECT count(*) FROM pragma_table_info(?1, ?2) WHERE pk > 0) = 1";

/// Tables with fewer estimated rows get no split key (they are never read in parts).
const SPLIT_MIN_ROWS: usize = 100_000;

/// The table's `INTEGER PRIMARY KEY` (its rowid, `column`) and the range it held, from the
/// bounds `estimates` read through it: ranges of it are read in parallel, each a range of the
/// table's own b-tree. Other keys are not split on: a range of an index costs a lookup in the
/// table per row (at SF 1 half of lineitem by `l_orderkey` took 0.41–0.55 s against 0.29 s by
/// rowid and 0.62 s for all of it, and rows not stored in key order would be read at random).
fn split_key(column: String, fields: &[Field], estimates: &[ColumnEstimate]) -> Option<SplitKey> {
    let i = fields.iter().position(|f| f.name() == &column)?;
    match (&estimates.get(i)?.min, &estimates.get(i)?.max) {
        (Some(ScalarValue::Int64(Some(min))), Some(ScalarValue::Int64(Some(max)))) => {
            Some(SplitKey {
                column,
                min: *min,
                max: *max,
            })
        }
        _ => None,
    }
}

impl SqliteSource {
    /// The columns an index of the table starts with (its primary key's included), and its
    /// `INTEGER PRIMARY KEY` (the rowid): SQLite looks rows up by them instead of scanning.
    fn index_leaders(
        &self,
        conn: &rusqlite::Connection,
        schema: &str,
        table: &str,
        rowid: Option<&str>,
    ) -> Vec<String> {
        let indexes = "SELECT ii.name FROM pragma_index_list(?1, ?2) AS il, \
                       pragma_index_info(il.name, ?2) AS ii WHERE ii.seqno = 0";
        let names: rusqlite::Result<Vec<String>> = conn
            .prepare(indexes)
            .and_then(|mut s| s.query_map([table, schema], |r| r.get(0))?.collect());
        // Without the index pragmas (a very old SQLite) nothing counts as indexed.
        let mut leaders = names.unwrap_or_default();
        leaders.extend(rowid.map(str::to_string));
        leaders
    }

    /// What can be known cheaply of each column, for columns an index starts with (each figure
    /// a lookup in the index, never a scan): the smallest and largest value, and — where the
    /// database was analyzed (`sqlite_stat1`) or the column is the rowid — the distinct values.
    /// Columns whose values SQLite orders differently from DataFusion (`opaque`) get nothing.
    fn column_estimates(
        &self,
        conn: &rusqlite::Connection,
        (schema, table): (&str, &str),
        fields: &[Field],
        readable: &[bool],
        rows: usize,
        rowid: Option<&str>,
    ) -> Vec<ColumnEstimate> {
        let q = |s: &str| self.dialect.quote_identifier(s);
        // sqlite_stat1: `rows avg₁ avg₂ …`, avgᵢ the rows per distinct value of the index's
        // first i columns.
        let analyzed: Vec<(String, String)> = conn
            .prepare(&format!(
                "SELECT ii.name, s.stat FROM {}.sqlite_stat1 AS s, \
                 pragma_index_info(s.idx, ?2) AS ii WHERE s.tbl = ?1 AND ii.seqno = 0",
                q(schema)
            ))
            .and_then(|mut s| {
                s.query_map([table, schema], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })
            .unwrap_or_default();
        let bound = |function: &str, column: &str, field: &Field| {
            let sql = format!(
                "SELECT {function}({}) FROM {}.{}",
                q(column),
                q(schema),
                q(table)
            );
            let value: rusqlite::types::Value = conn.query_row(&sql, [], |r| r.get(0)).ok()?;
            let text = match value {
                rusqlite::types::Value::Integer(v) => v.to_string(),
                rusqlite::types::Value::Real(v) => v.to_string(),
                rusqlite::types::Value::Text(v) => v,
                _ => return None,
            };
            bound_from_text(&text, field.data_type())
        };
        fields
            .iter()
            .zip(readable)
            .map(|(field, &readable)| {
                if !readable {
                    return ColumnEstimate::default();
                }
                let name = field.name();
                let is_rowid = rowid.is_some_and(|r| r.eq_ignore_ascii_case(name));
                let distinct = if is_rowid {
                    Some(rows as f64)
                } else {
                    analyzed
                        .iter()
                        .filter(|(column, _)| column.eq_ignore_ascii_case(name))
                        .filter_map(|(_, stat)| {
                            let mut figures = stat.split_whitespace().map(str::parse::<f64>);
                            let all = figures.next()?.ok()?;
                            let per_value = figures.next()?.ok()?;
                            (per_value > 0.0).then_some(all / per_value)
                        })
                        .reduce(f64::max)
                };
                ColumnEstimate {
                    null_fraction: is_rowid.then_some(0.0),
                    distinct,
                    min: bound("min", name, field),
                    max: bound("max", name, field),
                    width: None,
                }
            })
            .collect()
    }

    /// A cheap row-count estimate: from `sqlite_stat1` when the database was analyzed, else the
    /// span of rowids (exact for tables whose rowids have no gaps).
    fn row_estimate(
        &self,
        conn: &rusqlite::Connection,
        schema: &str,
        table: &str,
    ) -> Option<usize> {
        let q = |s: &str| self.dialect.quote_identifier(s);
        let analyzed: Option<String> = conn
            .query_row(
                &format!(
                    "SELECT stat FROM {}.sqlite_stat1 WHERE tbl = ?1 LIMIT 1",
                    q(schema)
                ),
                [table],
                |r| r.get(0),
            )
            .ok();
        if let Some(rows) = analyzed.and_then(|stat| stat.split_whitespace().next()?.parse().ok()) {
            return Some(rows);
        }
        let span = format!(
            "SELECT max(_rowid_) - min(_rowid_) + 1 FROM {}.{}",
            q(schema),
            q(table)
        );
        let rows: Option<i64> = conn.query_row(&span, [], |r| r.get(0)).ok()?;
        Some(rows.unwrap_or(0).max(0) as usize)
    }
}

/// Whether SQLite compares a column's stored values differently from how DataFusion compares the
/// decoded ones:
/// - no declared type: no affinity, so SQLite compares the integer 5 and the text '5' as
///   different, while both decode to the text "5";
/// - booleans: the decoder accepts 'true'/'t', which SQLite compares as text, not as 1;
/// - timestamps: stored in several textual and numeric forms that do not compare in order.
fn table_type(kind: &str) -> TableType {
    if kind == "view" {
        TableType::View
    } else {
        TableType::Base
    }
}

fn is_opaque(declared: &str, column_type: ColumnType) -> bool {
    declared.trim().is_empty() || matches!(column_type, ColumnType::Boolean | ColumnType::Timestamp)
}

#[async_trait]
impl Source for SqliteSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn identity(&self) -> &SourceIdentity {
        &self.identity
    }

    fn dialect(&self) -> &dyn Dialect {
        &self.dialect
    }

    // Discovery reads a few catalog rows from a local file: quick enough to run inline.
    async fn schemas(&self) -> Result<Vec<String>> {
        self.with_connection(|conn| self.schema_names(conn))
    }

    async fn tables(&self) -> Result<Vec<TableName>> {
        self.with_connection(|conn| self.table_names(conn))
    }

    async fn describe(&self, schema: &str, table: &str) -> Result<Option<RemoteTable>> {
        self.with_connection(|conn| match self.kind_of(conn, schema, table)? {
            Some(kind) => self.describe_table(conn, schema, table, kind).map(Some),
            None => Ok(None),
        })
    }

    fn execute(
        &self,
        sql: &str,
        schema: SchemaRef,
        batch_size: usize,
    ) -> DfResult<SendableRecordBatchStream> {
        crate::exec::stream(&self.name, &self.pool, sql, schema, batch_size)
    }
}
