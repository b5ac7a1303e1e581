//! `flotilla bench tpch`: TPC-H over the demo's Parquet files, run on this node alone and
//! distributed over workers on localhost ports, side by side.
//!
//! The workers run in this process, each behind its own TCP port and built the way
//! `flotilla serve` builds its worker, so plans, tasks and Arrow data really cross the network
//! stack; with every node on the same cores, the ratio measures the overhead of distribution.
//! Both sides read the same files with the same session options; results are checked to have
//! the same number of rows.
//!
//! With `--kill-one-after F`, each query also runs once with a fault: one worker (in turn) is
//! killed — its port closed and its connections cut — after F × the query's fault-free
//! distributed time; the table adds that run's time and whether its rows equal the fault-free
//! ones. The worker is started again, and used again, before the next query.

use crate::federation::with_settings;
use datafusion::execution::context::SessionContext;
use flotilla_common::{Error, Result};
use flotilla_distributed::{LocalhostCluster, Worker};
use flotilla_node::config::{ClusterConfig, Config, Peers, SessionDefaults};
use flotilla_node::context::{build_context, worker};
use flotilla_node::demo;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Single,
    Distributed,
    Both,
}

impl std::str::FromStr for Mode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "single" => Ok(Mode::Single),
            "distributed" => Ok(Mode::Distributed),
            "both" => Ok(Mode::Both),
            other => Err(Error::invalid(format!(
                "unknown mode '{other}' (single, distributed or both)"
            ))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub scale: f64,
    pub cache: PathBuf,
    pub mode: Mode,
    pub workers: usize,
    pub queries: Vec<usize>,
    pub repeat: usize,
    /// `KEY=VALUE` session options set on both sides (`SET KEY = 'VALUE'`).
    pub settings: Vec<String>,
    /// Kill one worker after this fraction of each query's fault-free distributed time.
    pub kill_one_after: Option<f64>,
}

/// One query's figures: best seconds and rows, and Arrow bytes the workers sent.
struct Row {
    query: usize,
    single: Option<f64>,
    distributed: Option<f64>,
    bytes: u64,
    rows: usize,
    /// With a worker killed: seconds, and whether the rows equal the fault-free run's.
    fault: Option<(f64, bool)>,
}

/// The demo's Parquet source `lake` alone, queried by bare table names.
fn parquet_config(scale: f64, cache: &std::path::Path) -> Result<Config> {
    let path = demo::prepare(cache, scale)?;
    let demo = Config::load(&path)?;
    let lake = demo
        .sources
        .get("lake")
        .cloned()
        .ok_or_else(|| Error::invalid(format!("{} has no source 'lake'", path.display())))?;
    let mut config = Config {
        session: SessionDefaults {
            default_catalog: Some("lake".into()),
            default_schema: Some(flotilla_node::context::FILE_SCHEMA.into()),
            ..SessionDefaults::default()
        },
        ..Config::default()
    };
    config.sources.insert("lake".into(), lake);
    Ok(config)
}

/// Runs `sql` once; returns seconds and rows.
async fn run_once(ctx: &SessionContext, sql: &str) -> Result<(f64, usize)> {
    let (seconds, batches) = run_collect(ctx, sql).await?;
    Ok((seconds, batches.iter().map(|b| b.num_rows()).sum()))
}

async fn run_collect(
    ctx: &SessionContext,
    sql: &str,
) -> Result<(f64, Vec<datafusion::arrow::array::RecordBatch>)> {
    let started = Instant::now();
    let batches = ctx.sql(sql).await?.collect().await?;
    Ok((started.elapsed().as_secs_f64(), batches))
}

/// Runs `sql` while worker `victim` is killed after `after`; returns seconds and whether the
/// rows equal `expected`. The worker is started again, and planned on again, afterwards.
async fn run_with_kill(
    ctx: &SessionContext,
    cluster: &mut LocalhostCluster,
    sql: &str,
    victim: usize,
    after: std::time::Duration,
    expected: &[Vec<String>],
) -> Result<(f64, bool)> {
    let kill = async {
        tokio::time::sleep(after).await;
        cluster.kill(victim);
    };
    let (outcome, ()) = tokio::join!(run_collect(ctx, sql), kill);
    let (seconds, right) = match outcome {
        Ok((seconds, batches)) => (
            seconds,
            crate::federation::sorted_rows(&batches)? == expected,
        ),
        Err(e) => {
            eprint!("(failed: {e}) ");
            (f64::NAN, false)
        }
    };
    cluster.restart(victim).await?;
    let url = cluster.urls()[victim].clone();
    // A copy of the session (same planner, same view of who is alive) that spreads every
    // stage over every live worker: the restarted one is back when its plan names it.
    let probe = SessionContext::new_with_state(ctx.state());
    for set in [
        "SET distributed.bytes_per_task = 1",
        "SET distributed.min_bytes = 0",
    ] {
        probe.sql(set).await?.collect().await?;
    }
    // An aggregate over lineitem has a stage with a task on every worker; the query itself
    // may not (q21's anti and semi joins keep their stages at one task), and would never
    // name a restarted worker that round-robin placement does not reach.
    let spread = "SELECT l_returnflag, count(*) FROM lineitem GROUP BY 1";
    let started = Instant::now();
    loop {
        let plan = probe.sql(spread).await?.create_physical_plan().await?;
        let text = datafusion::physical_plan::displayable(plan.as_ref())
            .indent(false)
            .to_string();
        if text.contains(&url) {
            break;
        }
        if started.elapsed() > std::time::Duration::from_secs(30) {
            return Err(Error::unavailable(format!(
                "worker {url} is not used again 30 s after it was restarted"
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Ok((seconds, right))
}

/// Best of `repeat` runs: seconds and rows.
async fn best(ctx: &SessionContext, sql: &str, repeat: usize) -> Result<(f64, usize)> {
    let mut best = run_once(ctx, sql).await?;
    for _ in 1..repeat {
        let run = run_once(ctx, sql).await?;
        best.0 = best.0.min(run.0);
    }
    Ok(best)
}

fn sent(workers: &[Worker]) -> u64 {
    workers.iter().map(Worker::bytes_sent).sum()
}

/// Runs the benchmark and prints its table to `out`.
///
/// # Errors
/// When the data cannot be prepared, a port cannot be bound, or a query fails.
pub async fn run(options: &Options, out: &mut dyn Write) -> Result<()> {
    let repeat = options.repeat.max(1);
    let base = parquet_config(options.scale, &options.cache)?;
    let single = match options.mode {
        Mode::Distributed => None,
        _ => Some(with_settings(build_context(&base).await?, &options.settings).await?),
    };
    let mut nodes = Vec::new();
    let mut cluster = None;
    let mut distributed = None;
    if options.mode != Mode::Single {
        let count = options.workers.max(1);
        for _ in 0..count {
            let ctx = build_context(&base).await?;
            nodes.push(worker(&ctx, &base)?);
        }
        let started = LocalhostCluster::start(count, |i| nodes[i].clone()).await?;
        let mut config = base.clone();
        config.cluster = Some(ClusterConfig {
            peers: Peers::Static(started.urls().to_vec()),
            tls_root_cert: None,
            secret_env: None,
        });
        distributed = Some(with_settings(build_context(&config).await?, &options.settings).await?);
        cluster = Some(started);
    }
    let mut rows = Vec::new();
    for &n in &options.queries {
        let sql = crate::federation::query_text(n)?;
        let mut row = Row {
            query: n,
            single: None,
            distributed: None,
            bytes: 0,
            rows: 0,
            fault: None,
        };
        if let Some(ctx) = &single {
            eprint!("q{n}: single… ");
            let (seconds, count) = best(ctx, &sql, repeat).await?;
            row.single = Some(seconds);
            row.rows = count;
        }
        if let Some(ctx) = &distributed {
            eprint!("q{n}: distributed… ");
            let before = sent(&nodes);
            let (seconds, count) = best(ctx, &sql, repeat).await?;
            row.bytes = (sent(&nodes) - before) / repeat as u64;
            if row.single.is_some() && count != row.rows {
                return Err(Error::internal(format!(
                    "q{n}: {count} rows distributed, {} on one node",
                    row.rows
                )));
            }
            row.distributed = Some(seconds);
            row.rows = count;
            if let (Some(fraction), Some(cluster)) = (options.kill_one_after, cluster.as_mut()) {
                eprint!("q{n}: with a worker killed… ");
                let (_, batches) = run_collect(ctx, &sql).await?;
                let expected = crate::federation::sorted_rows(&batches)?;
                let victim = rows.len() % cluster.urls().len();
                let after = std::time::Duration::from_secs_f64(seconds * fraction.max(0.0));
                row.fault =
                    Some(run_with_kill(ctx, cluster, &sql, victim, after, &expected).await?);
            }
        }
        eprintln!("done");
        rows.push(row);
    }
    drop(cluster);
    print_table(options, repeat, &rows, out)
}

fn seconds(value: Option<f64>) -> String {
    value.map_or("-".into(), |s| format!("{s:.3}"))
}

fn print_table(options: &Options, repeat: usize, rows: &[Row], out: &mut dyn Write) -> Result<()> {
    writeln!(
        out,
        "TPC-H SF {} on Parquet, best of {repeat}: (1) one node, (2) distributed over {} \
         localhost worker(s); shuffled = Arrow IPC bytes the workers sent per run",
        options.scale, options.workers
    )?;
    if let Some(fraction) = options.kill_one_after {
        writeln!(
            out,
            "(3) distributed, one worker killed after {fraction} × (2) and started again after \
             the query; right = rows equal to (2)'s"
        )?;
    }
    let faults = options.kill_one_after.is_some();
    let fault_header = if faults {
        format!(" {:>10} {:>8} {:>6}", "(3) s", "(3)/(2)", "right")
    } else {
        String::new()
    };
    writeln!(
        out,
        "{:>5} {:>10} {:>10} {:>8} {:>12} {:>10}{fault_header}",
        "query", "(1) s", "(2) s", "(2)/(1)", "shuffled MB", "rows"
    )?;
    for r in rows {
        let ratio = match (r.single, r.distributed) {
            (Some(one), Some(many)) => format!("{:.2}", many / one),
            _ => "-".into(),
        };
        let fault = match (r.fault, r.distributed) {
            (Some((with_kill, right)), Some(clean)) => format!(
                " {:>10.3} {:>8.2} {:>6}",
                with_kill,
                with_kill / clean,
                if right { "yes" } else { "NO" }
            ),
            _ => String::new(),
        };
        writeln!(
            out,
            "{:>5} {:>10} {:>10} {:>8} {:>12.1} {:>10}{fault}",
            format!("q{}", r.query),
            seconds(r.single),
            seconds(r.distributed),
            ratio,
            r.bytes as f64 / 1e6,
            r.rows
        )?;
    }
    let total = |f: fn(&Row) -> Option<f64>| rows.iter().filter_map(f).sum::<f64>();
    let (one, many) = (total(|r| r.single), total(|r| r.distributed));
    let ratio = if one > 0.0 && many > 0.0 {
        format!("{:.2}", many / one)
    } else {
        "-".into()
    };
    let shown = |seconds: f64| {
        if seconds > 0.0 {
            format!("{seconds:.3} s")
        } else {
            "-".to_string()
        }
    };
    writeln!(
        out,
        "total: (1) {}, (2) {}, (2)/(1) {ratio}; shuffled {:.1} MB",
        shown(one),
        shown(many),
        rows.iter().map(|r| r.bytes).sum::<u64>() as f64 / 1e6
    )?;
    if faults {
        let with_kill: f64 = rows.iter().filter_map(|r| r.fault.map(|f| f.0)).sum();
        let right = rows.iter().filter(|r| r.fault.is_some_and(|f| f.1)).count();
        writeln!(
            out,
            "with a worker killed: (3) {with_kill:.3} s, (3)/(2) {:.2}; right {right} of {}",
            with_kill / many,
            rows.len()
        )?;
    }
    Ok(())
}
