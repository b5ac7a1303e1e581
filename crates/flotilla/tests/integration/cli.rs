//! The command line: configuration errors, SQL errors, `sql` over the demo data, the demo.

use crate::common::{demo_cache, demo_data, flotilla, flotilla_in, text, tpch_query};
use datafusion::arrow::csv::ReaderBuilder;
use datafusion::arrow::csv::reader::Format;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use flotilla_testkit::plans::without_aliases;
use flotilla_testkit::{Decimals, assert_same_rows_with, query_is_ordered};
use std::io::Cursor;
use std::sync::Arc;

/// Writes `config` as flotilla.toml in a new temp dir and runs `flotilla sql` there.
fn sql_with_config(config: &str, query: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("flotilla.toml"), config).unwrap();
    std::fs::write(dir.path().join("empty.db"), b"").unwrap();
    let out = flotilla_in(dir.path(), &["sql", "--config", "flotilla.toml", query]);
    let (stdout, stderr) = text(&out);
    (out.status.success(), stdout, stderr)
}

/// A one-line error on stderr that names the file, line and key.
fn assert_config_error(stderr: &str, location: &str, words: &str) {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got:\n{stderr}");
    assert!(
        lines[0].starts_with(&format!("error: {location}")),
        "{stderr}"
    );
    assert!(lines[0].contains(words), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn an_unknown_source_kind_is_a_one_line_error_with_its_location() {
    let (ok, _, stderr) = sql_with_config(
        "[sources.x]\nkind = \"oracle\"\npath = \"empty.db\"\n",
        "SELECT 1",
    );
    assert!(!ok);
    assert_config_error(
        &stderr,
        "flotilla.toml:2:8: sources.x.kind",
        "unknown source kind 'oracle'",
    );
}

#[test]
fn a_missing_file_is_a_one_line_error_with_its_location() {
    let (ok, _, stderr) = sql_with_config(
        "# comment\n[sources.shop]\nkind = \"sqlite\"\npath = \"nowhere.db\"\n",
        "SELECT 1",
    );
    assert!(!ok);
    assert_config_error(
        &stderr,
        "flotilla.toml:4:8: sources.shop.path",
        "nowhere.db does not exist",
    );
}

#[test]
fn a_misspelled_key_is_a_one_line_error_with_its_location() {
    let (ok, _, stderr) = sql_with_config(
        "[sources.shop]\nkind = \"sqlite\"\npaht = \"empty.db\"\n",
        "SELECT 1",
    );
    assert!(!ok);
    assert_config_error(
        &stderr,
        "flotilla.toml:3:1: sources.shop",
        "unknown key 'paht'",
    );
    let (ok, _, stderr) = sql_with_config("[sesion]\ndefault_catalog = \"x\"\n", "SELECT 1");
    assert!(!ok);
    assert_config_error(&stderr, "flotilla.toml:1:2", "unknown key 'sesion'");
}

#[test]
fn a_file_that_is_not_sqlite_is_reported_with_the_source() {
    let (ok, _, stderr) = sql_with_config(
        "[sources.shop]\nkind = \"sqlite\"\npath = \"flotilla.toml\"\n",
        "SELECT 1",
    );
    assert!(!ok);
    assert!(stderr.contains("source 'shop'"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The query limits hold in `flotilla sql` too, set in the file's `[session.options]` or with
/// `SET`.
#[test]
fn sql_stops_a_query_past_its_timeout_and_over_its_memory_limit() {
    let config = "[session.options]\n\"flotilla.statement_timeout\" = \"300ms\"\n";
    let (ok, _, stderr) = sql_with_config(
        config,
        "SELECT 1; SELECT sum(value) FROM generate_series(1, 10000000000)",
    );
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("flotilla.statement_timeout (300ms)"),
        "{stderr}"
    );
    let out = flotilla(&[
        "sql",
        // A hash join's build side cannot spill: it fails at once.
        "SET flotilla.query_memory_limit = '64K'; SELECT count(*) FROM \
         generate_series(1, 200000) a JOIN generate_series(1, 200000) b ON a.value = b.value",
    ]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("flotilla.query_memory_limit (65536 bytes)"),
        "{stderr}"
    );
}

#[test]
fn bad_sql_gives_datafusions_message_not_a_panic() {
    let out = flotilla(&["sql", "SELEC 1"]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("SQL error") && stderr.contains("SELEC"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let out = flotilla(&["sql", "SELECT * FROM no.such.table"]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("no.such.table") && stderr.contains("not found"),
        "{stderr}"
    );
}

#[test]
fn statements_run_from_files_stdin_and_arguments_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("two.sql");
    std::fs::write(&file, "SELECT 1 AS a; SELECT 'x;y' AS b;").unwrap();
    let out = flotilla(&["sql", "-q", "--format", "csv", "-f", file.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout, "a\n1\nb\nx;y\n");
    let out = flotilla(&[
        "sql",
        "-q",
        "--format",
        "json",
        "SELECT 1 AS a UNION ALL SELECT 2 ORDER BY a",
    ]);
    assert_eq!(text(&out).0.trim(), r#"[{"a":1},{"a":2}]"#);
    let out = flotilla(&["sql", "-q", "--format", "ndjson", "SELECT 1 AS a"]);
    assert_eq!(text(&out).0.trim(), r#"{"a":1}"#);
    let out = flotilla(&["sql", "-q", "SELECT 1 AS a"]);
    assert!(text(&out).0.contains("| a |"), "{}", text(&out).0);
    // A statement without a result prints no empty table, and says it is done.
    let out = flotilla(&[
        "sql",
        "SET datafusion.execution.batch_size = 1000; SELECT 2 AS b",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(stdout.starts_with("+---+\n| b |"), "{stdout}");
    assert!(stderr.starts_with("done in "), "{stderr}");
    assert!(stderr.contains("1 row in "), "{stderr}");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(["sql", "-q", "--format", "csv"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SELECT 40 + 2 AS answer;\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "answer\n42\n");
}

#[test]
fn the_demo_joins_sqlite_with_parquet_and_shows_what_sqlite_was_sent() {
    let (cache, first_run) = demo_cache();
    assert!(
        first_run.contains("FederatedScanExec: source=shop, sql=SELECT"),
        "{first_run}"
    );
    assert!(first_run.contains("DataSourceExec") && first_run.contains("file_type=parquet"));
    // The filter on the SQLite side reaches SQLite.
    assert!(
        without_aliases(first_run).contains(r#"WHERE ("c_mktsegment" = 'BUILDING')"#),
        "{first_run}"
    );
    // A second run reuses the cache and prints the same results.
    let out = flotilla(&[
        "demo",
        "--scale",
        "0.01",
        "--cache-dir",
        cache.to_str().unwrap(),
    ]);
    let (second_run, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("First run"), "{stderr}");
    let results = |s: &str| {
        s.lines()
            .filter(|l| l.starts_with('|'))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(results(first_run), results(&second_run));
    assert!(!results(&second_run).is_empty());
}

/// Reads CSV printed by `flotilla sql --format csv`, inferring the types.
fn read_csv(text: &str) -> Vec<datafusion::arrow::record_batch::RecordBatch> {
    let format = Format::default().with_header(true);
    let (schema, _) = format
        .infer_schema(Cursor::new(text.as_bytes()), None)
        .unwrap();
    ReaderBuilder::new(Arc::new(schema))
        .with_format(format)
        .build(Cursor::new(text.as_bytes()))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_over_the_demo_sqlite_answers_tpch_q1_like_datafusion_over_parquet() {
    let data = demo_data();
    let config = data.join("q1.toml");
    std::fs::write(
        &config,
        "[sources.shop]\nkind = \"sqlite\"\npath = \"sqlite/tpch.sqlite\"\n\n\
         [session]\ndefault_catalog = \"shop\"\ndefault_schema = \"main\"\n",
    )
    .unwrap();
    let q1 = tpch_query(1);
    let out = flotilla(&[
        "sql",
        "-q",
        "--config",
        config.to_str().unwrap(),
        "--format",
        "csv",
        &q1,
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let from_flotilla = read_csv(&stdout);

    // The independent path: DataFusion alone over the Parquet files.
    let ctx = SessionContext::new();
    let lineitem = data.join("parquet/lineitem.parquet");
    ctx.register_parquet(
        "lineitem",
        lineitem.to_str().unwrap(),
        ParquetReadOptions::default(),
    )
    .await
    .unwrap();
    let expected = ctx.sql(&q1).await.unwrap().collect().await.unwrap();
    assert_eq!(expected.iter().map(|b| b.num_rows()).sum::<usize>(), 4);
    // The query runs inside SQLite, which computes decimals in floating point.
    assert_same_rows_with(
        &expected,
        &from_flotilla,
        query_is_ordered(&q1),
        Decimals::LastDigit,
    );
}

#[test]
fn help_explains_every_command() {
    let (stdout, _) = text(&flotilla(&["--help"]));
    for command in ["sql", "demo", "datagen"] {
        assert!(stdout.contains(command), "{stdout}");
    }
    let (stdout, _) = text(&flotilla(&["sql", "--help"]));
    assert!(
        stdout.contains("--format") && stdout.contains("--config"),
        "{stdout}"
    );
    // Examples one a line, as typed.
    assert!(
        stdout.contains("Examples:\n  flotilla sql --config flotilla.toml")
            && stdout.contains("\n  flotilla sql -f report.sql --format csv > report.csv\n"),
        "{stdout}"
    );
}

#[test]
fn the_configuration_file_can_switch_pushdown_off() {
    let data = demo_data();
    let explain = "EXPLAIN SELECT count(*) FROM shop.main.orders WHERE o_totalprice > 100000";
    for (pushdown, sent_filter) in [("true", true), ("false", false)] {
        let config = data.join(format!("pushdown-{pushdown}.toml"));
        std::fs::write(
            &config,
            format!("[sources.shop]\nkind = \"sqlite\"\npath = \"sqlite/tpch.sqlite\"\n\n[federation]\npushdown = {pushdown}\n"),
        )
        .unwrap();
        let out = flotilla(&[
            "sql",
            "-q",
            "--config",
            config.to_str().unwrap(),
            "--format",
            "csv",
            explain,
        ]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stderr}");
        assert!(stdout.contains("FederatedScanExec"), "{stdout}");
        assert_eq!(
            stdout.contains("\"\"o_totalprice\"\" > 100000"),
            sent_filter,
            "pushdown={pushdown}:\n{stdout}"
        );
    }
}

#[test]
fn a_postgres_source_joins_a_sqlite_source_from_the_command_line() {
    let server = flotilla_testkit::postgres();
    let schema = server.load_tpch(0.01).unwrap();
    let dir = demo_data();
    let config = format!(
        "[sources.pg]\nkind = \"postgres\"\nurl = \"{}\"\n\n[sources.shop]\nkind = \"sqlite\"\npath = \"{}\"\n",
        server.url(),
        dir.join("sqlite")
            .join(flotilla_tpch::SQLITE_FILE_NAME)
            .display()
    );
    // Customers (PostgreSQL) per nation (SQLite): a cross-database join.
    let query = format!(
        "SELECT n.n_name, count(*) AS customers FROM pg.{schema}.customer c \
         JOIN shop.main.nation n ON c.c_nationkey = n.n_nationkey \
         WHERE n.n_regionkey = 1 GROUP BY n.n_name ORDER BY n.n_name"
    );
    let (ok, stdout, stderr) = sql_with_config(&config, &query);
    assert!(ok, "{stderr}");
    let expected = server
        .query(&format!(
            "SELECT n_name, count(*) FROM {schema}.customer JOIN {schema}.nation \
             ON c_nationkey = n_nationkey WHERE n_regionkey = 1 GROUP BY n_name ORDER BY n_name"
        ))
        .unwrap();
    let expected_rows: Vec<Vec<&str>> = expected.lines().map(|l| l.split('|').collect()).collect();
    // The table's rows as cells, e.g. ["ARGENTINA", "59"].
    let printed: Vec<Vec<&str>> = stdout
        .lines()
        .filter(|l| l.starts_with("| ") && !l.contains("n_name"))
        .map(|l| l.trim_matches('|').split('|').map(str::trim).collect())
        .collect();
    assert_eq!(expected_rows.len(), 5, "{expected}");
    assert_eq!(printed, expected_rows, "{stdout}");
    // A wrong port is a one-line error naming the source.
    let config =
        "[sources.pg]\nkind = \"postgres\"\nurl = \"postgresql://postgres@127.0.0.1:1/postgres\"\n";
    let (ok, _, stderr) = sql_with_config(config, "SELECT 1");
    assert!(!ok);
    assert!(
        stderr.contains("source 'pg'") && stderr.contains("cannot connect"),
        "{stderr}"
    );
}

#[test]
fn create_table_as_from_the_command_line_writes_into_postgres() {
    let server = flotilla_testkit::postgres();
    let dir = demo_data();
    let config = format!(
        "[sources.pg]\nkind = \"postgres\"\nurl = \"{}\"\n\n[sources.shop]\nkind = \"sqlite\"\npath = \"{}\"\n",
        server.url(),
        dir.join("sqlite")
            .join(flotilla_tpch::SQLITE_FILE_NAME)
            .display()
    );
    let (ok, stdout, stderr) = sql_with_config(
        &config,
        "CREATE TABLE pg.public.cli_nations AS SELECT n_nationkey, n_name FROM shop.main.nation",
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("| 25 "),
        "the row count is printed:\n{stdout}"
    );
    assert_eq!(
        server
            .query("SELECT count(*), min(n_name) FROM public.cli_nations")
            .unwrap()
            .trim(),
        "25|ALGERIA"
    );
    // The same statement again: the table exists now, a one-line error naming the source.
    let (ok, _, stderr) = sql_with_config(
        &config,
        "CREATE TABLE pg.public.cli_nations AS SELECT n_nationkey, n_name FROM shop.main.nation",
    );
    assert!(!ok);
    assert!(
        stderr.contains("source 'pg'") && stderr.contains("already exists"),
        "{stderr}"
    );
}
