//! Discovery of a SQLite database's tables, and the DataFusion table provider over one table.

use crate::exec::SqliteScanExec;
use crate::filter::{Columns, quote_identifier, to_sql};
use crate::pool::Pool;
use crate::types::ColumnType;
use async_trait::async_trait;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider, Session,
    TableProvider,
};
use datafusion::common::Result as DfResult;
use datafusion::datasource::TableType;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use flotilla_common::{Error, Result};
use std::path::Path;
use std::sync::Arc;

/// One SQLite database file, opened read-only.
#[derive(Debug)]
pub struct SqliteSource {
    name: String,
    pool: Arc<Pool>,
}

impl SqliteSource {
    /// Opens the database at `path` as the source `name`.
    ///
    /// # Errors
    /// When the file does not exist or is not a SQLite database.
    pub fn open(name: &str, path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(
                Error::not_found(format!("SQLite file {} does not exist", path.display()))
                    .with_source(name),
            );
        }
        let pool = Pool::open(path).map_err(|e| {
            Error::invalid(format!("cannot open {} as SQLite: {e}", path.display()))
                .with_source(name)
        })?;
        Ok(Self {
            name: name.to_string(),
            pool: Arc::new(pool),
        })
    }

    /// How many pooled connections are idle; a finished or cancelled scan returns its own.
    pub fn idle_connections(&self) -> usize {
        self.pool.idle_count()
    }

    /// Discovers every schema (`main` and attached databases), table and view, and returns a
    /// catalog holding them.
    pub fn catalog(&self) -> Result<Arc<dyn CatalogProvider>> {
        let catalog = MemoryCatalogProvider::new();
        for (schema_name, tables) in self.discover()? {
            let schema = MemorySchemaProvider::new();
            for table in tables {
                let name = table.table.clone();
                schema
                    .register_table(name, Arc::new(table))
                    .map_err(|e| Error::from(e).with_source(&self.name))?;
            }
            catalog
                .register_schema(&schema_name, Arc::new(schema))
                .map_err(|e| Error::from(e).with_source(&self.name))?;
        }
        Ok(Arc::new(catalog))
    }

    /// Every schema with its tables.
    pub fn discover(&self) -> Result<Vec<(String, Vec<SqliteTable>)>> {
        let conn = self.pool.get().map_err(|e| self.error(e))?;
        let schemas: Vec<String> = conn
            .prepare("SELECT name FROM pragma_database_list ORDER BY seq")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(|e| self.error(e))?;
        let mut discovered = Vec::new();
        for schema in schemas {
            let list = format!(
                "SELECT name, type FROM {}.sqlite_schema \
                 WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
                 ORDER BY name",
                quote_identifier(&schema)
            );
            let names: Vec<(String, String)> = conn
                .prepare(&list)
                .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
                .map_err(|e| self.error(e))?;
            let mut tables = Vec::new();
            for (table, kind) in names {
                tables.push(self.describe(&conn, &schema, &table, kind == "view")?);
            }
            discovered.push((schema, tables));
        }
        self.pool.put(conn);
        Ok(discovered)
    }

    fn describe(
        &self,
        conn: &rusqlite::Connection,
        schema: &str,
        table: &str,
        is_view: bool,
    ) -> Result<SqliteTable> {
        let sql = "SELECT name, type, \"notnull\" FROM pragma_table_info(?1, ?2) ORDER BY cid";
        let columns: Vec<(String, String, bool)> = conn
            .prepare(sql)
            .and_then(|mut s| {
                s.query_map([table, schema], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect()
            })
            .map_err(|e| self.error(e))?;
        let column_types: Vec<ColumnType> = columns
            .iter()
            .map(|(_, t, _)| ColumnType::from_declared(t))
            .collect();
        let filterable = columns
            .iter()
            .zip(&column_types)
            .map(|((_, declared, _), t)| filterable(declared, *t))
            .collect();
        let fields: Vec<Field> = columns
            .iter()
            .zip(&column_types)
            .map(|((name, _, not_null), t)| Field::new(name, t.arrow_type(), !not_null))
            .collect();
        Ok(SqliteTable {
            source: self.name.clone(),
            pool: Arc::clone(&self.pool),
            schema_name: schema.to_string(),
            table: table.to_string(),
            is_view,
            arrow_schema: Arc::new(Schema::new(fields)),
            column_types,
            filterable,
        })
    }

    fn error(&self, e: rusqlite::Error) -> Error {
        Error::unavailable(format!("SQLite {}: {e}", self.pool.path().display()))
            .with_source(&self.name)
    }
}

/// A SQLite table or view as a DataFusion table.
#[derive(Debug)]
pub struct SqliteTable {
    source: String,
    pool: Arc<Pool>,
    schema_name: String,
    table: String,
    is_view: bool,
    arrow_schema: SchemaRef,
    column_types: Vec<ColumnType>,
    /// Whether SQLite compares the column's values as DataFusion would compare the decoded ones.
    filterable: Vec<bool>,
}

/// Whether filters on a column may run in SQLite. Not when SQLite's comparison of the stored
/// values differs from DataFusion's comparison of the decoded ones:
/// - no declared type: no affinity, so SQLite compares the integer 5 and the text '5' as
///   different, while both decode to the text "5";
/// - booleans: the decoder accepts 'true'/'t', which SQLite compares as text, not as 1;
/// - timestamps: stored in several textual and numeric forms that do not compare in order.
fn filterable(declared: &str, column_type: ColumnType) -> bool {
    !declared.trim().is_empty()
        && !matches!(column_type, ColumnType::Boolean | ColumnType::Timestamp)
}

impl SqliteTable {
    /// The table's name in SQLite.
    pub fn name(&self) -> &str {
        &self.table
    }

    /// `SELECT <projection> FROM "<schema>"."<table>" [WHERE …] [LIMIT n]`, and the declared
    /// types of the selected columns.
    fn select(
        &self,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> (String, Vec<ColumnType>, SchemaRef) {
        let indices: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.column_types.len()).collect(),
        };
        let select_list = if indices.is_empty() {
            // No column is needed (e.g. count(*)), but every row is: select a constant.
            "1".to_string()
        } else {
            indices
                .iter()
                .map(|&i| quote_identifier(self.arrow_schema.field(i).name()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut sql = format!(
            "SELECT {select_list} FROM {}.{}",
            quote_identifier(&self.schema_name),
            quote_identifier(&self.table)
        );
        let conditions: Vec<String> = filters.iter().filter_map(|f| to_sql(f, self)).collect();
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        if let Some(n) = limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        let types = indices.iter().map(|&i| self.column_types[i]).collect();
        let schema = Arc::new(
            self.arrow_schema
                .project(&indices)
                .expect("indices are in range"),
        );
        (sql, types, schema)
    }
}

impl Columns for SqliteTable {
    fn column_type(&self, name: &str) -> Option<ColumnType> {
        let index = self.arrow_schema.index_of(name).ok()?;
        self.filterable[index].then_some(self.column_types[index])
    }
}

#[async_trait]
impl TableProvider for SqliteTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.arrow_schema)
    }

    fn table_type(&self) -> TableType {
        if self.is_view {
            TableType::View
        } else {
            TableType::Base
        }
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if let Some(p) = projection
            && let Some(&bad) = p.iter().find(|&&i| i >= self.column_types.len())
        {
            return datafusion::common::internal_err!("projection index {bad} out of range");
        }
        let (sql, types, schema) = self.select(projection, filters, limit);
        Ok(Arc::new(SqliteScanExec::new(
            &self.source,
            Arc::clone(&self.pool),
            sql,
            types,
            schema,
        )))
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| match to_sql(f, self) {
                Some(_) => TableProviderFilterPushDown::Exact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }
}
