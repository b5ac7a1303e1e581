//! `flotilla serve` driven by real Python clients: ADBC's Flight SQL driver (what pandas,
//! Polars and DBeaver-style tools use) and plain pyarrow.flight. The client script is
//! `tests/python/flight_sql_client.py`; it prints what it saw as JSON and writes result tables
//! as Arrow IPC files, which are compared here row for row with DataFusion on the same Parquet.

use crate::common;
use datafusion::arrow::ipc::reader::FileReader;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use flotilla_testkit::{compare_batches, query_is_ordered};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// A running `flotilla serve`; stopped when the test binary exits.
pub(crate) struct Served {
    pub(crate) uri: String,
    /// `host:port` of the HTTP port (`[server] http_listen`), when configured.
    pub(crate) http: Option<String>,
    /// `host:port` of the PostgreSQL port (`[server] pg_listen`), when configured.
    pub(crate) pg: Option<String>,
    pub(crate) child: Child,
    /// Every line the node wrote to standard error so far (read as it writes them, so the
    /// node never blocks on a full pipe).
    pub(crate) log: Arc<Mutex<Vec<String>>>,
}

/// Starts `flotilla serve` over the demo data (SF 0.01) with `extra` appended to its config.
pub(crate) fn serve(extra: &str, env: &[(&str, &str)]) -> Served {
    let data = common::demo_data();
    let text = format!(
        "[session]\ndefault_catalog = \"lake\"\ndefault_schema = \"public\"\n\n\
         [sources.shop]\nkind = \"sqlite\"\npath = \"{}\"\n\n\
         [sources.lake]\nkind = \"parquet\"\npath = \"{}\"\n\n{extra}",
        data.join("sqlite/tpch.sqlite").display(),
        data.join("parquet").display(),
    );
    serve_config(&text, env)
}

/// Starts `flotilla serve --listen 127.0.0.1:0` with the configuration `text`.
pub(crate) fn serve_config(text: &str, env: &[(&str, &str)]) -> Served {
    let mut command = Command::new(env!("CARGO_BIN_EXE_flotilla"));
    command.envs(env.iter().copied());
    serve_with(command, text, "127.0.0.1:0")
}

/// Starts `command` (`flotilla`, or a command that runs it) with `serve --config <text>
/// --listen <listen>` appended, and waits until it serves.
pub(crate) fn serve_with(mut command: Command, text: &str, listen: &str) -> Served {
    let dir = tempfile::tempdir().unwrap().keep();
    flotilla_testkit::reaper::remove_at_exit(&dir);
    let config = dir.join("flotilla.toml");
    std::fs::write(&config, text).unwrap();
    let child = command
        .args([
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            listen,
        ])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("flotilla serve starts");
    flotilla_testkit::reaper::stop_at_exit(child.id(), "TERM");
    // Owned by `Served` from here on, so a failed start still kills and reaps the child.
    let mut served = Served {
        uri: String::new(),
        http: None,
        pg: None,
        child,
        log: Arc::default(),
    };
    let stderr = served.child.stderr.take().unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    let log = Arc::clone(&served.log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            log.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(line.clone());
            // Nobody waits for lines once the node serves; they are still read and kept.
            let _ = lines.send(line);
        }
    });
    loop {
        let line = received
            .recv_timeout(Duration::from_secs(60))
            .expect("flotilla serve says where it listens within a minute");
        if let Some(rest) = line.split("serving Arrow Flight SQL on ").nth(1) {
            served.uri = rest.split_whitespace().next().unwrap().to_string();
            served.http = rest
                .split("http://")
                .nth(1)
                .and_then(|address| address.split('/').next())
                .map(str::to_string);
            served.pg = rest
                .split("PostgreSQL protocol on ")
                .nth(1)
                .and_then(|address| address.split_whitespace().next())
                .map(str::to_string);
            return served;
        }
    }
}

/// One open server shared by the tests of this module.
fn open_server() -> &'static Served {
    static SERVER: OnceLock<Served> = OnceLock::new();
    SERVER.get_or_init(|| serve("", &[]))
}

/// Runs a check of the client script; returns its JSON and the directory of its files.
pub(crate) fn client(check: &str, uri: &str, extra: &[&str]) -> (Value, PathBuf) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/flight_sql_client.py");
    let out = tempfile::tempdir().unwrap().keep();
    flotilla_testkit::reaper::remove_at_exit(&out);
    let output = Command::new(flotilla_testkit::clients::python())
        .arg(&script)
        .args([check, uri, out.to_str().unwrap()])
        .args(extra)
        .output()
        .expect("python runs");
    let (stdout, stderr) = common::text(&output);
    assert!(
        output.status.success(),
        "{check} failed:\n{stdout}\n{stderr}"
    );
    let value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{check}: not JSON ({e}):\n{stdout}\n{stderr}"));
    (value, out)
}

pub(crate) fn read_arrow(path: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path).unwrap();
    FileReader::try_new(file, None)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

async fn local_context() -> SessionContext {
    let ctx = SessionContext::new();
    let dir = common::demo_data().join("parquet");
    for table in [
        "customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier",
    ] {
        let path = dir.join(format!("{table}.parquet"));
        ctx.register_parquet(table, path.to_str().unwrap(), ParquetReadOptions::default())
            .await
            .unwrap();
    }
    ctx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adbc_tpch_results_equal_local_results() {
    let server = open_server();
    let (counts, dir) = client("tpch", &server.uri, &[]);
    let local = local_context().await;
    for n in [1, 3] {
        let sql = common::tpch_query(n);
        let expected = local.sql(&sql).await.unwrap().collect().await.unwrap();
        let actual = read_arrow(&dir.join(format!("q{n}.arrow")));
        assert_eq!(
            counts[format!("q{n}")].as_u64(),
            Some(expected.iter().map(|b| b.num_rows() as u64).sum()),
            "q{n}"
        );
        if let Err(diff) = compare_batches(&expected, &actual, query_is_ordered(&sql)) {
            panic!("q{n} over ADBC: {diff}");
        }
    }
}

#[test]
fn adbc_get_objects_lists_every_source_with_columns() {
    let (tree, _) = client("objects", &open_server().uri, &[]);
    for (catalog, schema) in [("shop", "main"), ("lake", "public")] {
        let tables = tree[catalog][schema]
            .as_object()
            .unwrap_or_else(|| panic!("{catalog}.{schema} missing: {tree}"));
        assert_eq!(tables.len(), 8, "{catalog}.{schema}: {tables:?}");
        let lineitem = tables["lineitem"].as_array().unwrap();
        assert_eq!(lineitem.len(), 16, "{catalog} lineitem columns");
        assert_eq!(lineitem[0], "l_orderkey");
    }
    assert!(tree["datafusion"]["public"].is_object(), "{tree}");
}

#[test]
fn adbc_get_info_names_the_server() {
    let (info, _) = client("info", &open_server().uri, &[]);
    assert_eq!(info["vendor_name"], "Flotilla", "{info}");
    assert_eq!(info["vendor_version"], env!("CARGO_PKG_VERSION"), "{info}");
}

#[test]
fn adbc_prepared_statements_take_parameters() {
    let (result, _) = client("prepared", &open_server().uri, &[]);
    assert_eq!(
        result["names"],
        serde_json::json!(["CANADA", "GERMANY", "UNITED STATES"])
    );
    // The same count straight from SQLite's copy of the data (an independent path).
    let out = common::flotilla(&[
        "sql",
        "-q",
        "--format",
        "csv",
        "-c",
        common::demo_data().join("flotilla.toml").to_str().unwrap(),
        "SELECT count(*) AS n FROM shop.main.lineitem WHERE l_quantity > 45 AND l_returnflag = 'R'",
    ]);
    let (stdout, stderr) = common::text(&out);
    assert!(out.status.success(), "{stderr}");
    let expected: u64 = stdout.lines().nth(1).unwrap().trim().parse().unwrap();
    assert_eq!(result["count"].as_u64(), Some(expected));
    assert_eq!(result["executed"], "UNITED STATES", "{result}");
    let deallocated = result["deallocated"].as_str().unwrap_or_default();
    assert!(deallocated.contains("'pick' does not exist"), "{result}");
    assert_eq!(
        result["schema"],
        serde_json::json!(["n_nationkey", "n_name"])
    );
    assert_eq!(result["polled"], serde_json::json!([[[25]]]), "{result}");
}

#[test]
fn adbc_updates_report_row_counts() {
    let (result, _) = client("update", &open_server().uri, &[]);
    assert_eq!(result["created"], 0, "{result}");
    assert_eq!(result["inserted"], 5, "{result}");
    assert_eq!(result["as_query"], 3, "{result}");
    assert_eq!(result["after_many"], 5, "{result}");
}

#[test]
fn adbc_ingest_creates_and_appends() {
    let (result, _) = client("ingest", &open_server().uri, &[]);
    assert_eq!(result["created"], 3, "{result}");
    assert_eq!(result["appended"], 2, "{result}");
    assert_eq!(result["count"], 5, "{result}");
    assert_eq!(result["sum"], 9, "{result}");
    assert_eq!(result["names"], 4, "NULLs arrive as NULLs: {result}");
    let again = result["again"].as_str().unwrap();
    assert!(again.contains("ALREADY_EXISTS"), "{again}");
}

#[test]
fn adbc_connections_have_their_own_sessions() {
    let (result, _) = client("sessions", &open_server().uri, &[]);
    assert_eq!(result["a"], "1111", "{result}");
    assert_eq!(result["b"], "2222", "{result}");
}

#[test]
fn adbc_errors_are_clear_and_the_connection_survives() {
    let (result, _) = client("errors", &open_server().uri, &[]);
    let syntax = result["syntax"].as_str().unwrap();
    assert!(
        syntax.contains("INVALID_ARGUMENT") && syntax.contains("SELEC"),
        "{syntax}"
    );
    let unknown = result["unknown"].as_str().unwrap();
    assert!(
        unknown.contains("NOT_FOUND") && unknown.contains("no_such_table"),
        "{unknown}"
    );
    assert_eq!(result["after"], 42);
}

#[test]
fn adbc_cancel_stops_a_running_query() {
    let (result, _) = client("cancel", &open_server().uri, &[]);
    let error = result["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error: {result}"));
    assert!(error.to_lowercase().contains("cancel"), "{error}");
    assert!(result["seconds"].as_f64().unwrap() < 10.0, "{result}");
    assert_eq!(result["after"], 7);
}

#[test]
fn pyarrow_flight_runs_a_statement_without_a_flight_sql_library() {
    let (result, dir) = client("pyarrow", &open_server().uri, &[]);
    assert_eq!(
        result["schema"],
        serde_json::json!(["r_regionkey", "r_name"])
    );
    assert_eq!(result["rows"], 5);
    let bad = result["bad_ticket"].as_str().unwrap();
    assert!(bad.contains("invalid argument"), "{bad}");
    let batches = read_arrow(&dir.join("pyarrow.arrow"));
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 5);
}

#[test]
fn tls_serves_clients_that_trust_its_certificate() {
    let pki = flotilla_testkit::tls::test_pki();
    let server = serve(
        &format!(
            "[server]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            pki.server_cert.display(),
            pki.server_key.display()
        ),
        &[],
    );
    assert!(server.uri.starts_with("grpc+tls://"), "{}", server.uri);
    let uri = server.uri.replace("127.0.0.1", "localhost");
    let (result, _) = client("tls", &uri, &[pki.ca_cert.to_str().unwrap()]);
    assert_eq!(result["trusted"], 5, "{result}");
    let untrusted = result["untrusted"]
        .as_str()
        .unwrap_or_else(|| panic!("{result}"));
    assert!(untrusted.contains("certificate"), "{untrusted}");

    // Another node federating to this one over TLS.
    let a_config = format!(
        "[sources.b]\nkind = \"flightsql\"\nurl = \"{uri}\"\ncatalog = \"lake\"\n\
         tls_root_cert = \"{}\"\n",
        pki.ca_cert.display()
    );
    let out = sql_csv(&a_config, "SELECT count(*) AS n FROM b.public.nation");
    assert_eq!(out.lines().nth(1), Some("25"), "{out}");
}

#[test]
fn with_users_only_valid_credentials_get_in() {
    // Bo's password is stored as a hash made by `flotilla hash-password`.
    let mut hasher = Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(["hash-password", "--iterations", "1000"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = hasher.stdin.take().unwrap();
        stdin.write_all(b"b0's pass\n").unwrap();
    }
    let hashed = hasher.wait_with_output().unwrap();
    assert!(hashed.status.success());
    let hash = String::from_utf8(hashed.stdout).unwrap();
    assert!(hash.starts_with("pbkdf2-sha256$1000$"), "{hash}");
    let server = serve(
        &format!(
            "[[server.users]]\nname = \"ana\"\npassword_env = \"FLOTILLA_TEST_ANA\"\n\n\
             [[server.users]]\nname = \"bo\"\npassword_hash = \"{}\"\n",
            hash.trim()
        ),
        &[("FLOTILLA_TEST_ANA", "s3cret")],
    );
    let (ok, _) = client("auth", &server.uri, &["ana", "s3cret"]);
    assert_eq!(ok["rows"], 5, "{ok}");
    let (ok, _) = client("auth", &server.uri, &["bo", "b0's pass"]);
    assert_eq!(ok["rows"], 5, "{ok}");
    let (wrong, _) = client("auth", &server.uri, &["bo", "s3cret"]);
    assert!(
        wrong["error"].as_str().unwrap().contains("UNAUTHENTICATED"),
        "{wrong}"
    );
    let (wrong, _) = client("auth", &server.uri, &["ana", "nope"]);
    let error = wrong["error"].as_str().unwrap();
    assert!(error.contains("UNAUTHENTICATED"), "{error}");
    let (none, _) = client("auth", &server.uri, &[]);
    let error = none["error"].as_str().unwrap();
    assert!(error.contains("UNAUTHENTICATED"), "{error}");
    drop(server);
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_flight_sql_benchmark_runs_and_reports_its_figures() {
    let cache = &common::demo_cache().0;
    let out = common::flotilla(&[
        "bench",
        "flightsql",
        "--scale",
        "0.01",
        "--calls",
        "20",
        "--clients",
        "4",
        "--repeat",
        "1",
        "--cache-dir",
        cache.to_str().unwrap(),
    ]);
    let (stdout, stderr) = common::text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Throughput of SELECT * FROM lineitem (60175 rows"),
        "{stdout}"
    );
    for line in [
        "SELECT 1, 1 client",
        "SELECT 1, 4 clients",
        "point lookup (SQLite, by key), 4 clients",
    ] {
        assert!(stdout.contains(line), "{line} missing:\n{stdout}");
    }
}

#[test]
fn the_cluster_benchmark_reads_the_same_rows_three_ways() {
    let cache = &common::demo_cache().0;
    let out = common::flotilla(&[
        "bench",
        "flightsql",
        "--scale",
        "0.01",
        "--workers",
        "2",
        "--repeat",
        "1",
        "--cache-dir",
        cache.to_str().unwrap(),
    ]);
    let (stdout, stderr) = common::text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // The client script fails unless the three ways return the same number of rows.
    let line = |label: &str| {
        stdout
            .lines()
            .find(|line| line.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("{label} missing:\n{stdout}"))
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    // Columns: seconds, MB/s, endpoints, ratio — the endpoints are second from the end.
    let endpoints = |label: &str| {
        let words = line(label);
        words[words.len() - 2].clone()
    };
    assert_eq!(endpoints("node 0 alone"), "1", "{stdout}");
    assert_eq!(
        endpoints("distributed, rows through node 0"),
        "1",
        "{stdout}"
    );
    assert_eq!(
        endpoints("distributed, rows from the workers"),
        "2",
        "{stdout}"
    );
}

/// `flotilla sql` with `config` (a file in a temp dir) and `sql`, as CSV.
fn sql_csv(config: &str, sql: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flotilla.toml");
    std::fs::write(&path, config).unwrap();
    let out = common::flotilla(&[
        "sql",
        "-q",
        "--format",
        "csv",
        "-c",
        path.to_str().unwrap(),
        sql,
    ]);
    let (stdout, stderr) = common::text(&out);
    assert!(out.status.success(), "{sql}\n{stderr}");
    stdout
}

#[test]
fn a_node_federates_another_node_over_flight_sql() {
    let b = open_server();
    let data = common::demo_data();
    let a_config = format!(
        "[sources.b]\nkind = \"flightsql\"\nurl = \"{}\"\ncatalog = \"lake\"\n\n\
         [sources.shop]\nkind = \"sqlite\"\npath = \"{}\"\n",
        b.uri,
        data.join("sqlite/tpch.sqlite").display()
    );
    // Node B's Parquet lineitem joined with node A's own SQLite orders.
    let query = |lineitem: &str| {
        format!(
            "SELECT o.o_orderpriority, count(*) AS n, sum(l.l_quantity) AS q \
             FROM {lineitem} l JOIN shop.main.orders o ON l.l_orderkey = o.o_orderkey \
             WHERE l.l_shipdate >= DATE '1995-01-01' GROUP BY 1 ORDER BY 1"
        )
    };
    let through_b = sql_csv(&a_config, &query("b.public.lineitem"));
    let local_config = std::fs::read_to_string(data.join("flotilla.toml"))
        .unwrap()
        .replace("path = \"", &format!("path = \"{}/", data.display()));
    let direct = sql_csv(&local_config, &query("lake.public.lineitem"));
    assert_eq!(through_b, direct);
    assert!(through_b.lines().count() == 6, "{through_b}");

    // EXPLAIN shows what node B was sent: the filter and the needed columns only.
    let plan = sql_csv(
        &a_config,
        &format!("EXPLAIN {}", query("b.public.lineitem")),
    );
    assert!(plan.contains("FederatedScanExec: source=b"), "{plan}");
    assert!(
        plan.contains("1995-01-01"),
        "the filter goes to node B:\n{plan}"
    );
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let mut server = serve("", &[]);
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = std::time::Instant::now();
    loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            assert!(exit.success(), "exit status {exit}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "flotilla serve still runs 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
