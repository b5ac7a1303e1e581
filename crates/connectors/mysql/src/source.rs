//! The MySQL [`Source`]: discovery from `information_schema`, identity, flavor and execution.

use crate::dialect::Flavor;
use crate::pool::{error, get_connection};
use crate::types::{DeclaredColumn, ZeroDates, arrow_type};
use async_trait::async_trait;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::Result as DfResult;
use datafusion::datasource::TableType;
use datafusion::execution::SendableRecordBatchStream;
use flotilla_common::{Error, ErrorKind, Result};
use flotilla_federation::dialect::EngineCosts;
use flotilla_federation::stats::bound_from_text;
use flotilla_federation::{
    ColumnEstimate, Dialect, RemoteTable, Source, SourceIdentity, SplitKey, TableName,
    UnsupportedTypes, WriteTarget,
};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, Row};
use std::sync::{Arc, OnceLock};

/// Statements every connection runs first: byte-exact string literals, UTC, no
/// ONLY_FULL_GROUP_BY (grouping keys are written with a collation), and decimal division with
/// enough digits to round to DataFusion's scale.
const SESSION_SETUP: [&str; 3] = [
    "SET SESSION sql_mode = TRIM(BOTH ',' FROM REPLACE(CONCAT(@@SESSION.sql_mode, \
     ',NO_BACKSLASH_ESCAPES'), 'ONLY_FULL_GROUP_BY', ''))",
    "SET SESSION time_zone = '+00:00'",
    "SET SESSION div_precision_increment = 30",
];

/// Tables with fewer estimated rows get no split key (they are never read in parts).
const SPLIT_MIN_ROWS: usize = 100_000;

/// Schemas that hold the server's own catalogs, never listed.
const SYSTEM_SCHEMAS: &str = "('mysql', 'information_schema', 'performance_schema', 'sys')";

/// Options of a MySQL source beyond its connection.
#[derive(Debug, Clone, Default)]
pub struct MysqlOptions {
    /// The server kind; detected from `VERSION()` when `None`.
    pub flavor: Option<Flavor>,
    pub zero_dates: ZeroDates,
    pub unsupported_types: UnsupportedTypes,
    /// A CA certificate (PEM) to check the server's certificate against: connections then
    /// require TLS. (Without it, `?require_ssl=true` in the URL requires TLS checked against the
    /// bundled web roots.)
    pub tls_root_cert: Option<std::path::PathBuf>,
}

/// A MySQL, MariaDB or TiDB server (one database of it when the URL names one).
#[derive(Debug)]
pub struct MysqlSource {
    name: String,
    pool: Pool,
    identity: SourceIdentity,
    /// The database the URL names: the only schema listed.
    database: Option<String>,
    flavor: OnceLock<Flavor>,
    /// InnoDB's buffer pool in bytes, read on first contact (`None`: the server did not say).
    buffer_pool: OnceLock<Option<f64>>,
    options: MysqlOptions,
    /// The connection options (for [`MysqlSource::connection_parts`]).
    opts: OptsBuilder,
}

/// Checks a connection URL without connecting; the error says what is wrong.
pub fn check_url(url: &str) -> std::result::Result<(), String> {
    Opts::from_url(url).map(|_| ()).map_err(|e| e.to_string())
}

impl MysqlSource {
    /// A source `name` for `url` (`mysql://user:password@host:port/database`), with the password
    /// given apart when `password` is set. Nothing is connected yet.
    ///
    /// # Errors
    /// When `url` cannot be parsed.
    pub fn new(
        name: &str,
        url: &str,
        password: Option<&str>,
        options: MysqlOptions,
    ) -> Result<Self> {
        let opts = Opts::from_url(url).map_err(|e| {
            Error::invalid(format!("invalid MySQL connection URL: {e}")).with_source(name)
        })?;
        let database = opts.db_name().map(str::to_string);
        let identity = SourceIdentity {
            backend: "mysql".into(),
            endpoint: format!("{}:{}", opts.ip_or_hostname(), opts.tcp_port()),
            database: database.clone().unwrap_or_default(),
            principal: opts.user().unwrap_or_default().to_string(),
        };
        let mut builder = OptsBuilder::from_opts(opts)
            .init(SESSION_SETUP.to_vec())
            .pool_opts(
                PoolOpts::default()
                    .with_constraints(PoolConstraints::new(0, 16).unwrap_or_default()),
            )
            .prefer_socket(false);
        if let Some(password) = password {
            builder = builder.pass(Some(password));
        }
        if let Some(root) = &options.tls_root_cert {
            builder = builder.ssl_opts(Some(
                mysql_async::SslOpts::default().with_root_certs(vec![root.clone().into()]),
            ));
        }
        let flavor = OnceLock::new();
        if let Some(f) = options.flavor {
            let _ = flavor.set(f);
        }
        Ok(Self {
            name: name.to_string(),
            pool: Pool::new(builder.clone()),
            opts: builder,
            identity,
            database,
            flavor,
            buffer_pool: OnceLock::new(),
            options,
        })
    }

    /// Runs `sql` in the server over the text protocol (as its command-line client does) and
    /// counts the rows without decoding them into Arrow (for benchmarks).
    pub async fn run_natively(&self, sql: &str) -> Result<u64> {
        use futures::StreamExt;
        let mut conn = self.connection().await?;
        let mut result = conn
            .query_iter(sql)
            .await
            .map_err(|e| self.named(error(&e, "running the query")))?;
        let mut count = 0;
        if let Some(mut rows) = result
            .stream::<Row>()
            .await
            .map_err(|e| self.named(error(&e, "reading rows")))?
        {
            while let Some(row) = rows.next().await {
                row.map_err(|e| self.named(error(&e, "reading rows")))?;
                count += 1;
            }
        }
        Ok(count)
    }

    /// `host`, `port`, `user` and `password` of the connection, for command-line tools.
    pub fn connection_parts(&self) -> (String, u16, String, Option<String>) {
        let opts = Opts::from(self.opts.clone());
        (
            opts.ip_or_hostname().to_string(),
            opts.tcp_port(),
            opts.user().unwrap_or_default().to_string(),
            opts.pass().map(str::to_string),
        )
    }

    /// A pooled connection (see [`get_connection`]); learns the flavor on first contact.
    pub(crate) async fn connection(&self) -> Result<Conn> {
        let mut conn = get_connection(&self.pool)
            .await
            .map_err(|e| e.with_source(&self.name))?;
        if self.flavor.get().is_none() {
            let version: Option<String> = conn
                .query_first("SELECT VERSION()")
                .await
                .map_err(|e| self.named(error(&e, "reading the server version")))?;
            let _ = self
                .flavor
                .set(Flavor::from_version(&version.unwrap_or_default()));
        }
        if self.buffer_pool.get().is_none() {
            // Only sharpens the cost of lookups: a server that does not say keeps the default.
            let bytes: Option<u64> = conn
                .query_first("SELECT @@innodb_buffer_pool_size")
                .await
                .ok()
                .flatten();
            let _ = self.buffer_pool.set(bytes.map(|b| b as f64));
        }
        Ok(conn)
    }

    fn named(&self, e: Error) -> Error {
        e.with_source(&self.name)
    }

    async fn rows(&self, sql: &str, params: Vec<mysql_async::Value>) -> Result<Vec<Row>> {
        let mut conn = self.connection().await?;
        conn.exec(sql, params)
            .await
            .map_err(|e| self.named(error(&e, "reading information_schema")))
    }

    /// MariaDB's engine-independent statistics of the table's columns (`mysql.column_stats`,
    /// written by `ANALYZE TABLE`); none on MySQL and TiDB, for a table never analyzed, or
    /// where the user may not read them — they only sharpen estimates.
    async fn column_stats(&self, schema: &str, table: &str) -> Vec<ColumnStats> {
        if self.flavor.get() != Some(&Flavor::MariaDb) {
            return Vec::new();
        }
        let rows = self
            .rows(
                "SELECT column_name, min_value, max_value, nulls_ratio + 0e0, \
                 avg_length + 0e0, avg_frequency + 0e0 FROM mysql.column_stats \
                 WHERE db_name = ? AND table_name = ?",
                vec![schema.into(), table.into()],
            )
            .await
            .unwrap_or_default();
        rows.iter()
            .map(|r| ColumnStats {
                column: text(r, 0),
                min: r
                    .get_opt::<Option<String>, _>(1)
                    .and_then(Result::ok)
                    .flatten(),
                max: r
                    .get_opt::<Option<String>, _>(2)
                    .and_then(Result::ok)
                    .flatten(),
                nulls_ratio: float(r, 3),
                avg_length: float(r, 4),
                avg_frequency: float(r, 5),
            })
            .collect()
    }

    /// The signed integer column leading the primary key of `schema.table`, with its range.
    async fn split_key(&self, schema: &str, table: &str) -> Result<Option<SplitKey>> {
        let key = self
            .rows(
                "SELECT c.COLUMN_NAME FROM information_schema.STATISTICS s \
                 JOIN information_schema.COLUMNS c ON c.TABLE_SCHEMA = s.TABLE_SCHEMA \
                 AND c.TABLE_NAME = s.TABLE_NAME AND c.COLUMN_NAME = s.COLUMN_NAME \
                 WHERE s.TABLE_SCHEMA = ? AND s.TABLE_NAME = ? AND s.INDEX_NAME = 'PRIMARY' \
                 AND s.SEQ_IN_INDEX = 1 AND c.DATA_TYPE IN ('tinyint', 'smallint', 'mediumint', \
                 'int', 'bigint') AND c.COLUMN_TYPE NOT LIKE '%unsigned%'",
                vec![schema.into(), table.into()],
            )
            .await?;
        let Some(column) = key.first().map(|r| text(r, 0)) else {
            return Ok(None);
        };
        let dialect = Source::dialect(self);
        let quoted = dialect.quote_identifier(&column);
        let sql = format!(
            "SELECT CAST(MIN({quoted}) AS SIGNED), CAST(MAX({quoted}) AS SIGNED) FROM {}.{}",
            dialect.quote_identifier(schema),
            dialect.quote_identifier(table)
        );
        let range = self.rows(&sql, vec![]).await?;
        let bound = |i| {
            range
                .first()
                .and_then(|r| r.get_opt::<Option<i64>, _>(i))
                .and_then(std::result::Result::ok)
                .flatten()
        };
        Ok(match (bound(0), bound(1)) {
            (Some(min), Some(max)) => Some(SplitKey { column, min, max }),
            _ => None,
        })
    }

    /// `AND <column> = ?` limiting a catalog query to the URL's database, with its parameter.
    fn database_filter(&self, column: &str) -> (String, Vec<mysql_async::Value>) {
        match &self.database {
            Some(db) => (format!(" AND {column} = ?"), vec![db.clone().into()]),
            None => (String::new(), vec![]),
        }
    }
}

#[async_trait]
impl Source for MysqlSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn identity(&self) -> &SourceIdentity {
        &self.identity
    }

    fn dialect(&self) -> &dyn Dialect {
        self.flavor
            .get()
            .copied()
            .unwrap_or(Flavor::MySql)
            .dialect()
    }

    /// The flavor's costs, with lookups weighed against this server's buffer pool.
    fn costs(&self) -> EngineCosts {
        let costs = self.dialect().costs();
        match self.buffer_pool.get().copied().flatten() {
            Some(bytes) if costs.cache_bytes.is_finite() => EngineCosts {
                cache_bytes: bytes,
                ..costs
            },
            _ => costs,
        }
    }

    async fn schemas(&self) -> Result<Vec<String>> {
        let (filter, params) = self.database_filter("SCHEMA_NAME");
        let sql = format!(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA \
             WHERE SCHEMA_NAME NOT IN {SYSTEM_SCHEMAS}{filter} ORDER BY 1"
        );
        let rows = self.rows(&sql, params).await?;
        Ok(rows.iter().map(|r| text(r, 0)).collect())
    }

    async fn tables(&self) -> Result<Vec<TableName>> {
        let (filter, params) = self.database_filter("TABLE_SCHEMA");
        let sql = format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA NOT IN {SYSTEM_SCHEMAS}{filter} ORDER BY 1, 2"
        );
        let rows = self.rows(&sql, params).await?;
        Ok(rows
            .into_iter()
            .map(|r| TableName {
                schema: text(&r, 0),
                name: text(&r, 1),
                table_type: table_type(&text(&r, 2)),
            })
            .collect())
    }

    async fn describe(&self, schema: &str, table: &str) -> Result<Option<RemoteTable>> {
        let tables = self
            .rows(
                "SELECT TABLE_TYPE, TABLE_ROWS, DATA_LENGTH FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                vec![schema.into(), table.into()],
            )
            .await?;
        let Some(found) = tables.first() else {
            return Ok(None);
        };
        let table_type = table_type(&text(found, 0));
        let table_rows = number(found, 1);
        let data_length = number(found, 2).filter(|_| table_type == TableType::Base);
        let columns = self
            .rows(
                "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, NUMERIC_PRECISION, \
                 NUMERIC_SCALE FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                vec![schema.into(), table.into()],
            )
            .await?;
        // Columns an index starts with (MariaDB joins without an index by nested loops), with
        // the index's estimate of their distinct values.
        let leading: Vec<(String, Option<u64>)> = self
            .rows(
                "SELECT COLUMN_NAME, MAX(CARDINALITY) FROM information_schema.STATISTICS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND SEQ_IN_INDEX = 1 \
                 GROUP BY COLUMN_NAME",
                vec![schema.into(), table.into()],
            )
            .await?
            .iter()
            .map(|r| (text(r, 0), number(r, 1)))
            .collect();
        let leader = |name: &str| leading.iter().find(|(l, _)| l.eq_ignore_ascii_case(name));
        let mut fields = Vec::new();
        let mut opaque = Vec::new();
        let mut indexed = Vec::new();
        for row in &columns {
            let name = text(row, 0);
            let (data_type, column_type) = (text(row, 1), text(row, 2));
            let nullable = text(row, 3);
            let declared = DeclaredColumn {
                data_type: &data_type,
                column_type: &column_type,
                precision: number(row, 4),
                scale: number(row, 5),
            };
            let Some((arrow, is_opaque)) = arrow_type(&declared) else {
                match self.options.unsupported_types {
                    UnsupportedTypes::Skip => continue,
                    UnsupportedTypes::Error => {
                        return Err(self.named(Error::new(
                            ErrorKind::Unsupported,
                            format!(
                                "table {schema}.{table}, column '{name}': type {column_type} is \
                                 not supported (set unsupported_types = \"skip\" to leave such \
                                 columns out)"
                            ),
                        )));
                    }
                }
            };
            indexed.push(leader(&name).is_some());
            fields.push(Field::new(name, arrow, nullable == "YES"));
            opaque.push(is_opaque);
        }
        // InnoDB's TABLE_ROWS is an estimate, which is all the planner wants.
        let row_estimate = table_rows
            .filter(|_| table_type == TableType::Base)
            .map(|r| r as usize);
        let split_key = match row_estimate {
            Some(rows) if rows >= SPLIT_MIN_ROWS => self.split_key(schema, table).await?,
            _ => None,
        };
        let column_estimates = match row_estimate {
            Some(rows) => {
                let histograms = self.column_stats(schema, table).await;
                fields
                    .iter()
                    .map(|field| {
                        let distinct = leader(field.name()).and_then(|(_, n)| *n);
                        let stats = histograms
                            .iter()
                            .find(|s| s.column.eq_ignore_ascii_case(field.name()));
                        column_estimate(field, rows as f64, distinct, stats)
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        Ok(Some(RemoteTable {
            column_estimates,
            schema: schema.to_string(),
            name: table.to_string(),
            arrow_schema: Arc::new(Schema::new(fields)),
            opaque,
            indexed: Some(indexed),
            table_type,
            row_estimate,
            bytes: data_length,
            split_key,
        }))
    }

    fn execute(
        &self,
        sql: &str,
        schema: SchemaRef,
        batch_size: usize,
    ) -> DfResult<SendableRecordBatchStream> {
        crate::exec::stream(
            &self.pool,
            &self.name,
            self.options.zero_dates,
            sql,
            schema,
            batch_size,
        )
    }

    async fn write(&self, target: WriteTarget, data: SendableRecordBatchStream) -> Result<u64> {
        let conn = self.connection().await?;
        // The flavor is known once connected.
        crate::write::write(conn, Source::dialect(self), &target, data)
            .await
            .map_err(|e| self.named(e))
    }
}

/// A text cell of a catalog row (empty when NULL or not text).
fn text(row: &Row, i: usize) -> String {
    row.get_opt::<Option<String>, _>(i)
        .and_then(Result::ok)
        .flatten()
        .unwrap_or_default()
}

/// One column's row of MariaDB's `mysql.column_stats`.
#[derive(Debug)]
struct ColumnStats {
    column: String,
    min: Option<String>,
    max: Option<String>,
    nulls_ratio: Option<f64>,
    avg_length: Option<f64>,
    /// Rows per distinct non-NULL value.
    avg_frequency: Option<f64>,
}

/// What is known of `field` in a table of `rows` rows: the distinct values of an index that
/// starts with it (`index_distinct`, InnoDB's sampled cardinality) and, where analyzed,
/// MariaDB's column statistics (whose distinct count wins: it counts every row).
fn column_estimate(
    field: &Field,
    rows: f64,
    index_distinct: Option<u64>,
    stats: Option<&ColumnStats>,
) -> ColumnEstimate {
    let mut estimate = ColumnEstimate {
        distinct: index_distinct.map(|n| n as f64),
        ..ColumnEstimate::default()
    };
    if let Some(stats) = stats {
        let bound = |text: &Option<String>| {
            text.as_deref()
                .and_then(|t| bound_from_text(t, field.data_type()))
        };
        estimate.min = bound(&stats.min);
        estimate.max = bound(&stats.max);
        estimate.null_fraction = stats.nulls_ratio;
        estimate.width = stats.avg_length;
        if let (Some(per_value), Some(nulls)) = (stats.avg_frequency, stats.nulls_ratio)
            && per_value > 0.0
        {
            estimate.distinct = Some(rows * (1.0 - nulls) / per_value);
        }
    }
    estimate
}

/// A floating-point cell of a catalog row.
fn float(row: &Row, i: usize) -> Option<f64> {
    row.get_opt::<Option<f64>, _>(i)
        .and_then(Result::ok)
        .flatten()
}

/// A numeric cell of a catalog row.
fn number(row: &Row, i: usize) -> Option<u64> {
    row.get_opt::<Option<u64>, _>(i)
        .and_then(Result::ok)
        .flatten()
}

fn table_type(kind: &str) -> TableType {
    if kind.contains("VIEW") {
        TableType::View
    } else {
        TableType::Base
    }
}
