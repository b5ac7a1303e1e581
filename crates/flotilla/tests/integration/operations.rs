//! Operating a node: its HTTP port (`[server] http_listen`) — liveness, readiness and metrics —
//! read by the tools operators use: plain HTTP and a real Prometheus server scraping it.

use crate::flightsql::{client, serve};
use flotilla_node::config::{Config, Peers, UserPassword};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `GET path` as HTTP/1.0 (so the answer is not chunked and ends with the connection): the
/// status code and the body.
fn get(address: &str, path: &str) -> (u16, String) {
    request(address, "GET", path)
}

/// `method path` as HTTP/1.0, without a body: the status code and the body.
fn request(address: &str, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap_or_else(|e| panic!("{address}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {address}\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
    (code, body.to_string())
}

/// The value of the series `name` (exact, labels included) in an OpenMetrics text.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// `binary` (installed by Debian package `package`), or a failure naming the setup step.
fn installed(binary: &'static str, package: &str) -> &'static str {
    let found = Command::new(binary)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{binary} is not installed: run scripts/setup.sh (apt-get install {package})"
    );
    binary
}

/// A free port on loopback.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn a_node_reports_health_and_metrics_that_prometheus_scrapes() {
    let node = serve(
        "[server]\nhttp_listen = \"127.0.0.1:0\"\nmemory_limit = \"256M\"\n",
        &[],
    );
    let http = node
        .http
        .clone()
        .expect("the node names its HTTP port when it starts");
    assert_eq!(get(&http, "/healthz"), (200, "ok\n".to_string()));
    let (code, ready) = get(&http, "/readyz");
    assert_eq!(code, 200, "{ready}");
    assert!(ready.starts_with("ready:"), "{ready}");
    assert_eq!(get(&http, "/nothing").0, 404);

    // Queries through ADBC: two read the SQLite source, one fails.
    let (results, _) = client(
        "queries",
        &node.uri,
        &[
            "SELECT n_name FROM shop.main.nation WHERE n_regionkey = 1",
            "SELECT count(*) FROM shop.main.region",
            "SELECT * FROM no_such_table",
            // A hash join here: its build side is held by its plan, which the console's list
            // of recent queries must not keep.
            "SELECT r.r_name, count(*) FROM lake.public.nation n \
             JOIN lake.public.region r ON n.n_regionkey = r.r_regionkey GROUP BY r.r_name",
        ],
    );
    assert_eq!(results[0]["rows"], 5, "{results}");
    assert_eq!(results[1]["rows"], 1, "{results}");
    assert!(results[2]["error"].is_string(), "{results}");
    assert_eq!(results[3]["rows"], 5, "{results}");

    let (code, metrics) = get(&http, "/metrics");
    assert_eq!(code, 200);
    let value = |name: &str| sample(&metrics, name).unwrap_or_else(|| panic!("{name}: {metrics}"));
    assert!(value("flotilla_queries_total{outcome=\"ok\"}") >= 2.0);
    assert!(value("flotilla_queries_total{outcome=\"error\"}") >= 1.0);
    assert!(value("flotilla_source_statements_total{source=\"shop\"}") >= 2.0);
    // Five nations of region 1, and region's one count (or its five rows, pulled).
    assert!(value("flotilla_source_rows_total{source=\"shop\"}") >= 6.0);
    assert!(value("flotilla_result_rows_total") >= 6.0);
    // Statements this short teach the cost model nothing: its factors stay 1.
    assert_eq!(
        value("flotilla_source_learned_statements{source=\"shop\"}"),
        0.0
    );
    for part in ["remote", "fetch"] {
        let factor = format!("flotilla_source_learned_factor{{source=\"shop\",part=\"{part}\"}}");
        assert_eq!(value(&factor), 1.0);
    }
    assert!(value("flotilla_flight_calls_total{method=\"DoAction\",code=\"NotFound\"}") >= 1.0);
    assert_eq!(value("flotilla_queries_running"), 0.0);
    // Read from the node's memory pool when scraped: its size, and nothing held between queries.
    assert_eq!(value("flotilla_memory_limit_bytes"), 268435456.0);
    assert_eq!(value("flotilla_memory_reserved_bytes"), 0.0);
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");

    // A real Prometheus scrapes the node every second; its API must see the same counts.
    let binary = installed("prometheus", "prometheus");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: flotilla\n    \
             static_configs:\n      - targets: [\"{http}\"]\n"
        ),
    )
    .unwrap();
    let web = format!("127.0.0.1:{}", free_port());
    let mut server = Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus starts");
    flotilla_testkit::reaper::stop_at_exit(server.id(), "TERM");
    let query = |expr: &str| -> Option<f64> {
        let encoded: String = expr
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
                other => format!("%{other:02X}"),
            })
            .collect();
        // Not listening yet: no answer.
        TcpStream::connect(&web).ok()?;
        let (code, body) = get(&web, &format!("/api/v1/query?query={encoded}"));
        let json: Value = serde_json::from_str(&body).ok()?;
        (code == 200).then_some(())?;
        json["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    };
    let until = Instant::now() + Duration::from_secs(60);
    let mut seen = (None, None);
    while Instant::now() < until {
        seen = (
            query("up{job=\"flotilla\"}"),
            query("flotilla_source_statements_total{source=\"shop\"}"),
        );
        if seen.0 == Some(1.0) && seen.1.is_some_and(|n| n >= 2.0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(seen.0, Some(1.0), "Prometheus never scraped the node");
    assert!(
        seen.1.is_some_and(|n| n >= 2.0),
        "Prometheus has no statements to shop: {seen:?}"
    );
}

/// `flotilla serve --log-format json` writes one JSON object per line to standard error: where
/// it serves, each query's end (its id, outcome, rows) and, with
/// `FLOTILLA_LOG=info,flotilla::statement=debug`, each database statement with its SQL; a failed
/// query is logged with its error. A bad `FLOTILLA_LOG` stops the node with a message naming it.
#[test]
fn a_node_logs_queries_and_statements_as_json_lines() {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_flotilla"));
    command
        .env("FLOTILLA_LOG", "info,flotilla::statement=debug")
        .env("FLOTILLA_LOG_FORMAT", "json");
    let data = crate::common::demo_data();
    let text = format!(
        "[sources.shop]\nkind = \"sqlite\"\npath = \"{}\"\n",
        data.join("sqlite/tpch.sqlite").display()
    );
    let node = crate::flightsql::serve_with(command, &text, "127.0.0.1:0");
    let (results, _) = client(
        "queries",
        &node.uri,
        &[
            "SELECT n_name FROM shop.main.nation WHERE n_regionkey = 1",
            "SELECT * FROM no_such_table",
        ],
    );
    assert_eq!(results[0]["rows"], 5, "{results}");
    let events = || -> Vec<serde_json::Value> {
        let lines = node.log.lock().unwrap().clone();
        lines
            .iter()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
            })
            .collect()
    };
    // The query's end is logged when its stream is dropped, just after the client has its rows.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let ended = loop {
        let found: Vec<serde_json::Value> = events()
            .into_iter()
            .filter(|e| e["target"] == "flotilla::query" && e["message"] == "query ended")
            .collect();
        if !found.is_empty() || std::time::Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let all = events();
    let serving = all
        .iter()
        .find(|e| e["target"] == "flotilla::serve")
        .unwrap_or_else(|| panic!("{all:#?}"));
    assert_eq!(serving["level"], "INFO");
    assert!(
        serving["message"]
            .as_str()
            .unwrap()
            .contains("serving Arrow Flight SQL on grpc://"),
        "{serving}"
    );
    let ok = ended
        .iter()
        .find(|e| e["outcome"] == "ok" && e["rows"] == 5)
        .unwrap_or_else(|| panic!("{all:#?}"));
    assert!(
        ok["query"].as_str().is_some_and(|id| !id.is_empty()),
        "{ok}"
    );
    assert!(ok["seconds"].as_f64().is_some(), "{ok}");
    let failed = all
        .iter()
        .find(|e| e["target"] == "flotilla::query" && e["outcome"] == "error")
        .unwrap_or_else(|| panic!("{all:#?}"));
    assert!(
        failed["error"].as_str().unwrap().contains("no_such_table"),
        "{failed}"
    );
    let statement = all
        .iter()
        .find(|e| e["target"] == "flotilla::statement")
        .unwrap_or_else(|| panic!("{all:#?}"));
    assert_eq!(statement["level"], "DEBUG");
    assert_eq!(statement["source"], "shop");
    assert!(
        statement["sql"].as_str().unwrap().contains("\"nation\""),
        "{statement}"
    );
    // Inside its span, which names the query it ran for: the id of the query's own lines.
    assert_eq!(statement["span"]["name"], "statement", "{statement}");
    assert_eq!(statement["span"]["source"], "shop", "{statement}");
    assert_eq!(statement["span"]["query"], ok["query"], "{statement}");

    // Log levels the node cannot read stop it at once, naming the variable.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("FLOTILLA_LOG", "info,flotilla::statement=loud")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("FLOTILLA_LOG="), "{stderr}");
}

#[test]
fn a_query_over_the_memory_limit_fails_and_the_node_serves_the_next() {
    let node = serve("[server]\nmemory_limit = \"1M\"\n", &[]);
    let (results, _) = client(
        "queries",
        &node.uri,
        &[
            // The build side of this join (every comment of lineitem) needs more than 1 MiB,
            // and a hash join cannot spill.
            "SELECT count(*) FROM lineitem a JOIN lineitem b ON a.l_comment = b.l_comment",
            "SELECT count(*) FROM region",
        ],
    );
    let error = results[0]["error"].as_str().unwrap_or_default();
    // The gRPC code, as ADBC's driver reports it.
    assert!(error.contains("(ResourceExhausted;"), "{results}");
    assert!(
        error.contains("pool_size: 1024.0 KB"),
        "names the limit: {results}"
    );
    assert_eq!(results[1]["rows"], 1, "{results}");
}

/// With a `[cluster]`, `/metrics` counts the nodes this one knows by state, and `/readyz`
/// answers ready while one is up: here the node itself (listed once its port is known) and
/// a peer nothing listens on.
#[test]
fn a_cluster_node_reports_its_peers_by_state() {
    let dir = tempfile::tempdir().unwrap();
    let peers = dir.path().join("peers.txt");
    let nowhere = format!("grpc://127.0.0.1:{}", free_port());
    std::fs::write(&peers, format!("{nowhere}\n")).unwrap();
    let node = serve(
        &format!(
            "[server]\nhttp_listen = \"127.0.0.1:0\"\n\n[cluster]\npeers_file = \"{}\"\n",
            peers.display()
        ),
        &[],
    );
    std::fs::write(&peers, format!("{nowhere}\n{}\n", node.uri)).unwrap();
    let http = node.http.clone().expect("an HTTP port");
    let deadline = Instant::now() + Duration::from_secs(60);
    let (up, down) = loop {
        let (code, metrics) = get(&http, "/metrics");
        assert_eq!(code, 200);
        let up = sample(&metrics, "flotilla_cluster_nodes{state=\"up\"}");
        let down = sample(&metrics, "flotilla_cluster_nodes{state=\"down\"}");
        if (up, down) == (Some(1.0), Some(1.0)) || Instant::now() > deadline {
            break (up, down);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!((up, down), (Some(1.0), Some(1.0)));
    let (code, ready) = get(&http, "/readyz");
    assert_eq!(code, 200, "{ready}");
    assert!(ready.contains("1 of 2 node(s) up"), "{ready}");
}

/// `deploy/kubernetes`, from this crate.
fn kubernetes_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes")
}

#[test]
fn the_kubernetes_manifests_are_valid_and_agree_with_their_configuration() {
    let dir = kubernetes_dir();
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    // Every resource against Kubernetes' own schemas, rejecting unknown fields.
    let validate = flotilla_testkit::clients::venv()
        .join("bin")
        .join("kubernetes-validate");
    let resources = ["secret.yaml", "services.yaml", "statefulset.yaml"];
    let out = Command::new(&validate)
        .arg("--strict")
        .args(resources.map(|r| dir.join(r)))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}: run `bash scripts/setup.sh` (it installs kubernetes-validate)",
                validate.display()
            )
        });
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{report}");
    assert_eq!(report.matches("passed for resource").count(), 4, "{report}");
    for resource in resources {
        assert!(
            read("kustomization.yaml").contains(&format!("- {resource}")),
            "kustomization.yaml leaves out {resource}"
        );
    }

    // The configuration the pods mount parses, and the manifests match it.
    let config = Config::parse(&read("flotilla.toml"), "flotilla.toml", &dir)
        .unwrap_or_else(|e| panic!("deploy/kubernetes/flotilla.toml: {e}"));
    let statefulset = read("statefulset.yaml");
    let services = read("services.yaml");
    for (name, port) in [
        ("flight-sql", port_of(&config.server.listen)),
        ("http", port_of(&config.server.http_listen)),
        ("postgres", port_of(&config.server.pg_listen)),
    ] {
        assert!(
            statefulset.contains(&format!(
                "- name: {name}\n              containerPort: {port}"
            )),
            "statefulset.yaml does not expose {name} on {port}"
        );
        assert!(
            services.contains(&format!("port: {port}\n      targetPort: {name}")),
            "services.yaml does not route {name} ({port})"
        );
    }
    for probe in ["path: /readyz", "path: /healthz"] {
        assert!(
            statefulset.contains(probe),
            "statefulset.yaml lacks {probe}"
        );
    }
    let cluster = config.cluster.expect("a [cluster] in flotilla.toml");
    match &cluster.peers {
        Peers::Dns { name, port } => {
            assert!(
                services.contains(&format!("name: {name}\nspec:\n  clusterIP: None")),
                "peers_dns names {name}, which services.yaml does not make headless"
            );
            assert_eq!(port.to_string(), port_of(&config.server.listen));
            assert!(statefulset.contains(&format!("serviceName: {name}")));
        }
        other => panic!("the cluster should find its nodes by DNS, not {other:?}"),
    }
    // Every variable the configuration reads comes from the Secret.
    let mut variables = vec![cluster.secret_env.expect("secret_env")];
    for user in &config.server.users {
        if let UserPassword::Env(variable) = &user.password {
            variables.push(variable.clone());
        }
    }
    for variable in variables {
        assert!(
            statefulset.contains(&format!(
                "- name: {variable}\n              valueFrom:\n                secretKeyRef:"
            )),
            "statefulset.yaml does not set {variable} from the Secret"
        );
    }
    // The memory pool stays below the container's limit.
    let limit = statefulset
        .split("limits:\n              memory: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.strip_suffix("Gi"))
        .and_then(|v| v.parse::<usize>().ok())
        .expect("a memory limit in Gi in statefulset.yaml");
    let pool = config.server.memory_limit.expect("memory_limit");
    assert!(
        pool < limit << 30,
        "memory_limit {pool} is not below the pod's {limit}Gi"
    );
}

fn port_of(address: &Option<String>) -> String {
    address
        .as_deref()
        .and_then(|a| a.rsplit_once(':'))
        .map(|(_, port)| port.to_string())
        .unwrap_or_default()
}

/// The web console in headless Chromium while a distributed query runs on three nodes: the
/// page lists the query, draws its stages with the nodes of their tasks and the statement sent
/// to SQLite, and its Cancel button stops the query on every node. Screenshots are kept in
/// the target directory (`tmp/console/`).
#[test]
fn the_console_shows_a_distributed_query_and_cancels_it_on_every_node() {
    let browser = installed("chromium", "chromium");
    let dir = tempfile::tempdir().unwrap();
    let peers = dir.path().join("peers.txt");
    std::fs::write(&peers, "").unwrap();
    let extra = format!(
        "[server]\nhttp_listen = \"127.0.0.1:0\"\n\n[cluster]\npeers_file = \"{}\"\n\n\
         [session.options]\n\"distributed.min_bytes\" = 0\n\"distributed.bytes_per_task\" = 1\n\
         \"distributed.results_from_workers\" = false\n",
        peers.display()
    );
    let nodes: Vec<_> = (0..3).map(|_| serve(&extra, &[])).collect();
    let uris: Vec<&str> = nodes.iter().map(|n| n.uri.as_str()).collect();
    std::fs::write(&peers, uris.join("\n") + "\n").unwrap();
    let https: Vec<String> = nodes
        .iter()
        .map(|n| n.http.clone().expect("an HTTP port"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while sample(
        &get(&https[0], "/metrics").1,
        "flotilla_cluster_nodes{state=\"up\"}",
    ) != Some(3.0)
    {
        assert!(Instant::now() < deadline, "node 0 never saw 3 nodes up");
        std::thread::sleep(Duration::from_millis(300));
    }

    // Long enough to look at: every lineitem row (SQLite) joined with a third of Parquet's.
    let sql = "SELECT a.l_returnflag, count(*) AS n FROM shop.main.lineitem a \
               JOIN lake.public.lineitem b ON a.l_returnflag = b.l_returnflag \
               GROUP BY a.l_returnflag";
    let artifacts = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console");
    std::fs::create_dir_all(&artifacts).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/console.py");
    let mut child = Command::new(flotilla_testkit::clients::python())
        .arg(&script)
        .args([browser, uris[0], &format!("http://{}/", https[0])])
        .arg(&artifacts)
        .arg(sql)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    // While the page is driven: the most task streams each node ran at once.
    let mut most = [0.0f64; 3];
    while child.try_wait().unwrap().is_none() {
        for (node, http) in https.iter().enumerate() {
            let running = sample(&get(http, "/metrics").1, "flotilla_task_streams_running");
            most[node] = most[node].max(running.unwrap_or(0.0));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let output = child.wait_with_output().unwrap();
    let (stdout, stderr) = crate::common::text(&output);
    assert!(
        output.status.success(),
        "console.py failed:\n{stdout}\n{stderr}"
    );
    let seen: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}\n{stderr}"));

    // The stage graph: the root and at least one stage below it, whose tasks name every node.
    let stages = seen["stages"].as_array().unwrap();
    assert!(stages.len() >= 2, "{seen}");
    assert_eq!(
        seen["edges"].as_u64().unwrap() as usize,
        stages.len() - 1,
        "{seen}"
    );
    let tasks: Vec<&str> = stages
        .iter()
        .flat_map(|s| s["tasks"].as_array().unwrap())
        .filter_map(Value::as_str)
        .collect();
    for uri in &uris {
        assert!(
            tasks.iter().any(|t| t.ends_with(uri)),
            "no task on {uri}: {seen}"
        );
    }
    assert!(
        seen["detail_state"]
            .as_str()
            .unwrap()
            .contains("distributed"),
        "{seen}"
    );
    // The statement SQLite was sent, as sent.
    let statements = seen["statements"].as_array().unwrap();
    assert!(
        statements
            .iter()
            .any(|s| s.as_str().unwrap().contains("l_returnflag")),
        "{seen}"
    );
    let nodes_listed = seen["nodes"].as_array().unwrap();
    assert_eq!(nodes_listed.len(), 3, "{seen}");
    assert!(nodes_listed.iter().all(|n| n[1] == "up"), "{seen}");
    let catalogs = seen["catalogs"].as_array().unwrap();
    assert!(catalogs.contains(&Value::from("shop")) && catalogs.contains(&Value::from("lake")));

    // Cancelled from the page: the client's query fails as cancelled, the node lists it so.
    assert_eq!(seen["cancel_enabled"], true, "{seen}");
    assert_eq!(seen["listed_after_cancel"], "cancelled", "{seen}");
    let error = seen["client"]["error"]
        .as_str()
        .unwrap_or_else(|| panic!("the query was not stopped: {seen}"));
    assert!(error.to_lowercase().contains("cancel"), "{error}");
    let id = seen["id"].as_u64().unwrap();
    let (code, detail) = get(&https[0], &format!("/api/queries/{id}"));
    assert_eq!(code, 200, "{detail}");
    let detail: Value = serde_json::from_str(&detail).unwrap();
    assert_eq!(detail["state"], "cancelled", "{detail}");
    // Ended, it is still described: its stages and plan, kept as text.
    assert_eq!(
        detail["stages"].as_array().unwrap().len(),
        stages.len(),
        "{detail}"
    );
    assert!(
        detail["plan"].as_str().unwrap().contains("DistributedExec"),
        "{detail}"
    );
    assert_eq!(get(&https[0], &format!("/api/queries/{id}/cancel")).0, 405);

    // Every node ran tasks of the query, and none is running any once it was cancelled.
    for (node, http) in https.iter().enumerate() {
        assert!(most[node] > 0.0, "node {node} never ran a task: {most:?}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let running = sample(&get(http, "/metrics").1, "flotilla_task_streams_running");
            if running == Some(0.0) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {node} still runs {running:?} task streams 30 s after the cancel"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    assert!(artifacts.join("console-running.png").is_file());
}

/// The console lists the PostgreSQL port's statements too (protocol, SQL, rows, outcome), and
/// cancels one: psql's statement ends with 57014 and the connection's next statement runs.
#[test]
fn the_console_lists_and_cancels_the_postgresql_ports_statements() {
    let node = serve(
        "[server]\npg_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\n",
        &[],
    );
    let http = node.http.clone().expect("an HTTP port");
    let (host, port) = node.pg.as_deref().unwrap().rsplit_once(':').unwrap();
    let psql = |sql: &str| {
        Command::new("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args([
                "-h", host, "-p", port, "-U", "anyone", "-d", "flotilla", "-c", sql,
            ])
            .env("PGCONNECT_TIMEOUT", "10")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("psql runs (apt-get install postgresql-client: scripts/setup.sh)")
    };
    let queries = || -> Value { serde_json::from_str(&get(&http, "/api/queries").1).unwrap() };
    // Without a [cluster] the node lists no peers (the page says it is one node).
    assert_eq!(get(&http, "/api/nodes"), (200, "[]".to_string()));

    let counted = psql("SELECT count(*) FROM lake.public.region")
        .wait_with_output()
        .unwrap();
    assert!(counted.status.success());
    let listed = queries();
    let ended = listed["recent"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["sql"].as_str().unwrap().contains("lake.public.region"))
        .unwrap_or_else(|| panic!("not listed: {listed}"))
        .clone();
    assert_eq!(ended["protocol"], "postgres", "{ended}");
    assert_eq!(ended["state"], "ok", "{ended}");
    assert_eq!(ended["rows"], 1, "{ended}");

    // Not answered from statistics (a count of a cross join would be).
    let long = "SELECT max(a.l_orderkey + b.l_orderkey) \
                FROM lake.public.lineitem a CROSS JOIN lake.public.lineitem b";
    let running = psql(long);
    let deadline = Instant::now() + Duration::from_secs(60);
    let id = loop {
        let listed = queries();
        let live = listed["live"].as_array().unwrap();
        if let Some(q) = live
            .iter()
            .find(|q| q["sql"].as_str().unwrap().contains("CROSS JOIN"))
        {
            assert_eq!(q["state"], "running", "{q}");
            break q["id"].as_u64().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "never listed as running: {listed}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let (code, body) = request(&http, "POST", &format!("/api/queries/{id}/cancel"));
    assert_eq!(code, 200, "{body}");
    let output = running.wait_with_output().unwrap();
    let (_, stderr) = crate::common::text(&output);
    assert!(!output.status.success());
    assert!(stderr.contains("canceling statement"), "{stderr}");
    let (_, detail) = get(&http, &format!("/api/queries/{id}"));
    let detail: Value = serde_json::from_str(&detail).unwrap();
    assert_eq!(detail["state"], "cancelled", "{detail}");
    // Cancelling again: it has ended.
    assert_eq!(
        request(&http, "POST", &format!("/api/queries/{id}/cancel")).0,
        409
    );
    assert_eq!(request(&http, "POST", "/api/queries/999999/cancel").0, 404);
    let again = psql("SELECT 1").wait_with_output().unwrap();
    assert!(again.status.success());
}

/// With `[[server.users]]`, the console and its API ask for a user (HTTP Basic, what a browser
/// prompts for); the probes and the metrics stay open.
#[test]
fn the_console_asks_for_a_user_when_the_node_has_users() {
    let node = serve(
        "[server]\nhttp_listen = \"127.0.0.1:0\"\n\n\
         [[server.users]]\nname = \"ops\"\npassword_env = \"FLOTILLA_TEST_OPS\"\n",
        &[("FLOTILLA_TEST_OPS", "on call")],
    );
    let http = node.http.clone().expect("an HTTP port");
    // The status line and headers, and the body, of `GET path` with `authorization`.
    let call = |path: &str, authorization: Option<&str>| {
        let mut stream = TcpStream::connect(&http).unwrap();
        let header = authorization
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: {http}\r\n{header}\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        (head.to_string(), body.to_string())
    };
    let basic = |credentials: &str| {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::prelude::BASE64_STANDARD.encode(credentials)
        )
    };
    for path in ["/", "/api/queries", "/api/nodes", "/api/sources"] {
        let (head, _) = call(path, None);
        assert!(head.starts_with("HTTP/1.0 401"), "{path}: {head}");
        assert!(
            head.to_lowercase()
                .contains("www-authenticate: basic realm=\"flotilla\""),
            "{head}"
        );
        let (head, _) = call(path, Some(&basic("ops:wrong")));
        assert!(head.starts_with("HTTP/1.0 401"), "{path}: {head}");
        let (head, _) = call(path, Some(&basic("nobody:on call")));
        assert!(head.starts_with("HTTP/1.0 401"), "{path}: {head}");
        let (head, body) = call(path, Some(&basic("ops:on call")));
        assert!(head.starts_with("HTTP/1.0 200"), "{path}: {head}");
        assert!(!body.is_empty());
    }
    let (head, page) = call("/", Some(&basic("ops:on call")));
    assert!(head.contains("text/html"), "{head}");
    assert!(page.contains("<title>Flotilla console</title>"));
    let (head, _) = call("/api/queries", Some("Basic not base64!"));
    assert!(head.starts_with("HTTP/1.0 401"), "{head}");
    for open in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(get(&http, open).0, 200, "{open}");
    }
}

/// An OTLP/gRPC trace receiver (what an OpenTelemetry collector serves on 4317), keeping what
/// it is sent.
#[derive(Default, Clone)]
struct Collector {
    received: std::sync::Arc<
        std::sync::Mutex<
            Vec<opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest>,
        >,
    >,
}

#[tonic::async_trait]
impl opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService
    for Collector
{
    async fn export(
        &self,
        request: tonic::Request<
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
        >,
    ) -> Result<
        tonic::Response<
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse,
        >,
        tonic::Status,
    > {
        self.received.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(Default::default()))
    }
}

/// One exported span: its name, its attributes as text, and the service that sent it.
#[derive(Debug)]
struct Exported {
    name: String,
    attributes: Vec<(String, String)>,
    service: String,
}

impl Exported {
    fn attribute(&self, key: &str) -> String {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
}

fn exported_spans(collector: &Collector) -> Vec<Exported> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    let text = |value: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>| match value
        .as_ref()
        .and_then(|v| v.value.as_ref())
    {
        Some(Any::StringValue(s)) => s.clone(),
        Some(Any::IntValue(i)) => i.to_string(),
        other => format!("{other:?}"),
    };
    let mut spans = Vec::new();
    for request in collector.received.lock().unwrap().iter() {
        for resource in &request.resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .map(|a| text(&a.value))
                .unwrap_or_default();
            for scope in &resource.scope_spans {
                for span in &scope.spans {
                    let attributes = span
                        .attributes
                        .iter()
                        .map(|a| (a.key.clone(), text(&a.value)))
                        .collect();
                    spans.push(Exported {
                        name: span.name.clone(),
                        attributes,
                        service: service.clone(),
                    });
                }
            }
        }
    }
    spans
}

/// With `[server] otlp_endpoint`, the node exports its spans to an OpenTelemetry collector:
/// a query's span and its statements' spans, with the query's id, as service `flotilla`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_exports_its_spans_to_an_opentelemetry_collector() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let service =
        opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer::new(
            collector.clone(),
        );
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream_of(listener)),
    );
    let node = serve(
        &format!("[server]\notlp_endpoint = \"http://{address}\"\n"),
        &[],
    );
    let uri = node.uri.clone();
    let (results, _) = tokio::task::spawn_blocking(move || {
        client(
            "queries",
            &uri,
            &["SELECT n_name FROM shop.main.nation WHERE n_regionkey = 1"],
        )
    })
    .await
    .unwrap();
    assert_eq!(results[0]["rows"], 5, "{results}");
    // Batches leave the node every second.
    let deadline = Instant::now() + Duration::from_secs(30);
    let spans = loop {
        let spans = exported_spans(&collector);
        let named = |name: &str| spans.iter().any(|s| s.name == name);
        if (named("query") && named("statement")) || Instant::now() > deadline {
            break spans;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let query = spans
        .iter()
        .find(|s| s.name == "query")
        .unwrap_or_else(|| panic!("no query span: {spans:?}"));
    assert_eq!(query.service, "flotilla");
    let id = query.attribute("query");
    assert!(!id.is_empty(), "{query:?}");
    let statement = spans
        .iter()
        .find(|s| s.name == "statement" && s.attribute("source") == "shop")
        .unwrap_or_else(|| panic!("no statement span of shop: {spans:?}"));
    assert_eq!(statement.attribute("query"), id, "{statement:?}");
}

/// Accepted connections of `listener`, as tonic's server takes them.
fn tokio_stream_of(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        Some((accepted, listener))
    })
}
