//! `flotilla bench federation --source influxdb --url http://host:8086`: a bucketed aggregate
//! over a measurement of N points (10 million by default), (1) with the aggregate pushed to
//! InfluxDB as InfluxQL, (2) the same InfluxQL run directly with `curl`, (3) without pushdown
//! (every point read into DataFusion). Rows transferred count the rows InfluxDB sent.
//!
//! The points go into database `flotilla_bench`, measurement `cpu` (100 hosts, a float and an
//! integer field, spread over 2025), written once with progress and reused while the count
//! matches.

use datafusion::execution::context::SessionContext;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::physical_plan::{ExecutionPlan, collect};
use flotilla_common::{Error, Result};
use flotilla_connectors_influxdb::{
    Credentials, InfluxAggregatePushdown, InfluxCatalog, InfluxClient, InfluxScanExec,
};
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

const DATABASE: &str = "flotilla_bench";
const HOSTS: u64 = 100;
/// 2025-01-01T00:00:00Z and the year's length, in nanoseconds.
const START: i64 = 1_735_689_600_000_000_000;
const YEAR: i64 = 365 * 86_400 * 1_000_000_000;

/// The benchmark query: a day bucket per host over the year.
const QUERY: &str = "SELECT host, date_bin(INTERVAL '1 day', time) AS day, avg(usage) AS mean, \
                     max(usage) AS peak, count(usage) AS n FROM bench.flotilla_bench.cpu \
                     WHERE time >= TIMESTAMP '2025-01-01T00:00:00Z' \
                     AND time < TIMESTAMP '2026-01-01T00:00:00Z' GROUP BY host, day";

/// Point `i` as line protocol: host `i % 100`, the series' `i / 100`-th point of the year.
fn point(i: u64, points: u64, out: &mut String) {
    let per_host = points.div_ceil(HOSTS).max(1);
    let step = YEAR / per_host as i64;
    let time = START + (i / HOSTS) as i64 * step;
    let mixed = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    let usage = (mixed % 10_000) as f64 / 100.0;
    let procs = (mixed % 400) as i64;
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "cpu,host=host-{:03} usage={usage:?},procs={procs}i {time}",
        i % HOSTS
    );
}

/// The number of points in the measurement (0 when it is missing).
async fn count(client: &InfluxClient) -> Result<u64> {
    let answer = client.query("SELECT count(usage) FROM cpu").await?;
    Ok(answer["results"][0]["series"][0]["values"][0][1]
        .as_u64()
        .unwrap_or(0))
}

/// Writes `points` points unless the measurement already has them.
async fn ensure_points(client: &InfluxClient, points: u64) -> Result<()> {
    client
        .execute(&format!("CREATE DATABASE {DATABASE}"))
        .await?;
    if count(client).await? == points {
        return Ok(());
    }
    client.execute("DROP MEASUREMENT cpu").await.ok();
    let started = Instant::now();
    let batch = 50_000;
    let mut written = 0;
    while written < points {
        let end = (written + batch).min(points);
        let mut lines = String::with_capacity((end - written) as usize * 64);
        for i in written..end {
            point(i, points, &mut lines);
        }
        client.write(lines.into()).await?;
        written = end;
        if written % 1_000_000 == 0 || written == points {
            eprintln!(
                "influxdb: {written} of {points} points written ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    let landed = count(client).await?;
    if landed != points {
        return Err(Error::internal(format!(
            "InfluxDB holds {landed} of the {points} points written"
        )));
    }
    Ok(())
}

/// One run: seconds, rows from InfluxDB, result rows, and the InfluxQL sent.
async fn run_once(ctx: &SessionContext) -> Result<(f64, usize, usize, String)> {
    let started = Instant::now();
    let plan = ctx.sql(QUERY).await?.create_physical_plan().await?;
    let batches = collect(Arc::clone(&plan), ctx.task_ctx()).await?;
    let seconds = started.elapsed().as_secs_f64();
    let mut transferred = 0;
    let mut influxql = String::new();
    let _ = datafusion::common::tree_node::TreeNode::apply(&plan, |node| {
        if let Some(scan) = node.downcast_ref::<InfluxScanExec>() {
            transferred += scan
                .metrics()
                .and_then(|m| m.output_rows())
                .unwrap_or_default();
            influxql = scan.influxql().to_string();
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    Ok((
        seconds,
        transferred,
        batches.iter().map(|b| b.num_rows()).sum(),
        influxql,
    ))
}

async fn best(ctx: &SessionContext, repeat: usize) -> Result<(f64, usize, usize, String)> {
    let mut best = run_once(ctx).await?;
    for _ in 1..repeat {
        let run = run_once(ctx).await?;
        best.0 = best.0.min(run.0);
    }
    Ok(best)
}

/// The InfluxQL run with curl (the answer read whole, as JSON): seconds.
fn curl(url: &str, influxql: &str, repeat: usize) -> Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..repeat {
        let started = Instant::now();
        let output = std::process::Command::new("curl")
            .args(["-sS", "--fail-with-body", "-G", "-o", "/dev/null"])
            .arg(format!("{}/query", url.trim_end_matches('/')))
            .args(["--data-urlencode", &format!("db={DATABASE}")])
            .args(["--data-urlencode", "epoch=ns"])
            .args(["--data-urlencode", &format!("q={influxql}")])
            .output()
            .map_err(|e| Error::invalid(format!("cannot run curl: {e}")))?;
        if !output.status.success() {
            return Err(Error::unavailable(format!(
                "curl failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        best = best.min(started.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// Runs the benchmark and prints its table to `out`.
///
/// # Errors
/// When InfluxDB cannot be reached or a query fails.
pub async fn run(url: &str, points: u64, repeat: usize, out: &mut dyn Write) -> Result<()> {
    let repeat = repeat.max(1);
    let client = InfluxClient::new("bench", url, DATABASE, &Credentials::None)?;
    ensure_points(&client, points).await?;
    let catalog = Arc::new(InfluxCatalog::connect(client).await?);
    let pushed = SessionContext::new_with_state(
        SessionStateBuilder::new()
            .with_default_features()
            .with_optimizer_rule(Arc::new(InfluxAggregatePushdown))
            .build(),
    );
    pushed.register_catalog("bench", Arc::clone(&catalog) as _);
    let plain = SessionContext::new();
    plain.register_catalog("bench", catalog);

    eprint!("influxdb: with pushdown… ");
    let (push_seconds, push_rows, result_rows, influxql) = best(&pushed, repeat).await?;
    eprint!("curl… ");
    let curl_seconds = curl(url, &influxql, repeat)?;
    eprintln!("without pushdown…");
    let (plain_seconds, plain_rows, plain_result, _) = best(&plain, repeat).await?;
    if plain_result != result_rows {
        return Err(Error::internal(format!(
            "{result_rows} rows with pushdown, {plain_result} without"
        )));
    }
    let write = |out: &mut dyn Write, line: String| {
        writeln!(out, "{line}").map_err(|e| Error::internal(e.to_string()))
    };
    write(
        out,
        format!(
            "InfluxDB {points} points, best of {repeat}: daily buckets per host over a year \
             ({result_rows} result rows)"
        ),
    )?;
    write(out, format!("InfluxQL pushed: {influxql}"))?;
    write(
        out,
        format!(
            "{:<28} {:>10} {:>16}",
            "run", "seconds", "rows from InfluxDB"
        ),
    )?;
    for (name, seconds, rows) in [
        ("(1) flotilla, pushdown", push_seconds, Some(push_rows)),
        ("(2) curl, same InfluxQL", curl_seconds, None),
        ("(3) flotilla, no pushdown", plain_seconds, Some(plain_rows)),
    ] {
        write(
            out,
            format!(
                "{name:<28} {seconds:>10.3} {:>16}",
                rows.map_or("-".to_string(), |r| r.to_string())
            ),
        )?;
    }
    write(
        out,
        format!(
            "(3)/(1) {:.1}x time, {:.0}x rows; (1)/(2) {:.2}",
            plain_seconds / push_seconds,
            plain_rows as f64 / push_rows.max(1) as f64,
            push_seconds / curl_seconds
        ),
    )
}
