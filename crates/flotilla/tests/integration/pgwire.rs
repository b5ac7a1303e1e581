//! The PostgreSQL port of `flotilla serve` (`[server] pg_listen`), driven by real clients: psql
//! (Debian's `postgresql-client`) and psycopg 3.

use crate::common;
use crate::flightsql::{Served, serve};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

const PG_PORT: &str = "[server]\npg_listen = \"127.0.0.1:0\"\n";

/// One open node with the PostgreSQL port, shared by the tests of this module.
fn open_node() -> &'static Served {
    static NODE: OnceLock<Served> = OnceLock::new();
    NODE.get_or_init(|| serve(PG_PORT, &[]))
}

fn host_port(served: &Served) -> (String, String) {
    let address = served
        .pg
        .as_deref()
        .expect("serve names its PostgreSQL port");
    let (host, port) = address.rsplit_once(':').unwrap();
    (host.to_string(), port.to_string())
}

/// Runs `sql` with psql (unaligned, no headers, `|` between columns); returns its rows.
fn psql(served: &Served, user: &str, sql: &str) -> Result<Vec<Vec<String>>, String> {
    let (host, port) = host_port(served);
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-F",
            "|",
            "-v",
            "ON_ERROR_STOP=1",
            "-v",
            "VERBOSITY=verbose",
        ])
        .args([
            "-h", &host, "-p", &port, "-U", user, "-d", "flotilla", "-c", sql,
        ])
        .env("PGCONNECT_TIMEOUT", "10")
        .env_remove("PGPASSWORD")
        .output()
        .expect("psql runs (apt-get install postgresql-client: scripts/setup.sh)");
    let (stdout, stderr) = common::text(&out);
    if !out.status.success() {
        return Err(stderr);
    }
    Ok(stdout
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| line.split('|').map(str::to_string).collect())
        .collect())
}

/// Runs a check of the psycopg script; returns its JSON.
fn psycopg(check: &str, conninfo: &str, args: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/pg_client.py");
    let out = Command::new(flotilla_testkit::clients::python())
        .arg(&script)
        .args([check, conninfo])
        .args(args)
        .output()
        .expect("python runs");
    let (stdout, stderr) = common::text(&out);
    assert!(out.status.success(), "{check} failed:\n{stdout}\n{stderr}");
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{check}: not JSON ({e}):\n{stdout}\n{stderr}"))
}

fn conninfo(served: &Served, extra: &str) -> String {
    let (host, port) = host_port(served);
    format!("host={host} port={port} dbname=flotilla user=test {extra}")
}

/// The demo's Parquet files in a plain DataFusion session: the reference.
async fn parquet() -> SessionContext {
    let ctx = SessionContext::new();
    let dir = common::demo_data().join("parquet");
    for table in [
        "customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier",
    ] {
        ctx.register_parquet(
            table,
            dir.join(format!("{table}.parquet")).to_str().unwrap(),
            ParquetReadOptions::default(),
        )
        .await
        .unwrap();
    }
    ctx
}

/// The rows of `batches` as text, NULL as the empty string (as psql prints them).
fn as_text(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let options = FormatOptions::default().with_null("");
    let mut rows = Vec::new();
    for batch in batches {
        let columns: Vec<ArrayFormatter> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for row in 0..batch.num_rows() {
            rows.push(columns.iter().map(|c| c.value(row).to_string()).collect());
        }
    }
    rows
}

/// Rows equal, numbers compared as numbers (PostgreSQL's text of a numeric may carry more or
/// fewer trailing zeros than Arrow's).
fn assert_same_text(expected: &[Vec<String>], actual: &[Vec<String>], what: &str) {
    assert_eq!(
        expected.len(),
        actual.len(),
        "{what}: row count\n{actual:?}"
    );
    for (e, a) in expected.iter().zip(actual) {
        assert_eq!(e.len(), a.len(), "{what}: columns of {a:?}");
        for (e, a) in e.iter().zip(a) {
            let same = match (e.parse::<f64>(), a.parse::<f64>()) {
                (Ok(e), Ok(a)) => (e - a).abs() <= 1e-9 * e.abs().max(1.0),
                _ => e == a,
            };
            assert!(same, "{what}: {e} != {a}\nrow {a:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_runs_tpch_q1_and_q3_like_datafusion_over_parquet() {
    let node = open_node();
    let reference = parquet().await;
    for n in [1, 3] {
        let sql = common::tpch_query(n);
        let expected = as_text(&reference.sql(&sql).await.unwrap().collect().await.unwrap());
        let actual = psql(node, "test", &sql).unwrap_or_else(|e| panic!("q{n}: {e}"));
        assert!(!expected.is_empty());
        assert_same_text(&expected, &actual, &format!("q{n}"));
    }
    // A SQLite table joined with a Parquet one, and EXPLAIN showing the SQL sent.
    let sql = "SELECT c_mktsegment, count(*) FROM shop.main.customer \
               JOIN lake.public.orders ON c_custkey = o_custkey \
               GROUP BY c_mktsegment ORDER BY c_mktsegment";
    let expected = as_text(
        &reference
            .sql(
                "SELECT c_mktsegment, count(*) FROM customer JOIN orders ON c_custkey = o_custkey \
                 GROUP BY c_mktsegment ORDER BY c_mktsegment",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap(),
    );
    assert_same_text(&expected, &psql(node, "test", sql).unwrap(), "join");
    let explained = psql(node, "test", &format!("EXPLAIN {sql}")).unwrap();
    let text = format!("{explained:?}");
    assert!(text.contains("FederatedScanExec"), "{text}");
    // Dates and decimals as PostgreSQL writes them (formatted a column at a time), NULLs kept.
    let values = psql(
        node,
        "test",
        "SELECT DATE '2024-02-29', DATE '0001-01-01', CAST(-1.5 AS DECIMAL(10, 2)), \
         CAST(0.04 AS DECIMAL(10, 2)), CAST(NULL AS DATE) AS d, CAST(NULL AS DECIMAL(5, 1)) AS n",
    )
    .unwrap();
    assert_eq!(
        values,
        vec![vec!["2024-02-29", "0001-01-01", "-1.50", "0.04", "", ""]]
    );
}

/// psql's `\dt` lists the tables of every source — the SQLite database's (schema `main`) and
/// the Parquet directory's (schema `public`) — `\d` describes one, `\l` lists the database,
/// `\du` the roles and `\df` functions; each through the metadata queries psql itself sends to
/// `pg_catalog`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_describes_the_sources_tables() {
    let node = open_node();
    let tables = psql(node, "test", "\\dt").unwrap();
    let listed = |schema: &str, table: &str| {
        tables
            .iter()
            .any(|row| row.len() >= 3 && row[0] == schema && row[1] == table && row[2] == "table")
    };
    for table in [
        "customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier",
    ] {
        assert!(
            listed("main", table),
            "shop's {table} not in \\dt:\n{tables:?}"
        );
        assert!(
            listed("public", table),
            "lake's {table} not in \\dt:\n{tables:?}"
        );
    }
    let columns = psql(node, "test", "\\d orders").unwrap();
    let names: Vec<&str> = columns.iter().map(|row| row[0].as_str()).collect();
    for column in ["o_orderkey", "o_custkey", "o_orderdate", "o_comment"] {
        assert!(names.contains(&column), "\\d orders:\n{columns:?}");
    }
    // information_schema.columns names types as PostgreSQL does (tools such as Grafana
    // read `data_type`), whatever the catalog's case.
    let types = psql(
        node,
        "test",
        "SELECT column_name, data_type, udt_name FROM INFORMATION_SCHEMA.columns \
         WHERE table_schema = 'main' AND table_name = 'orders' \
         AND column_name IN ('o_orderkey', 'o_comment') ORDER BY 1",
    )
    .unwrap();
    assert_eq!(
        types,
        [
            ["o_comment", "text", "text"],
            ["o_orderkey", "bigint", "int8"]
        ],
        "information_schema.columns of shop's orders"
    );
    let databases = psql(node, "test", "\\l").unwrap();
    assert!(!databases.is_empty(), "\\l lists no database");
    // \du (its roles' memberships as ARRAY(SELECT …)) and \df (functions, with catalog
    // functions datafusion-pg-catalog lacks) run. (This node has no users, so no roles: see
    // the SCRAM test for \du listing them.)
    psql(node, "test", "\\du").unwrap();
    psql(node, "test", "\\df").unwrap();
    let functions = psql(node, "test", "\\df abs").unwrap();
    assert!(
        !functions.is_empty()
            && functions
                .iter()
                .all(|row| row.get(1).is_some_and(|name| name == "abs")),
        "{functions:?}"
    );
    // What drivers and tools read on connecting (pgjdbc, DBeaver, Grafana).
    for (sql, expected) in [
        ("SHOW search_path", "\"$user\", public"),
        ("SELECT current_setting('server_version_num')", "160000"),
        ("SHOW standard_conforming_strings", "on"),
    ] {
        assert_eq!(
            psql(node, "test", sql).unwrap(),
            vec![vec![expected.to_string()]],
            "{sql}"
        );
    }
    let version = psql(node, "test", "SELECT version()").unwrap();
    assert!(version[0][0].starts_with("PostgreSQL 16"), "{version:?}");
    let unknown = psql(node, "test", "SELECT current_setting('no_such_setting')").unwrap_err();
    assert!(
        unknown.contains("unrecognized configuration parameter"),
        "{unknown}"
    );
    // ARRAY(subquery), correlated, as PostgreSQL runs it.
    let sizes = psql(
        node,
        "test",
        "SELECT r_name, cardinality(ARRAY(SELECT n_name FROM shop.main.nation n \
         WHERE n.n_regionkey = r.r_regionkey)) FROM shop.main.region r ORDER BY 1",
    )
    .unwrap();
    assert_eq!(sizes.len(), 5, "{sizes:?}");
    assert!(sizes.iter().all(|row| row[1] == "5"), "{sizes:?}");
    // The rewrites for pg_catalog leave ordinary SQL as it was.
    let rows = psql(node, "test", "SELECT count(*) FROM shop.main.nation").unwrap();
    assert_eq!(rows, vec![vec!["25".to_string()]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_statements_write_and_errors_leave_the_connection_usable() {
    let node = open_node();
    // Several statements in one simple query; a session table lives as long as the session.
    let rows = psql(
        node,
        "test",
        "CREATE TABLE datafusion.public.t AS VALUES (1, 'a'), (2, NULL); \
         INSERT INTO datafusion.public.t VALUES (3, 'c'); \
         SELECT column1, column2 FROM datafusion.public.t ORDER BY column1",
    )
    .unwrap();
    assert_eq!(
        rows,
        vec![
            vec!["1".to_string(), "a".to_string()],
            vec!["2".to_string(), String::new()],
            vec!["3".to_string(), "c".to_string()],
        ]
    );
    // SQL PREPARE / EXECUTE, and a transaction's statements (applied as they run).
    let rows = psql(
        node,
        "test",
        "PREPARE p(INT) AS SELECT n_name FROM nation WHERE n_nationkey = $1; EXECUTE p(7)",
    )
    .unwrap();
    assert_eq!(rows, vec![vec!["GERMANY".to_string()]]);
    let rows = psql(
        node,
        "test",
        "BEGIN; SET extra_float_digits = 3; SELECT 7; COMMIT",
    )
    .unwrap();
    assert_eq!(rows, vec![vec!["7".to_string()]]);
    // A bad statement is an error with a SQLSTATE; the server goes on.

    let error = psql(node, "test", "SELECT * FROM no_such_table").unwrap_err();
    assert!(error.contains("no_such_table"), "{error}");
    let error = psql(node, "test", "SELEC 1").unwrap_err();
    assert!(error.contains("ERROR"), "{error}");
    // Over the session's memory limit: the query fails with insufficient_resources.
    let error = psql(
        node,
        "test",
        "SET flotilla.query_memory_limit = '256K'; \
         SELECT count(*) FROM lineitem a JOIN lineitem b ON a.l_comment = b.l_comment",
    )
    .unwrap_err();
    assert!(error.contains("53000"), "{error}");
    assert_eq!(psql(node, "test", "SELECT 1 + 1").unwrap(), vec![vec!["2"]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_prepares_statements_with_parameters_of_several_types() {
    let node = open_node();
    let out = psycopg("prepared", &conninfo(node, ""), &[]);
    let reference = parquet().await;
    let mut expected = Vec::new();
    for (low, not, limit) in [(3, "CHINA", 4), (20, "X", 100), (30, "X", 1)] {
        let sql = format!(
            "SELECT n_nationkey, n_name FROM nation WHERE n_nationkey >= {low} \
             AND n_name <> '{not}' ORDER BY n_nationkey LIMIT {limit}"
        );
        expected.push(as_text(
            &reference.sql(&sql).await.unwrap().collect().await.unwrap(),
        ));
    }
    let results: Vec<Vec<Vec<String>>> = serde_json::from_value(out["results"].clone()).unwrap();
    assert_eq!(results, expected, "{out}");
    assert_eq!(results[2], Vec::<Vec<String>>::new());
    assert_eq!(
        out["typed"],
        serde_json::json!(["42", "2.5", "hi!", "2024-02-29"]),
        "{out}"
    );
    let rows = psycopg(
        "query",
        &conninfo(node, ""),
        &["SELECT count(*) FROM lineitem"],
    );
    let expected = as_text(
        &reference
            .sql("SELECT count(*) FROM lineitem")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap(),
    );
    assert_eq!(rows["rows"], serde_json::json!(expected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_request_and_the_statement_timeout_stop_a_long_query() {
    let node = open_node();
    let out = psycopg("stop", &conninfo(node, ""), &[]);
    assert_eq!(out["cancel"]["sqlstate"], "57014", "{out}");
    assert!(
        out["cancel"]["error"]
            .as_str()
            .unwrap()
            .contains("user request"),
        "{out}"
    );
    assert_eq!(out["after_cancel"], "1", "{out}");
    assert_eq!(out["timeout"]["sqlstate"], "57014", "{out}");
    assert!(
        out["timeout"]["error"]
            .as_str()
            .unwrap()
            .contains("flotilla.statement_timeout"),
        "{out}"
    );
    assert_eq!(out["after_timeout"], "2", "{out}");
}

/// The node's `max_concurrent_queries` holds on this port: with one turn and no queue, a query
/// sent while another runs is refused at once (53000, naming the setting), and runs once the
/// turn is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nodes_query_limit_refuses_a_query_over_it_and_serves_it_after() {
    let node = serve(
        &format!("{PG_PORT}max_concurrent_queries = 1\nmax_queued_queries = 0\n"),
        &[],
    );
    let out = psycopg("busy", &conninfo(&node, ""), &[]);
    assert_eq!(out["while_busy"]["sqlstate"], "53000", "{out}");
    assert!(
        out["while_busy"]["error"]
            .as_str()
            .unwrap()
            .contains("max_concurrent_queries"),
        "{out}"
    );
    assert_eq!(out["long"]["sqlstate"], "57014", "{out}");
    assert_eq!(out["after"], "2", "{out}");
}

/// Users log in with SCRAM-SHA-256: the password never crosses the network, whether it is
/// given to the node in the environment or stored as a `flotilla hash-password` hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_log_in_with_scram_and_a_wrong_password_is_refused() {
    let hash = flotilla_flightsql::password::hash("b0-pass", 4096);
    // A password SCRAM normalizes (SASLprep: a no-break space is a space, a soft hyphen
    // nothing, the ligature "ﬁ" is "fi"): libpq hashes "fine password", and so must
    // `flotilla hash-password`.
    let typed = "ﬁne\u{00A0}pass\u{00AD}word";
    let unicode = flotilla_flightsql::password::hash(typed, 4096);
    let node = serve(
        &format!(
            "{PG_PORT}\n[[server.users]]\nname = \"ann\"\npassword_env = \"FLOTILLA_TEST_PG_PASSWORD\"\n\
             \n[[server.users]]\nname = \"bo\"\npassword_hash = \"{hash}\"\n\
             \n[[server.users]]\nname = \"di\"\npassword_hash = \"{unicode}\"\n"
        ),
        &[("FLOTILLA_TEST_PG_PASSWORD", "s3cret")],
    );
    let (host, port) = host_port(&node);
    let base = format!("host={host} port={port} dbname=flotilla");
    let quoted = format!("'{typed}'");
    for (user, password) in [
        ("ann", "s3cret"),
        ("bo", "b0-pass"),
        ("di", quoted.as_str()),
    ] {
        let ok = psycopg(
            "login",
            &format!("{base} user={user} password={password} require_auth=scram-sha-256"),
            &[],
        );
        assert_eq!(ok["ok"], true, "{user}: {ok}");
        assert_eq!(ok["row"], serde_json::json!(["1"]));
        assert_eq!(ok["ssl"], false, "{ok}");
    }
    // The server never asks for the password itself.
    let cleartext = psycopg(
        "login",
        &format!("{base} user=ann password=s3cret require_auth=password"),
        &[],
    );
    assert_eq!(cleartext["ok"], false, "{cleartext}");
    assert!(
        cleartext["error"].as_str().unwrap().contains("SASL"),
        "{cleartext}"
    );
    // libpq reports a refused login as a connection failure, with the server's FATAL message;
    // a user that does not exist is refused as a wrong password is.
    for conninfo in [
        format!("{base} user=ann password=guess"),
        format!("{base} user=bo password=s3cret"),
        format!("{base} user=cy password=s3cret"),
    ] {
        let refused = psycopg("login", &conninfo, &[]);
        assert_eq!(refused["ok"], false, "{refused}");
        let error = refused["error"].as_str().unwrap().to_lowercase();
        assert!(
            error.contains("password authentication failed"),
            "{refused}"
        );
    }
    // psql, too, and a node with users still serves the right one.
    let psql_with = |password: &str| {
        Command::new("psql")
            .args([
                "-X", "-w", "-A", "-t", "-h", &host, "-p", &port, "-U", "ann", "-d", "x", "-c",
                "SELECT 1",
            ])
            .env("PGPASSWORD", password)
            .output()
            .unwrap()
    };
    let out = psql_with("wrong");
    assert!(!out.status.success());
    assert!(
        common::text(&out).1.contains("authentication failed"),
        "{out:?}"
    );
    let out = psql_with("s3cret");
    assert_eq!(common::text(&out).0.trim(), "1", "{out:?}");
    // psql's \du lists the node's users as roles that can log in.
    let out = Command::new("psql")
        .args([
            "-X", "-w", "-A", "-t", "-F", "|", "-h", &host, "-p", &port, "-U", "ann", "-d", "x",
            "-c", "\\du",
        ])
        .env("PGPASSWORD", "s3cret")
        .output()
        .unwrap();
    let (roles, stderr) = common::text(&out);
    assert!(out.status.success(), "{stderr}");
    let names: Vec<&str> = roles.lines().filter_map(|l| l.split('|').next()).collect();
    assert_eq!(names, ["ann", "bo", "di"], "\\du:\n{roles}");
}

/// With `[server] tls_cert`/`tls_key`, the PostgreSQL port serves TLS to clients that ask
/// (checked against the test CA, with SCRAM bound to the channel), and the clear protocol to
/// those that do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_clients_that_trust_the_certificate_with_scram_bound_to_it() {
    let pki = flotilla_testkit::tls::test_pki();
    let node = serve(
        &format!(
            "{PG_PORT}tls_cert = \"{}\"\ntls_key = \"{}\"\n\n[[server.users]]\nname = \"ann\"\n\
             password_env = \"FLOTILLA_TEST_PG_PASSWORD\"\n",
            pki.server_cert.display(),
            pki.server_key.display()
        ),
        &[("FLOTILLA_TEST_PG_PASSWORD", "s3cret")],
    );
    let (host, port) = host_port(&node);
    let base = format!(
        "host=localhost hostaddr={host} port={port} dbname=flotilla user=ann password=s3cret"
    );
    let ca = pki.ca_cert.display();
    let secure = psycopg(
        "login",
        &format!("{base} sslmode=verify-full sslrootcert={ca} channel_binding=require"),
        &[],
    );
    assert_eq!(secure["ok"], true, "{secure}");
    assert_eq!(secure["ssl"], true, "{secure}");
    // A client that does not trust the certificate's issuer refuses it.
    let untrusted = psycopg(
        "login",
        &format!("{base} sslmode=verify-full sslrootcert=system"),
        &[],
    );
    assert_eq!(untrusted["ok"], false, "{untrusted}");
    assert!(
        untrusted["error"].as_str().unwrap().contains("certificate"),
        "{untrusted}"
    );
    // In the clear, when the client does not ask for TLS (and then no channel to bind to).
    let clear = psycopg("login", &format!("{base} sslmode=disable"), &[]);
    assert_eq!(clear["ok"], true, "{clear}");
    assert_eq!(clear["ssl"], false, "{clear}");
    let unbound = psycopg(
        "login",
        &format!("{base} sslmode=disable channel_binding=require"),
        &[],
    );
    assert_eq!(unbound["ok"], false, "{unbound}");
    // psql over TLS runs a query against the sources.
    let out = Command::new("psql")
        .args(["-X", "-w", "-A", "-t", "-c", "SELECT count(*) FROM region"])
        .arg(format!("{base} sslmode=require"))
        .output()
        .unwrap();
    assert_eq!(common::text(&out).0.trim(), "5", "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_huge_messages_end_only_their_connection() {
    let node = open_node();
    let address = node.pg.clone().unwrap();
    let exchange = |bytes: &[u8]| {
        let mut socket = TcpStream::connect(&address).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = socket.write_all(bytes);
        let mut answer = Vec::new();
        let _ = socket.read_to_end(&mut answer);
        answer
    };
    // Random bytes where a startup packet belongs.
    exchange(b"\x00\x00\x00\x10garbage garbage!");
    // A startup packet of an unknown protocol version (9.9).
    let mut startup = Vec::new();
    startup.extend_from_slice(&16i32.to_be_bytes());
    startup.extend_from_slice(&((9 << 16) | 9i32).to_be_bytes());
    startup.extend_from_slice(b"user\0\0\0\0");
    exchange(&startup);
    // A startup packet claiming a length of 1 GB.
    exchange(&0x4000_0000i32.to_be_bytes());
    // The server still answers everyone else.
    assert_eq!(
        psql(node, "test", "SELECT 40 + 2").unwrap(),
        vec![vec!["42"]]
    );
}
