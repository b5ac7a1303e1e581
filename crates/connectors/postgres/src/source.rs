//! The PostgreSQL [`Source`]: discovery from the system catalogs, identity and execution.

use crate::dialect::{POSTGRES_COSTS, PostgresDialect};
use crate::pool::{Pool, error};
use crate::stats::PgStats;
use crate::tls::RustlsConnect;
use crate::types::{NumericMapping, Wire, numeric_modifier};
use async_trait::async_trait;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::Result as DfResult;
use datafusion::datasource::TableType;
use datafusion::execution::SendableRecordBatchStream;
use flotilla_common::{Error, ErrorKind, Result};
use flotilla_federation::dialect::EngineCosts;
use flotilla_federation::{
    ColumnEstimate, Dialect, RemoteTable, Source, SourceIdentity, SplitKey, TableName,
    UnsupportedTypes, WriteTarget,
};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use tokio_postgres::config::{Host, SslMode};

/// Options of a PostgreSQL source beyond its connection.
#[derive(Debug, Clone, Default)]
pub struct PostgresOptions {
    /// The Arrow type of `numeric` columns without a precision (or with more than 38 digits).
    pub numeric: NumericMapping,
    /// Columns of types Flotilla cannot read.
    pub unsupported_types: UnsupportedTypes,
    /// A CA certificate (PEM) to check the server's TLS certificate against instead of the
    /// system's roots; setting it turns TLS on unless `sslmode=disable` (see [`crate::tls`]).
    pub tls_root_cert: Option<std::path::PathBuf>,
}

/// One database of a PostgreSQL server, reached with one user.
#[derive(Debug)]
pub struct PostgresSource {
    name: String,
    pool: Arc<Pool>,
    identity: SourceIdentity,
    dialect: PostgresDialect,
    options: PostgresOptions,
    /// The server's `server_version_num`, read with the first table described.
    version: OnceLock<i32>,
}

/// Tables with fewer estimated rows get no split key (they are never read in parts).
const SPLIT_MIN_ROWS: usize = 100_000;

/// Schemas that hold PostgreSQL's own catalogs, never listed.
const SYSTEM_SCHEMAS: &str = "n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'";

/// Checks a connection string without connecting; the error says what is wrong.
pub fn check_url(url: &str) -> std::result::Result<(), String> {
    url.parse::<tokio_postgres::Config>()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

impl PostgresSource {
    /// A source `name` for the server and database `url` names: a libpq URL
    /// (`postgresql://user:password@host:port/database`) or key-value string
    /// (`host=… user=… dbname=…`). Nothing is connected yet.
    ///
    /// # Errors
    /// When `url` cannot be parsed.
    pub fn new(name: &str, url: &str, options: PostgresOptions) -> Result<Self> {
        Self::with_password(name, url, None, options)
    }

    /// Like [`PostgresSource::new`], with the password given apart from the connection string
    /// (e.g. from an environment variable).
    ///
    /// # Errors
    /// When `url` cannot be parsed.
    pub fn with_password(
        name: &str,
        url: &str,
        password: Option<&str>,
        options: PostgresOptions,
    ) -> Result<Self> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            Error::invalid(format!("invalid PostgreSQL connection string: {e}")).with_source(name)
        })?;
        if let Some(password) = password {
            config.password(password);
        }
        let tls = match (config.get_ssl_mode(), &options.tls_root_cert) {
            (SslMode::Disable, _) | (SslMode::Prefer, None) => None,
            (_, root) => {
                Some(RustlsConnect::new(root.as_deref()).map_err(|e| e.with_source(name))?)
            }
        };
        Ok(Self::with_config(name, config, options, tls))
    }

    fn with_config(
        name: &str,
        config: tokio_postgres::Config,
        options: PostgresOptions,
        tls: Option<RustlsConnect>,
    ) -> Self {
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(host)) => host.clone(),
            #[cfg(unix)]
            Some(Host::Unix(path)) => path.display().to_string(),
            None => "localhost".into(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().unwrap_or_default().to_string();
        let identity = SourceIdentity {
            backend: "postgres".into(),
            endpoint: format!("{host}:{port}"),
            database: config.get_dbname().unwrap_or(&user).to_string(),
            principal: user,
        };
        Self {
            name: name.to_string(),
            pool: Arc::new(Pool::new(config, tls)),
            identity,
            dialect: PostgresDialect,
            options,
            version: OnceLock::new(),
        }
    }

    /// Runs `sql` in PostgreSQL and counts the rows without decoding them into Arrow: the
    /// floor a pushed query can reach (for benchmarks).
    pub async fn run_natively(&self, sql: &str) -> Result<u64> {
        use futures::StreamExt;
        let client = self.pool.get().await.map_err(|e| self.named(e))?;
        let rows = client
            .query_raw(
                sql,
                std::iter::empty::<&(dyn tokio_postgres::types::ToSql + Sync)>(),
            )
            .await
            .map_err(|e| self.named(error(&e, "running the query")))?;
        let mut rows = std::pin::pin!(rows);
        let mut count = 0;
        while let Some(row) = rows.next().await {
            row.map_err(|e| self.named(error(&e, "reading rows")))?;
            count += 1;
        }
        self.pool.put(client);
        Ok(count)
    }

    /// Runs `COPY (query) TO STDOUT (FORMAT binary)` and returns the bytes received: the
    /// fastest way PostgreSQL can ship rows (for benchmarks).
    pub async fn copy_out_bytes(&self, query: &str) -> Result<u64> {
        use futures::StreamExt;
        let client = self.pool.get().await.map_err(|e| self.named(e))?;
        let copy = client
            .copy_out(&format!("COPY ({query}) TO STDOUT (FORMAT binary)"))
            .await
            .map_err(|e| self.named(error(&e, "starting COPY")))?;
        let mut copy = std::pin::pin!(copy);
        let mut bytes = 0;
        while let Some(chunk) = copy.next().await {
            bytes += chunk
                .map_err(|e| self.named(error(&e, "reading COPY")))?
                .len() as u64;
        }
        self.pool.put(client);
        Ok(bytes)
    }

    /// How many pooled connections are idle; a finished or cancelled scan leaves its own.
    pub fn idle_connections(&self) -> usize {
        self.pool.idle_count()
    }

    fn named(&self, e: Error) -> Error {
        e.with_source(&self.name)
    }

    /// The integer column leading the primary key of `schema.table`, with its range.
    async fn split_key(&self, schema: &str, table: &str) -> Result<Option<SplitKey>> {
        let key = self
            .rows(
                "SELECT a.attname::text FROM pg_catalog.pg_index i \
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid \
                 AND a.attnum = i.indkey[0] \
                 WHERE i.indrelid = to_regclass(format('%I.%I', $1::text, $2::text)) \
                 AND i.indisprimary AND a.atttypid IN (20, 21, 23)",
                &[&schema, &table],
            )
            .await?;
        let Some(column) = key.first().map(|r| r.get::<_, String>(0)) else {
            return Ok(None);
        };
        let quote = |s: &str| self.dialect.quote_identifier(s);
        let sql = format!(
            "SELECT min({c})::int8, max({c})::int8 FROM {}.{}",
            quote(schema),
            quote(table),
            c = quote(&column)
        );
        let range = self.rows(&sql, &[]).await?;
        let Some(row) = range.first() else {
            return Ok(None);
        };
        Ok(
            match (row.get::<_, Option<i64>>(0), row.get::<_, Option<i64>>(1)) {
                (Some(min), Some(max)) => Some(SplitKey { column, min, max }),
                _ => None,
            },
        )
    }

    /// Per field, what `pg_stats` says of the column (nothing for a column never analyzed).
    /// A partitioned table's statistics are those over all its partitions (`inherited`).
    async fn column_estimates(
        &self,
        schema: &str,
        table: &str,
        fields: &[Field],
        rows: usize,
    ) -> Result<Vec<ColumnEstimate>> {
        let sql = "SELECT attname::text, null_frac::float8, n_distinct::float8, avg_width, \
                   most_common_vals::text, histogram_bounds::text \
                   FROM pg_catalog.pg_stats WHERE schemaname = $1 AND tablename = $2 \
                   ORDER BY inherited";
        let mut by_column = HashMap::new();
        for row in self.rows(sql, &[&schema, &table]).await? {
            let name: String = row.get(0);
            let stats = PgStats {
                null_frac: row.get(1),
                n_distinct: row.get(2),
                avg_width: row.get(3),
                common_values: row.get(4),
                histogram_bounds: row.get(5),
            };
            // Rows with `inherited` come last and win.
            by_column.insert(name, stats);
        }
        Ok(fields
            .iter()
            .map(|field| {
                by_column
                    .get(field.name())
                    .map(|stats| stats.estimate(field, rows as f64))
                    .unwrap_or_default()
            })
            .collect())
    }

    async fn rows(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>> {
        let client = self.pool.get().await.map_err(|e| self.named(e))?;
        let rows = client
            .query(sql, params)
            .await
            .map_err(|e| self.named(error(&e, "reading the catalog")))?;
        self.pool.put(client);
        Ok(rows)
    }
}

#[async_trait]
impl Source for PostgresSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn identity(&self) -> &SourceIdentity {
        &self.identity
    }

    fn dialect(&self) -> &dyn Dialect {
        &self.dialect
    }

    /// [`POSTGRES_COSTS`]; from PostgreSQL 16 on, outer joins hashing their preserved side run
    /// in parallel too (its parallel right and full hash joins).
    fn costs(&self) -> EngineCosts {
        EngineCosts {
            serial_outer_hash: self.version.get().is_none_or(|v| *v < 160_000),
            ..POSTGRES_COSTS
        }
    }

    async fn schemas(&self) -> Result<Vec<String>> {
        let sql = format!(
            "SELECT n.nspname::text FROM pg_catalog.pg_namespace n \
             WHERE {SYSTEM_SCHEMAS} AND has_schema_privilege(n.oid, 'USAGE') ORDER BY 1"
        );
        let rows = self.rows(&sql, &[]).await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn tables(&self) -> Result<Vec<TableName>> {
        let sql = format!(
            "SELECT n.nspname::text, c.relname::text, c.relkind::text \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') AND NOT c.relispartition \
             AND {SYSTEM_SCHEMAS} ORDER BY 1, 2"
        );
        let rows = self.rows(&sql, &[]).await?;
        Ok(rows
            .iter()
            .map(|r| TableName {
                schema: r.get(0),
                name: r.get(1),
                table_type: table_type(r.get(2)),
            })
            .collect())
    }

    async fn describe(&self, schema: &str, table: &str) -> Result<Option<RemoteTable>> {
        let sql = "SELECT c.relkind::text, c.reltuples::float8, a.attname::text, a.atttypmod, \
                   a.attnotnull, current_setting('server_version_num')::int4 \
                   FROM pg_catalog.pg_class c \
                   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                   JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid \
                   AND a.attnum > 0 AND NOT a.attisdropped \
                   WHERE n.nspname = $1 AND c.relname = $2 \
                   AND c.relkind IN ('r', 'v', 'm', 'p', 'f') ORDER BY a.attnum";
        let columns = self.rows(sql, &[&schema, &table]).await?;
        let Some(first) = columns.first() else {
            return Ok(None);
        };
        let table_type = table_type(first.get(0));
        let reltuples: f64 = first.get(1);
        let _ = self.version.set(first.get(5));
        // The column types as the server resolves them (domains, enums, arrays included).
        let quote = |s: &str| self.dialect.quote_identifier(s);
        let probe = format!("SELECT * FROM {}.{}", quote(schema), quote(table));
        let client = self.pool.get().await.map_err(|e| self.named(e))?;
        let statement = client
            .prepare(&probe)
            .await
            .map_err(|e| self.named(error(&e, &format!("describing {schema}.{table}"))))?;
        self.pool.put(client);
        let mut fields = Vec::new();
        let mut opaque = Vec::new();
        for (row, column) in columns.iter().zip(statement.columns()) {
            let name: String = row.get(2);
            let typmod: i32 = row.get(3);
            let not_null: bool = row.get(4);
            let Some(wire) = Wire::of(column.type_()) else {
                match self.options.unsupported_types {
                    UnsupportedTypes::Skip => continue,
                    UnsupportedTypes::Error => {
                        return Err(self.named(Error::new(
                            ErrorKind::Unsupported,
                            format!(
                                "table {schema}.{table}, column '{name}': type {} is not \
                                 supported (set unsupported_types = \"skip\" to leave such \
                                 columns out)",
                                column.type_()
                            ),
                        )));
                    }
                }
            };
            let data_type = wire.arrow_type(numeric_modifier(typmod), self.options.numeric);
            fields.push(Field::new(name, data_type, !not_null));
            opaque.push(wire.is_opaque());
        }
        // reltuples is -1 (PostgreSQL 14+) or 0 for a table never vacuumed or analyzed.
        let row_estimate =
            (table_type == TableType::Base && reltuples > 0.0).then_some(reltuples as usize);
        let split_key = match row_estimate {
            Some(rows) if rows >= SPLIT_MIN_ROWS => self.split_key(schema, table).await?,
            _ => None,
        };
        let column_estimates = match row_estimate {
            Some(rows) => self.column_estimates(schema, table, &fields, rows).await?,
            None => Vec::new(),
        };
        Ok(Some(RemoteTable {
            column_estimates,
            split_key,
            schema: schema.to_string(),
            name: table.to_string(),
            arrow_schema: Arc::new(Schema::new(fields)),
            opaque,
            indexed: None,
            table_type,
            row_estimate,
            bytes: None,
        }))
    }

    fn execute(
        &self,
        sql: &str,
        schema: SchemaRef,
        batch_size: usize,
    ) -> DfResult<SendableRecordBatchStream> {
        crate::exec::stream(&self.name, &self.pool, sql, schema, batch_size)
    }

    async fn write(&self, target: WriteTarget, data: SendableRecordBatchStream) -> Result<u64> {
        crate::write::write(&self.pool, &target, data)
            .await
            .map_err(|e| self.named(e))
    }
}

fn table_type(relkind: &str) -> TableType {
    match relkind {
        "v" | "m" => TableType::View,
        _ => TableType::Base,
    }
}
