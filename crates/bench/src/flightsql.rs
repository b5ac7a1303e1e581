//! `flotilla bench flightsql`: what a client of `flotilla serve` gets.
//!
//! 1. Throughput: `SELECT * FROM lineitem` (Parquet) to a Python ADBC client, MB/s and rows/s,
//!    beside pyarrow reading the same Parquet file locally (the upper bound).
//! 2. Latency: `SELECT 1` and a point lookup (`shop.main.orders` by key, pushed into SQLite),
//!    with the Rust Flight SQL client: N sequential calls, then the same N spread over 16
//!    concurrent clients; p50/p99 per call and calls per second. A sequential call is also
//!    split into its two requests (GetFlightInfo plans, DoGet runs and fetches), and the same
//!    statement is planned and run in this process without gRPC: what is left is the network
//!    path's share. A Handshake (a round trip through the same layers, no SQL) gives the floor
//!    of one call.
//!
//! 3. The PostgreSQL port: `SELECT * FROM lineitem` read by psycopg 3, and with `--pg-url`
//!    the same table read by psycopg from PostgreSQL itself (loaded there by
//!    `flotilla bench federation --source postgres` into schema `tpch_sf<scale>`).
//!
//! The server runs in this process on a loopback port, over the demo's data at `--scale`.

use arrow_flight::sql::client::FlightSqlServiceClient;
use datafusion::physical_plan::collect;
use datafusion::prelude::SessionContext;
use flotilla_common::{Error, Result};
use flotilla_flightsql::{FlightSqlServer, SessionProvider, SharedCatalogs};
use flotilla_node::config::{Config, SessionDefaults};
use flotilla_node::{context, demo};
use futures::TryStreamExt;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// The Python client script, written to a temp file when the benchmark runs.
const THROUGHPUT_SCRIPT: &str = include_str!("flight_sql_throughput.py");

/// The psycopg client of the PostgreSQL-port measurement.
const PG_SCRIPT: &str = include_str!("pg_throughput.py");

/// The Python client of the cluster measurement.
const CLUSTER_SCRIPT: &str = include_str!("cluster_results.py");

/// The big result of the cluster measurement: most of lineitem, unordered (its last stage only
/// gathers, so the workers can serve it).
const CLUSTER_SQL: &str = "SELECT l_orderkey, l_partkey, l_suppkey, l_linenumber, l_quantity, \
                           l_extendedprice, l_discount, l_shipdate, l_shipmode \
                           FROM lineitem WHERE l_quantity > 5";

/// What the benchmark measures.
pub struct Options {
    pub scale: f64,
    pub cache: PathBuf,
    /// Calls per latency measurement.
    pub calls: usize,
    /// Concurrent clients in the second latency measurement.
    pub clients: usize,
    /// Runs per throughput measurement (the best is reported).
    pub repeat: usize,
    /// Nodes of a cluster to measure instead (0: one node, the throughput and latency
    /// measurements).
    pub workers: usize,
    /// A PostgreSQL server holding TPC-H at the same scale, to read lineitem from beside the
    /// node's PostgreSQL port.
    pub pg_url: Option<String>,
    /// The parts to run (`throughput`, `latency`, `pg`); empty: all.
    pub only: Vec<String>,
}

impl Options {
    fn runs(&self, part: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| p == part)
    }
}

/// Runs the benchmark and prints its figures to `out`.
///
/// # Errors
/// When the data cannot be prepared, the server cannot start, a call fails, or the Python
/// clients are not installed (the message names `scripts/setup.sh`).
pub async fn run(options: &Options, out: &mut dyn Write) -> Result<()> {
    if options.workers > 0 {
        return cluster(options, out).await;
    }
    let (config_path, config) = demo_config(options)?;
    let ctx = context::build_context(&config).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = FlightSqlServer::new(Arc::new(SharedCatalogs::new(&ctx)));
    let serving = tokio::spawn(server.serve(listener, async {
        let _ = stopped.await;
    }));

    writeln!(
        out,
        "Flight SQL benchmark: TPC-H SF {} from {}, server grpc://{addr}",
        options.scale,
        config_path.parent().unwrap_or(Path::new(".")).display()
    )?;
    let parquet = config_path
        .parent()
        .unwrap_or(Path::new("."))
        .join("parquet")
        .join("lineitem.parquet");
    if options.runs("throughput") {
        throughput(addr, &parquet, options.repeat, out).await?;
    }
    if options.runs("latency") {
        latency(addr, &ctx, options, out).await?;
    }
    if options.runs("pg") {
        pg_throughput(&ctx, options, out).await?;
    }

    let _ = stop.send(());
    let _ = serving.await;
    Ok(())
}

/// The demo's configuration at `options.scale` (generated on first use), unqualified names
/// resolving to its Parquet files; and where it is.
fn demo_config(options: &Options) -> Result<(PathBuf, Config)> {
    let config_path = demo::prepare(&options.cache, options.scale)?;
    let mut config = Config::load(&config_path)?;
    config.session = SessionDefaults {
        default_catalog: Some("lake".into()),
        default_schema: Some("public".into()),
        ..SessionDefaults::default()
    };
    Ok((config_path, config))
}

/// A big result read from a cluster of `options.workers` nodes (each a `flotilla serve` over
/// the same data, on a loopback port of this process, listing all of them as peers): on node 0
/// alone, through node 0, and from the workers (distributed with a task on every node).
async fn cluster(options: &Options, out: &mut dyn Write) -> Result<()> {
    let (config_path, mut base) = demo_config(options)?;
    let mut listeners = Vec::new();
    for _ in 0..options.workers {
        listeners.push(tokio::net::TcpListener::bind("127.0.0.1:0").await?);
    }
    let urls = listeners
        .iter()
        .map(|listener| Ok(format!("grpc://{}", listener.local_addr()?)))
        .collect::<Result<Vec<_>>>()?;
    base.cluster = Some(flotilla_node::config::ClusterConfig {
        peers: flotilla_node::config::Peers::Static(urls.clone()),
        tls_root_cert: None,
        secret_env: None,
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut nodes = Vec::new();
    for listener in listeners {
        let config = base.clone();
        let mut stopped = stopped.clone();
        nodes.push(tokio::spawn(async move {
            flotilla_node::serve::serve_on(&config, listener, async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .await
        }));
    }
    writeln!(
        out,
        "Flight SQL from a cluster: TPC-H SF {} from {}, {} nodes on {}",
        options.scale,
        config_path.parent().unwrap_or(Path::new(".")).display(),
        urls.len(),
        urls.join(", ")
    )?;
    eprintln!(
        "cluster: the same result three ways over ADBC, {} round(s)…",
        options.repeat.max(1)
    );
    let figures = run_script(
        CLUSTER_SCRIPT,
        vec![
            urls[0].clone(),
            options.repeat.max(1).to_string(),
            CLUSTER_SQL.to_string(),
        ],
    )
    .await;
    let _ = stop.send(true);
    for node in nodes {
        if let Ok(Err(e)) = node.await {
            return Err(e);
        }
    }
    let figures = figures?;
    let way = |name: &str, key: &str| {
        figures
            .get(name)
            .and_then(|way| way.get(key))
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(f64::NAN)
    };
    let mb = way("one_node", "bytes") / 1e6;
    writeln!(
        out,
        "\n{CLUSTER_SQL}\n({} rows, {mb:.0} MB in Arrow), asked of node 0, best of {}:",
        way("one_node", "rows"),
        options.repeat.max(1)
    )?;
    writeln!(
        out,
        "  {:<38} {:>8} {:>8} {:>10} {:>13}",
        "", "seconds", "MB/s", "endpoints", "vs one node"
    )?;
    for (label, name) in [
        ("node 0 alone", "one_node"),
        ("distributed, rows through node 0", "coordinator"),
        ("distributed, rows from the workers", "workers"),
    ] {
        let seconds = way(name, "s");
        writeln!(
            out,
            "  {label:<38} {seconds:>8.2} {:>8.0} {:>10} {:>13.2}",
            mb / seconds,
            way(name, "endpoints"),
            seconds / way("one_node", "s")
        )?;
    }
    writeln!(
        out,
        "  from the workers / through node 0: {:.2}",
        way("workers", "s") / way("coordinator", "s")
    )?;
    Ok(())
}

/// Runs `script` (one of the bundled Python clients) with `args` in the client virtual
/// environment and returns the JSON object it printed. It waits on a blocking thread: the
/// runtime's own threads serve the client.
async fn run_script(script: &'static str, args: Vec<String>) -> Result<serde_json::Value> {
    tokio::task::spawn_blocking(move || run_script_blocking(script, &args))
        .await
        .map_err(|e| Error::internal(format!("the Python client's thread: {e}")))?
}

fn run_script_blocking(script: &str, args: &[String]) -> Result<serde_json::Value> {
    let python = python()?;
    let dir = std::env::temp_dir().join(format!("flotilla-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("client.py");
    std::fs::write(&path, script)?;
    let output = std::process::Command::new(python)
        .arg(&path)
        .args(args)
        .output()?;
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(Error::internal(format!(
            "the Python client failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    serde_json::from_str(stdout.trim())
        .map_err(|e| Error::internal(format!("the Python client printed {stdout}: {e}")))
}

/// The Python interpreter of the client virtual environment (see `scripts/setup.sh`).
fn python() -> Result<PathBuf> {
    let venv = match std::env::var_os("FLOTILLA_VENV") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(|| PathBuf::from(".cache"))
            .join("flotilla")
            .join("venv"),
    };
    let python = venv.join("bin").join("python");
    if python.is_file() {
        Ok(python)
    } else {
        Err(Error::not_found(format!(
            "the Python Flight SQL clients are not installed ({} is missing): run `bash \
             scripts/setup.sh`, which creates that environment with ADBC and pyarrow",
            python.display()
        )))
    }
}

/// `SELECT * FROM lineitem` through psycopg from the node's PostgreSQL port (served here, over
/// the same sessions), and from PostgreSQL itself with `options.pg_url`.
async fn pg_throughput(
    ctx: &datafusion::prelude::SessionContext,
    options: &Options,
    out: &mut dyn Write,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = flotilla_pgwire::PgServer::new(Arc::new(SharedCatalogs::new(ctx)), Vec::new());
    let serving = tokio::spawn(server.serve(listener, async {
        let _ = stopped.await;
    }));
    let mut args = vec![
        options.repeat.max(1).to_string(),
        "Flotilla (PostgreSQL port)".to_string(),
        format!(
            "host={} port={} dbname=flotilla user=bench",
            addr.ip(),
            addr.port()
        ),
        "SELECT * FROM lineitem".to_string(),
    ];
    if let Some(url) = &options.pg_url {
        args.extend([
            "PostgreSQL".to_string(),
            url.clone(),
            format!(
                "SELECT * FROM {}.lineitem",
                crate::federation::federation_schema(options.scale)
            ),
        ]);
    }
    eprintln!("PostgreSQL protocol: SELECT * FROM lineitem through psycopg…");
    let figures = run_script(PG_SCRIPT, args).await;
    let _ = stop.send(());
    let _ = serving.await;
    let figures = figures?;
    writeln!(
        out,
        "\nSELECT * FROM lineitem through psycopg 3 (text format, fetched 100,000 rows at a \
         time), best of {}:",
        options.repeat.max(1)
    )?;
    writeln!(out, "  {:<34} {:>8} {:>14}", "", "seconds", "rows/s")?;
    let mut seconds = Vec::new();
    for (name, figure) in figures.as_object().into_iter().flatten() {
        let s = figure["s"].as_f64().unwrap_or(f64::NAN);
        let rows = figure["rows"].as_f64().unwrap_or(f64::NAN);
        writeln!(out, "  {name:<34} {s:>8.2} {:>14.0}", rows / s)?;
        seconds.push(s);
    }
    if let [flotilla, postgres] = seconds.as_slice() {
        writeln!(
            out,
            "  Flotilla / PostgreSQL (time): {:.2}",
            flotilla / postgres
        )?;
    }
    Ok(())
}

async fn throughput(
    addr: SocketAddr,
    parquet: &Path,
    repeat: usize,
    out: &mut dyn Write,
) -> Result<()> {
    eprintln!("throughput: SELECT * FROM lineitem over ADBC, and pyarrow reading the file…");
    let figures = run_script(
        THROUGHPUT_SCRIPT,
        vec![
            format!("grpc://{addr}"),
            parquet.display().to_string(),
            repeat.max(1).to_string(),
        ],
    )
    .await?;
    let figures: std::collections::HashMap<String, f64> = serde_json::from_value(figures)
        .map_err(|e| Error::internal(format!("the Python client's figures: {e}")))?;
    let get = |key: &str| figures.get(key).copied().unwrap_or(f64::NAN);
    // MB/s of both rows is over the same size: the table as pyarrow reads it from Parquet (the
    // server's string views make its own Arrow size larger for the same data).
    let mb = get("local_bytes") / 1e6;
    writeln!(
        out,
        "\nThroughput of SELECT * FROM lineitem ({} rows, {mb:.0} MB as pyarrow reads it), best \
         of {repeat}:",
        get("rows")
    )?;
    writeln!(
        out,
        "  {:<34} {:>8} {:>10} {:>14}",
        "", "seconds", "MB/s", "rows/s"
    )?;
    for (label, seconds, rows) in [
        ("Flotilla → ADBC (Python)", get("adbc_s"), get("rows")),
        (
            "pyarrow reading the Parquet file",
            get("local_s"),
            get("local_rows"),
        ),
    ] {
        writeln!(
            out,
            "  {label:<34} {seconds:>8.2} {:>10.0} {:>14.0}",
            mb / seconds,
            rows / seconds
        )?;
    }
    writeln!(
        out,
        "  ratio (ADBC time / local read time): {:.2}",
        get("adbc_s") / get("local_s")
    )?;
    writeln!(
        out,
        "  ADBC SELECT 1, 200 sequential calls: p50 {:.2} ms, p99 {:.2} ms",
        get("adbc_select1_p50_ms"),
        get("adbc_select1_p99_ms")
    )?;
    Ok(())
}

async fn client(addr: SocketAddr) -> Result<FlightSqlServiceClient<Channel>> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .map_err(|e| Error::internal(e.to_string()))?
        .connect()
        .await
        .map_err(|e| Error::unavailable(format!("connecting to {addr}: {e}")))?;
    let mut client = FlightSqlServiceClient::new(channel);
    client
        .handshake("", "")
        .await
        .map_err(|e| Error::unavailable(format!("handshake: {e}")))?;
    Ok(client)
}

/// One call: plan (GetFlightInfo) and fetch (DoGet) every row; its time and GetFlightInfo's.
async fn call(
    client: &mut FlightSqlServiceClient<Channel>,
    sql: String,
) -> Result<(Duration, Duration)> {
    let started = Instant::now();
    let info = client
        .execute(sql, None)
        .await
        .map_err(|e| Error::internal(format!("GetFlightInfo: {e}")))?;
    let planned = started.elapsed();
    for endpoint in info.endpoint {
        let Some(ticket) = endpoint.ticket else {
            continue;
        };
        let stream = client
            .do_get(ticket)
            .await
            .map_err(|e| Error::internal(format!("DoGet: {e}")))?;
        let _batches: Vec<_> = stream
            .try_collect()
            .await
            .map_err(|e| Error::internal(format!("DoGet: {e}")))?;
    }
    Ok((started.elapsed(), planned))
}

/// `sql` planned and run the way the server does it, in a session of `ctx` like the server's,
/// without gRPC.
async fn in_process(session: &SessionContext, sql: &str) -> Result<Duration> {
    let started = Instant::now();
    let frame = session.sql(sql).await?;
    let plan = frame.create_physical_plan().await?;
    collect(plan, session.task_ctx()).await?;
    Ok(started.elapsed())
}

/// The SQL of call `i` of a kind.
fn statement(kind: &str, i: usize) -> String {
    match kind {
        "SELECT 1" => "SELECT 1".to_string(),
        // Keys 1..=4 of every 32 exist in TPC-H orders; 7 × i lands on many of them.
        _ => format!(
            "SELECT o_orderkey, o_totalprice, o_orderdate FROM shop.main.orders WHERE o_orderkey = {}",
            (i * 7) % 6000 * 32 + 1
        ),
    }
}

async fn latency(
    addr: SocketAddr,
    ctx: &SessionContext,
    options: &Options,
    out: &mut dyn Write,
) -> Result<()> {
    let calls = options.calls.max(1);
    let clients = options.clients.max(1);
    writeln!(
        out,
        "\nLatency per call (GetFlightInfo + DoGet), Rust Flight SQL client, {calls} calls:"
    )?;
    writeln!(
        out,
        "  {:<44} {:>9} {:>9} {:>10}",
        "", "p50 ms", "p99 ms", "calls/s"
    )?;
    // The floor of any call: one gRPC round trip through the same layers (sessions, metrics)
    // that runs no SQL. GetFlightInfo + DoGet make two.
    eprintln!("latency: {calls} sequential handshakes…");
    let mut one = client(addr).await?;
    let started = Instant::now();
    let mut times = Vec::with_capacity(calls);
    for _ in 0..calls {
        let call = Instant::now();
        one.handshake("", "")
            .await
            .map_err(|e| Error::internal(format!("Handshake: {e}")))?;
        times.push(call.elapsed());
    }
    report(
        out,
        "one gRPC round trip (Handshake, no SQL)",
        &mut times,
        started.elapsed(),
    )?;
    for kind in ["SELECT 1", "point lookup (SQLite, by key)"] {
        // Sequential.
        eprintln!("latency: {kind}, {calls} sequential calls…");
        let mut one = client(addr).await?;
        call(&mut one, statement(kind, 0)).await?; // warm-up
        let started = Instant::now();
        let mut times = Vec::with_capacity(calls);
        let mut planning = Vec::with_capacity(calls);
        let mut fetching = Vec::with_capacity(calls);
        for i in 0..calls {
            let (time, planned) = call(&mut one, statement(kind, i)).await?;
            times.push(time);
            planning.push(planned);
            fetching.push(time.saturating_sub(planned));
        }
        let wall = started.elapsed();
        report(out, &format!("{kind}, 1 client"), &mut times, wall)?;
        report_part(out, "  of which GetFlightInfo (plan)", &mut planning)?;
        report_part(out, "  of which DoGet (run, fetch)", &mut fetching)?;

        // The server's work alone: a session like the server's, no gRPC.
        let session = SharedCatalogs::new(ctx).new_session()?;
        in_process(&session, &statement(kind, 0)).await?; // warm-up
        let started = Instant::now();
        let mut times = Vec::with_capacity(calls);
        for i in 0..calls {
            times.push(in_process(&session, &statement(kind, i)).await?);
        }
        report(
            out,
            "  in process (plan, run; no gRPC)",
            &mut times,
            started.elapsed(),
        )?;

        // Concurrent.
        eprintln!("latency: {kind}, {calls} calls from {clients} clients…");
        let mut tasks = Vec::new();
        let started = Instant::now();
        for c in 0..clients {
            let mut each = client(addr).await?;
            let share = calls / clients + usize::from(c < calls % clients);
            let kind = kind.to_string();
            tasks.push(tokio::spawn(async move {
                let mut times = Vec::with_capacity(share);
                for i in 0..share {
                    times.push(call(&mut each, statement(&kind, i * clients + c)).await?.0);
                }
                Ok::<_, Error>(times)
            }));
        }
        let mut times = Vec::with_capacity(calls);
        for task in tasks {
            times.extend(
                task.await
                    .map_err(|e| Error::internal(format!("a client task failed: {e}")))??,
            );
        }
        report(
            out,
            &format!("{kind}, {clients} clients"),
            &mut times,
            started.elapsed(),
        )?;
    }
    Ok(())
}

fn report(out: &mut dyn Write, label: &str, times: &mut [Duration], wall: Duration) -> Result<()> {
    let (p50, p99) = percentiles(times);
    let rate = times.len() as f64 / wall.as_secs_f64();
    writeln!(out, "  {label:<44} {p50:>9.2} {p99:>9.2} {rate:>10.0}")?;
    Ok(())
}

/// A part of each call (no rate of its own).
fn report_part(out: &mut dyn Write, label: &str, times: &mut [Duration]) -> Result<()> {
    let (p50, p99) = percentiles(times);
    writeln!(out, "  {label:<44} {p50:>9.2} {p99:>9.2}")?;
    Ok(())
}

/// The median and the 99th percentile of `times`, in milliseconds.
fn percentiles(times: &mut [Duration]) -> (f64, f64) {
    times.sort();
    let at = |q: f64| {
        let index = ((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1;
        times[index].as_secs_f64() * 1000.0
    };
    (at(0.5), at(0.99))
}
