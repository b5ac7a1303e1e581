//! The `Source` contract: what a connector provides to the federation engine.

use crate::config::Pushdown;
use crate::dialect::{Dialect, EngineCosts};
use crate::learn::Learned;
use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::Result as DfResult;
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use flotilla_common::{Error, ErrorKind, Result};
use futures::{StreamExt, TryStreamExt};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Which database a source reaches, as a structured value. Two sources with equal identities see
/// the same tables through the same credentials, so a query over both can run inside that one
/// database; sources with different identities never join remotely.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceIdentity {
    /// The kind of server or engine, e.g. `sqlite`, `postgres`.
    pub backend: String,
    /// Where it is: a canonical file path, or `host:port`.
    pub endpoint: String,
    /// The database inside the endpoint (empty where the backend has one per endpoint).
    pub database: String,
    /// Who connects (empty for backends without users).
    pub principal: String,
}

/// What a connector does with a column of a type it cannot read (e.g. PostgreSQL's `point`):
/// `unsupported_types = "error" | "skip"` in flotilla.toml.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnsupportedTypes {
    /// Describing the table fails, naming the column and its type.
    #[default]
    Error,
    /// The column is left out of the table.
    Skip,
}

/// The name of a table or view of a source, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    /// The schema in the remote database.
    pub schema: String,
    /// The table's name in the remote database.
    pub name: String,
    /// Table or view.
    pub table_type: TableType,
}

/// A table or view of a source, as described.
#[derive(Debug, Clone)]
pub struct RemoteTable {
    /// The schema in the remote database (e.g. `main`, `public`).
    pub schema: String,
    /// The table's name in the remote database.
    pub name: String,
    /// Column names and Arrow types, in the table's column order.
    pub arrow_schema: SchemaRef,
    /// Per column: whether the database compares the stored values differently from how
    /// DataFusion compares the decoded ones. Such a column may be read and passed through, but
    /// no filter, join key, grouping or function over it is sent to the database.
    pub opaque: Vec<bool>,
    /// Per column, where the source knows: whether an index starts with it (so the database
    /// can look rows up by it instead of scanning). `None`: unknown or irrelevant.
    pub indexed: Option<Vec<bool>>,
    /// Table or view.
    pub table_type: TableType,
    /// An estimate of the row count, where the source knows one cheaply; DataFusion uses it to
    /// order joins (the smaller side builds the hash table).
    pub row_estimate: Option<usize>,
    /// The bytes the table's rows take in the database (without its indexes), where the source
    /// says cheaply: whether the database's memory holds the table decides what a lookup into
    /// it costs. The cost model takes the larger of this and its rows times the width of its
    /// columns' types (a database may not have updated it since the table was loaded).
    pub bytes: Option<u64>,
    /// An integer column that leads the primary key, with its range: a big scan of the table is
    /// split into key ranges read in parallel. `None` where there is none (or the table is small).
    pub split_key: Option<SplitKey>,
    /// Per column, in the table's column order, what the source's statistics say of it; empty
    /// where the source keeps none (or was never asked to compute them, e.g. not analyzed).
    pub column_estimates: Vec<ColumnEstimate>,
}

/// What a source's statistics say about one column of a table. Every figure is an estimate
/// (databases compute them from samples, at their last `ANALYZE`): they order joins and choose
/// cuts, never decide a result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ColumnEstimate {
    /// The share of rows where the column is NULL, `0..=1`.
    pub null_fraction: Option<f64>,
    /// How many distinct non-NULL values the column holds.
    pub distinct: Option<f64>,
    /// The smallest value, of the column's Arrow type (left out where the database orders
    /// values differently from DataFusion, e.g. text under a collation).
    pub min: Option<ScalarValue>,
    /// The largest value, as `min`.
    pub max: Option<ScalarValue>,
    /// Average bytes of a value.
    pub width: Option<f64>,
}

impl RemoteTable {
    /// What the source's statistics say of column `c`, where they say anything.
    pub fn column_estimate(&self, c: usize) -> Option<&ColumnEstimate> {
        self.column_estimates.get(c)
    }

    /// Whether an index of the table starts with column `c` (false where the source does not
    /// say).
    pub fn is_indexed(&self, c: usize) -> bool {
        self.indexed
            .as_ref()
            .and_then(|indexed| indexed.get(c).copied())
            .unwrap_or(false)
    }
}

/// An indexed integer column and the smallest and largest values it held when described.
/// The column may also be one the database keeps out of the table's columns but lets
/// conditions name (SQLite's `_rowid_` of a table whose primary key is not an `INTEGER
/// PRIMARY KEY`): only the ranges of a split scan name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitKey {
    pub column: String,
    pub min: i64,
    pub max: i64,
}

impl SplitKey {
    /// `n` half-open ranges covering every value: the first has no lower bound and the last no
    /// upper bound (so rows added outside `min..=max` since are still read); `None` stands for
    /// no bound. Fewer than `n` when the range has fewer values.
    pub fn ranges(&self, n: usize) -> Vec<(Option<i64>, Option<i64>)> {
        let width = i128::from(self.max) - i128::from(self.min) + 1;
        let n = (n as i128).clamp(1, width.max(1));
        let bounds: Vec<i64> = (1..n)
            .map(|i| (i128::from(self.min) + width * i / n) as i64)
            .collect();
        let mut ranges = Vec::with_capacity(n as usize);
        let mut low = None;
        for bound in bounds {
            ranges.push((low, Some(bound)));
            low = Some(bound);
        }
        ranges.push((low, None));
        ranges
    }
}

/// The table rows written to a source go into.
#[derive(Debug, Clone)]
pub enum WriteTarget {
    /// An existing table as described; the rows have its Arrow schema.
    Append(RemoteTable),
    /// A table the write creates, with a column of the database's closest type for each field
    /// of `columns`; the rows have that schema.
    Create {
        schema: String,
        name: String,
        columns: SchemaRef,
    },
}

/// A write target's names as SQL for one dialect.
#[derive(Debug, Clone)]
pub struct TargetSql {
    /// `"schema"."table"`.
    pub table: String,
    /// `"a", "b", …`: the columns written, in order.
    pub columns: String,
}

impl WriteTarget {
    /// The schema written into.
    pub fn schema(&self) -> &str {
        match self {
            WriteTarget::Append(table) => &table.schema,
            WriteTarget::Create { schema, .. } => schema,
        }
    }

    /// The table written into.
    pub fn table(&self) -> &str {
        match self {
            WriteTarget::Append(table) => &table.name,
            WriteTarget::Create { name, .. } => name,
        }
    }

    /// The columns written, in order, with the rows' Arrow types.
    pub fn columns(&self) -> &SchemaRef {
        match self {
            WriteTarget::Append(table) => &table.arrow_schema,
            WriteTarget::Create { columns, .. } => columns,
        }
    }

    /// The qualified table name and the column list, quoted for `dialect`.
    pub fn sql(&self, dialect: &dyn Dialect) -> TargetSql {
        let columns = self
            .columns()
            .fields()
            .iter()
            .map(|f| dialect.quote_identifier(f.name()))
            .collect::<Vec<_>>()
            .join(", ");
        TargetSql {
            table: format!(
                "{}.{}",
                dialect.quote_identifier(self.schema()),
                dialect.quote_identifier(self.table())
            ),
            columns,
        }
    }

    /// `schema.table` as the user would write it.
    pub fn display_name(&self) -> String {
        match self {
            WriteTarget::Append(table) => format!("{}.{}", table.schema, table.name),
            WriteTarget::Create { schema, name, .. } => format!("{schema}.{name}"),
        }
    }
}

/// A database Flotilla can send SQL to. Connectors implement it; the engine knows no database.
#[async_trait]
pub trait Source: Debug + Send + Sync {
    /// The source's name in the configuration (its catalog name in SQL).
    fn name(&self) -> &str;

    /// Which database this is; decides what may be joined inside it.
    fn identity(&self) -> &SourceIdentity;

    /// How to write SQL for this database, and what it can run.
    fn dialect(&self) -> &dyn Dialect;

    /// What the database's engine takes per unit of work: its dialect's figures, which a
    /// source may adjust to the server it reached (its memory, say).
    fn costs(&self) -> EngineCosts {
        self.dialect().costs()
    }

    /// How much of a query this source takes when the session's pushdown is `cost`: `None`
    /// (the default) lets the cost model choose; a user who knows the database set `all` or
    /// `none` for it in flotilla.toml (see [`with_pushdown`]).
    fn pushdown(&self) -> Option<Pushdown> {
        None
    }

    /// How many statements of this source may run at once on this node (`max_connections`
    /// in flotilla.toml); `None`: no limit. A scan is never split into more key ranges.
    fn max_connections(&self) -> Option<usize> {
        None
    }

    /// What this node has learned of the source's speed from its statements (see
    /// [`with_learning`]); `None`: it does not learn.
    fn learned(&self) -> Option<&Learned> {
        None
    }

    /// The names of the source's schemas, including empty ones. Cheap: names only.
    async fn schemas(&self) -> Result<Vec<String>>;

    /// The names of every table and view the source exposes. Cheap: no columns.
    async fn tables(&self) -> Result<Vec<TableName>>;

    /// The columns, types and row estimate of one table or view; `None` when it does not exist.
    async fn describe(&self, schema: &str, table: &str) -> Result<Option<RemoteTable>>;

    /// Runs `sql` and streams its rows as batches of at most `batch_size` rows with `schema`
    /// (the columns of `sql`'s result, in order). Dropping the stream stops the statement.
    fn execute(
        &self,
        sql: &str,
        schema: SchemaRef,
        batch_size: usize,
    ) -> DfResult<SendableRecordBatchStream>;

    /// Writes every row of `data` into `target` atomically: all rows land, or — on any error,
    /// including one from `data` itself — none do and a table being created does not remain.
    /// Returns the number of rows written. Sources that cannot write keep this default.
    async fn write(&self, target: WriteTarget, data: SendableRecordBatchStream) -> Result<u64> {
        drop(data);
        Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "cannot write to {}: this source is read-only",
                target.display_name()
            ),
        )
        .with_source(self.name()))
    }
}

/// `source`, taking `pushdown` when the session's pushdown is `cost` (`pushdown = "all"` in
/// flotilla.toml for a database the user knows runs whole queries fast).
pub fn with_pushdown(source: Arc<dyn Source>, pushdown: Pushdown) -> Arc<dyn Source> {
    Arc::new(Adjusted {
        pushdown: Some(pushdown),
        ..Adjusted::of(source)
    })
}

/// `source`, learning how fast it runs from the statements this node sends it, for the cost
/// of the parts of later queries (see [`crate::learn`]).
pub fn with_learning(source: Arc<dyn Source>) -> Arc<dyn Source> {
    Arc::new(Adjusted {
        learned: Some(Learned::default()),
        ..Adjusted::of(source)
    })
}

/// How long a statement waits for one of its source's connections before it fails.
pub const CONNECTION_WAIT: Duration = Duration::from_secs(60);

/// `source`, running at most `max` statements (reads and writes) at once on this node
/// (`max_connections` in flotilla.toml): a statement waits for one of the others to end, up
/// to `wait`, and then fails saying so. A statement takes its turn when its rows are first
/// asked for (the probe side of a hash join after the build side), so the scans of a query
/// that the query reads one after another do not hold connections the others wait for.
pub fn with_connection_limit(
    source: Arc<dyn Source>,
    max: usize,
    wait: Duration,
) -> Arc<dyn Source> {
    let max = max.max(1);
    Arc::new(Adjusted {
        limit: Some(Arc::new(ConnectionLimit {
            turns: Arc::new(Semaphore::new(max)),
            max,
            wait,
        })),
        ..Adjusted::of(source)
    })
}

/// The turns of a source's statements (see [`with_connection_limit`]).
#[derive(Debug)]
struct ConnectionLimit {
    turns: Arc<Semaphore>,
    max: usize,
    wait: Duration,
}

impl ConnectionLimit {
    /// A turn, or an error once `wait` has passed without one.
    async fn turn(&self, source: &str) -> Result<OwnedSemaphorePermit> {
        let busy = || {
            Error::new(
                ErrorKind::ResourceExhausted,
                format!(
                    "all {} connections (sources.{source}.max_connections) were busy for {} s; \
                     the statement did not run",
                    self.max,
                    self.wait.as_secs_f64()
                ),
            )
            .with_source(source)
        };
        match tokio::time::timeout(self.wait, Arc::clone(&self.turns).acquire_owned()).await {
            Ok(Ok(turn)) => Ok(turn),
            _ => Err(busy()),
        }
    }
}

/// `source`, its engine costs what `adjust` makes of those it reports (asked again each time,
/// so what a source learns on first contact — a server's memory — still counts): for a
/// server that differs from what its dialect's figures assume.
pub fn with_costs(
    source: Arc<dyn Source>,
    adjust: fn(EngineCosts) -> EngineCosts,
) -> Arc<dyn Source> {
    Arc::new(Adjusted {
        costs: Some(adjust),
        ..Adjusted::of(source)
    })
}

/// A source with a pushdown, costs, a connection limit or learning of its own; everything else
/// is the source's.
#[derive(Debug)]
struct Adjusted {
    source: Arc<dyn Source>,
    pushdown: Option<Pushdown>,
    costs: Option<fn(EngineCosts) -> EngineCosts>,
    limit: Option<Arc<ConnectionLimit>>,
    learned: Option<Learned>,
}

impl Adjusted {
    /// `source` as it is.
    fn of(source: Arc<dyn Source>) -> Self {
        Self {
            source,
            pushdown: None,
            costs: None,
            limit: None,
            learned: None,
        }
    }
}

#[async_trait]
impl Source for Adjusted {
    fn name(&self) -> &str {
        self.source.name()
    }

    fn identity(&self) -> &SourceIdentity {
        self.source.identity()
    }

    fn dialect(&self) -> &dyn Dialect {
        self.source.dialect()
    }

    fn costs(&self) -> EngineCosts {
        let costs = self.source.costs();
        self.costs.map_or(costs, |adjust| adjust(costs))
    }

    fn pushdown(&self) -> Option<Pushdown> {
        self.pushdown.or_else(|| self.source.pushdown())
    }

    fn learned(&self) -> Option<&Learned> {
        self.learned.as_ref().or_else(|| self.source.learned())
    }

    fn max_connections(&self) -> Option<usize> {
        match (&self.limit, self.source.max_connections()) {
            (Some(limit), Some(inner)) => Some(limit.max.min(inner)),
            (Some(limit), None) => Some(limit.max),
            (None, inner) => inner,
        }
    }

    async fn schemas(&self) -> Result<Vec<String>> {
        self.source.schemas().await
    }

    async fn tables(&self) -> Result<Vec<TableName>> {
        self.source.tables().await
    }

    async fn describe(&self, schema: &str, table: &str) -> Result<Option<RemoteTable>> {
        self.source.describe(schema, table).await
    }

    fn execute(
        &self,
        sql: &str,
        schema: SchemaRef,
        batch_size: usize,
    ) -> DfResult<SendableRecordBatchStream> {
        let Some(limit) = &self.limit else {
            return self.source.execute(sql, schema, batch_size);
        };
        let (limit, source, sql) = (Arc::clone(limit), Arc::clone(&self.source), sql.to_string());
        let inner_schema = Arc::clone(&schema);
        let rows = futures::stream::once(async move {
            let turn = limit
                .turn(source.name())
                .await
                .map_err(Error::into_datafusion)?;
            let rows = source.execute(&sql, inner_schema, batch_size)?;
            // The turn is held as long as the statement's rows are.
            Ok::<_, DataFusionError>(rows.inspect(move |_| {
                let _ = &turn;
            }))
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, rows)))
    }

    async fn write(&self, target: WriteTarget, data: SendableRecordBatchStream) -> Result<u64> {
        let _turn = match &self.limit {
            Some(limit) => Some(limit.turn(self.source.name()).await?),
            None => None,
        };
        self.source.write(target, data).await
    }
}
