//! Lazy discovery: names are listed when the catalog opens, a table is described when a query
//! first names it and then cached, new tables are found without a refresh, and `refresh`
//! brings changed columns in.

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::Result as DfResult;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::{SessionConfig, SessionContext};
use flotilla_common::Result;
use flotilla_connectors_sqlite::SqliteSource;
use flotilla_federation::{
    Dialect, RemoteTable, Source, SourceCatalog, SourceIdentity, TableName, catalog_of,
    federated_context,
};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The SQLite source, counting how often it is asked to describe a table.
#[derive(Debug)]
struct Counting {
    inner: SqliteSource,
    describes: AtomicUsize,
}

#[async_trait]
impl Source for Counting {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn identity(&self) -> &SourceIdentity {
        self.inner.identity()
    }
    fn dialect(&self) -> &dyn Dialect {
        self.inner.dialect()
    }
    async fn schemas(&self) -> Result<Vec<String>> {
        self.inner.schemas().await
    }
    async fn tables(&self) -> Result<Vec<TableName>> {
        self.inner.tables().await
    }
    async fn describe(&self, schema: &str, table: &str) -> Result<Option<RemoteTable>> {
        self.describes.fetch_add(1, Ordering::SeqCst);
        self.inner.describe(schema, table).await
    }
    fn execute(
        &self,
        sql: &str,
        schema: SchemaRef,
        batch_size: usize,
    ) -> DfResult<SendableRecordBatchStream> {
        self.inner.execute(sql, schema, batch_size)
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    source: Arc<Counting>,
    catalog: Arc<SourceCatalog>,
    ctx: SessionContext,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.db");
        execute(
            &path,
            "CREATE TABLE a (id INTEGER PRIMARY KEY); INSERT INTO a VALUES (1), (2);
             CREATE TABLE b (id INTEGER PRIMARY KEY);
             CREATE VIEW v AS SELECT id FROM a;",
        );
        let source = Arc::new(Counting {
            inner: SqliteSource::open("lite", &path).unwrap(),
            describes: AtomicUsize::new(0),
        });
        let catalog = catalog_of(Arc::clone(&source) as Arc<dyn Source>)
            .await
            .unwrap();
        let ctx = federated_context(SessionConfig::new().with_information_schema(true));
        ctx.register_catalog("lite", Arc::clone(&catalog) as _);
        Self {
            _dir: dir,
            path,
            source,
            catalog,
            ctx,
        }
    }

    fn describes(&self) -> usize {
        self.source.describes.load(Ordering::SeqCst)
    }

    async fn rows(&self, sql: &str) -> std::result::Result<Vec<String>, String> {
        let batches = self
            .ctx
            .sql(sql)
            .await
            .map_err(|e| e.to_string())?
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .map_err(|e| e.to_string())?
            .to_string();
        Ok(text.lines().map(str::to_string).collect())
    }
}

fn execute(path: &Path, sql: &str) {
    Connection::open(path).unwrap().execute_batch(sql).unwrap();
}

#[tokio::test]
async fn tables_are_listed_up_front_and_described_once_on_first_use() {
    let f = Fixture::new().await;
    assert_eq!(
        f.describes(),
        0,
        "opening the catalog must not describe tables"
    );
    let listed = f
        .rows(
            "SELECT table_name || ':' || table_type AS t FROM information_schema.tables \
             WHERE table_catalog = 'lite' ORDER BY 1",
        )
        .await
        .unwrap()
        .join("\n");
    for expected in ["a:BASE TABLE", "b:BASE TABLE", "v:VIEW"] {
        assert!(
            listed.contains(expected),
            "{expected} missing from\n{listed}"
        );
    }
    assert_eq!(f.describes(), 0, "listing tables must not describe them");

    let sql = "SELECT count(*) FROM lite.main.a";
    assert!(f.rows(sql).await.unwrap().join("\n").contains("| 2 "));
    assert_eq!(f.describes(), 1);
    f.rows(sql).await.unwrap();
    assert_eq!(f.describes(), 1, "a described table is cached");
    assert_eq!(f.catalog.described_count(), 1);
}

#[tokio::test]
async fn a_table_created_after_startup_is_found_without_refresh() {
    let f = Fixture::new().await;
    execute(
        &f.path,
        "CREATE TABLE later (x TEXT); INSERT INTO later VALUES ('new');",
    );
    let rows = f.rows("SELECT x FROM lite.main.later").await.unwrap();
    assert!(rows.join("\n").contains("| new |"), "{rows:?}");
    // An unknown name is still an error, and the source keeps answering.
    let e = f.rows("SELECT * FROM lite.main.nowhere").await.unwrap_err();
    assert!(e.contains("nowhere") && e.contains("not found"), "{e}");
    assert!(f.rows("SELECT * FROM lite.main.a").await.is_ok());
}

#[tokio::test]
async fn refresh_brings_in_changed_columns() {
    let f = Fixture::new().await;
    f.rows("SELECT * FROM lite.main.b").await.unwrap();
    execute(
        &f.path,
        "ALTER TABLE b ADD COLUMN label TEXT; INSERT INTO b VALUES (7, 'seven');",
    );
    let e = f.rows("SELECT label FROM lite.main.b").await.unwrap_err();
    assert!(
        e.contains("label"),
        "the cached description is used until refresh: {e}"
    );
    f.catalog.refresh().await.unwrap();
    assert_eq!(f.catalog.described_count(), 0);
    let rows = f.rows("SELECT id, label FROM lite.main.b").await.unwrap();
    assert!(rows.join("\n").contains("| 7  | seven |"), "{rows:?}");
}

#[tokio::test]
async fn a_table_dropped_before_it_was_described_is_unknown() {
    let f = Fixture::new().await;
    execute(&f.path, "DROP TABLE b");
    let e = f.rows("SELECT * FROM lite.main.b").await.unwrap_err();
    assert!(e.contains("not found") && e.contains("b"), "{e}");
    let tables = f
        .rows("SELECT table_name FROM information_schema.tables WHERE table_catalog = 'lite'")
        .await
        .unwrap()
        .join("\n");
    assert!(
        !tables.contains("| b "),
        "a dropped table leaves the listing: {tables}"
    );
}
