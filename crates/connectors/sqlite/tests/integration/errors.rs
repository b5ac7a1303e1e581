//! Failures of the database under a running node: each is a clear error naming the source (and
//! the table, through the SQL shown), and the source keeps answering afterwards.

use datafusion::prelude::{SessionConfig, SessionContext};
use flotilla_connectors_sqlite::SqliteSource;
use flotilla_federation::{Source, catalog_of, federated_context};
use rusqlite::Connection;
use std::path::Path;
use std::sync::Arc;

async fn context(path: &Path) -> SessionContext {
    let ctx = federated_context(SessionConfig::new());
    let source: Arc<dyn Source> = Arc::new(SqliteSource::open("lite", path).unwrap());
    ctx.register_catalog("lite", catalog_of(source).await.unwrap());
    ctx
}

async fn query(ctx: &SessionContext, sql: &str) -> Result<usize, String> {
    let batches = ctx
        .sql(sql)
        .await
        .map_err(|e| e.to_string())?
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(batches.iter().map(|b| b.num_rows()).sum())
}

fn database(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("e.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE keep (id INTEGER PRIMARY KEY); INSERT INTO keep VALUES (1), (2);
             CREATE TABLE gone (id INTEGER PRIMARY KEY); INSERT INTO gone VALUES (1);",
        )
        .unwrap();
    path
}

#[tokio::test]
async fn a_table_dropped_after_discovery_is_an_error_naming_source_and_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = database(dir.path());
    let ctx = context(&path).await;
    // Described (and cached) by a first query, then dropped under the running node.
    assert_eq!(
        query(&ctx, "SELECT * FROM lite.main.gone").await.unwrap(),
        1
    );
    Connection::open(&path)
        .unwrap()
        .execute_batch("DROP TABLE gone")
        .unwrap();
    let e = query(&ctx, "SELECT * FROM lite.main.gone")
        .await
        .unwrap_err();
    assert!(e.contains("source 'lite'") && e.contains("gone"), "{e}");
    assert_eq!(
        query(&ctx, "SELECT * FROM lite.main.keep").await.unwrap(),
        2
    );
}

#[tokio::test]
async fn a_locked_database_is_an_error_and_works_again_once_unlocked() {
    let dir = tempfile::tempdir().unwrap();
    let path = database(dir.path());
    let ctx = context(&path).await;
    let writer = Connection::open(&path).unwrap();
    writer
        .execute_batch("BEGIN EXCLUSIVE; INSERT INTO keep VALUES (3);")
        .unwrap();
    let e = query(&ctx, "SELECT * FROM lite.main.keep")
        .await
        .unwrap_err();
    assert!(e.contains("source 'lite'") && e.contains("locked"), "{e}");
    writer.execute_batch("COMMIT").unwrap();
    assert_eq!(
        query(&ctx, "SELECT * FROM lite.main.keep").await.unwrap(),
        3
    );
}

#[tokio::test]
async fn a_corrupted_file_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = database(dir.path());
    let ctx = context(&path).await;
    let other_dir = tempfile::tempdir().unwrap();
    let other = context(&database(other_dir.path())).await;
    // Overwrite everything after the 100-byte header, and bump the header's change counter so
    // that connections holding cached pages read the file again.
    let mut bytes = std::fs::read(&path).unwrap();
    for b in bytes.iter_mut().skip(100) {
        *b = 0xA5;
    }
    bytes[24] = bytes[24].wrapping_add(1);
    std::fs::write(&path, &bytes).unwrap();
    let e = query(&ctx, "SELECT * FROM lite.main.keep")
        .await
        .unwrap_err();
    assert!(e.contains("source 'lite'"), "{e}");
    // Other sources are unaffected.
    assert_eq!(
        query(&other, "SELECT * FROM lite.main.keep").await.unwrap(),
        2
    );
}

#[test]
fn a_missing_or_foreign_file_is_refused_when_the_source_opens() {
    let dir = tempfile::tempdir().unwrap();
    let e = SqliteSource::open("lite", &dir.path().join("none.db")).unwrap_err();
    assert!(
        e.to_string().contains("source 'lite'") && e.to_string().contains("does not exist"),
        "{e}"
    );
    let text = dir.path().join("notes.txt");
    std::fs::write(
        &text,
        "this is not a database, just some text that is long enough",
    )
    .unwrap();
    let e = SqliteSource::open("lite", &text).unwrap_err();
    assert!(e.to_string().contains("source 'lite'"), "{e}");
}

#[tokio::test]
async fn attached_files_are_schemas_of_one_source_and_join_inside_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let main = database(dir.path());
    let archive = dir.path().join("archive.db");
    Connection::open(&archive)
        .unwrap()
        .execute_batch("CREATE TABLE old (id INTEGER PRIMARY KEY, note TEXT); INSERT INTO old VALUES (2, 'two'), (7, 'seven');")
        .unwrap();
    let source: Arc<dyn Source> = Arc::new(
        SqliteSource::open_attached("lite", &main, &[("archive".to_string(), archive)]).unwrap(),
    );
    let ctx = federated_context(SessionConfig::new());
    ctx.register_catalog("lite", catalog_of(source).await.unwrap());
    let sql = "SELECT k.id, o.note FROM lite.main.keep k JOIN lite.archive.old o ON o.id = k.id";
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    assert!(
        text.contains("| 2  | two  |") && batches.iter().map(|b| b.num_rows()).sum::<usize>() == 1,
        "{text}"
    );
    let plan = crate::scan::explain(&ctx, sql).await;
    assert_eq!(plan.matches("FederatedScanExec").count(), 1, "{plan}");
    assert!(plan.contains("\"archive\".\"old\""), "{plan}");
}
