//! The `flotilla` command line.

use clap::{Args, Parser, Subcommand};
use flotilla_common::{Error, Result};
use flotilla_node::config::Config;
use flotilla_node::logs::LogFormat;
use flotilla_node::output::OutputFormat;
use flotilla_node::{context, datagen, demo, repl, run, serve};
use flotilla_tpch::{Format, GenerateOptions, Table};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// Flotilla queries many databases as one.
///
/// Sources (SQLite, PostgreSQL, MySQL/MariaDB/TiDB and InfluxDB databases, other Flight SQL
/// servers, Parquet and CSV files) are named in a configuration file, flotilla.toml; each
/// becomes a catalog, so one SQL query can join `shop.main.orders` (SQLite) with
/// `lake.public.lineitem` (Parquet). Each part of a query runs where it is estimated fastest:
/// in its database, or here. Start with `flotilla demo`.
#[derive(Parser)]
#[command(
    name = "flotilla",
    version,
    about,
    long_about,
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run SQL over the configured sources: one query, files of statements, or an interactive
    /// shell.
    #[command(after_help = "Examples:\n  \
        flotilla sql --config flotilla.toml \"SELECT count(*) FROM shop.main.orders\"\n  \
        flotilla sql -f report.sql --format csv > report.csv\n  \
        flotilla sql                      (interactive; \\? for help)")]
    Sql(SqlArgs),
    /// Serve Arrow Flight SQL over the configured sources, so ADBC, JDBC, pyarrow and other
    /// Flight SQL clients can browse and query them.
    ///
    /// Listens on 127.0.0.1:50051 unless `[server] listen` or --listen says otherwise. Stops
    /// on ctrl-c or SIGTERM, letting running queries finish for up to 30 s.
    #[command(after_help = "Examples:\n  \
        flotilla serve --config flotilla.toml\n  \
        flotilla serve --listen 0.0.0.0:50051     (with [[server.users]] configured)\n  \
        python -c \"import adbc_driver_flightsql.dbapi as f; \
        print(f.connect('grpc://127.0.0.1:50051').cursor().execute('SELECT 1').fetchall())\"")]
    Serve(ServeArgs),
    /// Hash a password for `[[server.users]] password_hash` (PBKDF2-HMAC-SHA256, random salt).
    ///
    /// Reads the password from standard input (one line), prints the hash.
    /// Example: flotilla hash-password < password.txt
    HashPassword {
        /// PBKDF2 iterations (more is slower to check and to guess).
        #[arg(long, default_value_t = flotilla_flightsql::password::DEFAULT_ITERATIONS)]
        iterations: u32,
    },
    /// Run the embedded demo: TPC-H data in SQLite and Parquet, queried as one.
    ///
    /// The first run generates TPC-H SF 0.1 into a cache directory (as Parquet files and as one
    /// SQLite database); later runs reuse it. Then it runs queries that join SQLite tables with
    /// Parquet tables and prints their results and plans.
    Demo(DemoArgs),
    /// Run a benchmark and print its figures.
    Bench {
        #[command(subcommand)]
        benchmark: BenchCommand,
    },
    /// Generate benchmark data.
    Datagen {
        #[command(subcommand)]
        benchmark: Benchmark,
    },
}

#[derive(Args)]
struct SqlArgs {
    /// The configuration file. Default: $FLOTILLA_CONFIG, else ./flotilla.toml if it exists,
    /// else no sources.
    #[arg(long, short = 'c', env = "FLOTILLA_CONFIG")]
    config: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
    /// Run the statements in FILE (may be repeated; '-' reads standard input).
    #[arg(long = "file", short = 'f', value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Do not print row counts and timings to stderr.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// SQL to run (one or more statements separated by ';'). Without it and without -f, an
    /// interactive shell starts.
    query: Option<String>,
}

#[derive(Args)]
struct ServeArgs {
    /// The configuration file (as for `flotilla sql`).
    #[arg(long, short = 'c', env = "FLOTILLA_CONFIG")]
    config: Option<PathBuf>,
    /// The address to listen on, host:port (port 0 picks a free port). Default: `[server]
    /// listen`, else 127.0.0.1:50051.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// How log lines on standard error are written: text, or json (one object per line, for
    /// log collectors). Levels come from $FLOTILLA_LOG (default info; e.g.
    /// FLOTILLA_LOG=info,flotilla::statement=debug logs every database statement).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "FLOTILLA_LOG_FORMAT")]
    log_format: LogFormat,
}

#[derive(Args)]
struct DemoArgs {
    /// Where generated data is cached. Default: $FLOTILLA_CACHE_DIR, else
    /// $XDG_CACHE_HOME/flotilla, else ~/.cache/flotilla.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// TPC-H scale factor of the demo data.
    #[arg(long, default_value_t = 0.1)]
    scale: f64,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// TPC-H over a federated source, side by side: everything pushed, the source running the
    /// pushed SQL itself, nothing pushed, and pushed by cost (the default) — with a total of
    /// each and of the better of the first and third per query.
    ///
    /// Example: flotilla bench federation --source sqlite --scale 1
    ///
    /// Example: flotilla bench federation --source postgres --url postgresql://me@localhost/db
    Federation {
        /// The kind of source to benchmark: sqlite, postgres, mysql or influxdb.
        #[arg(long, default_value = "sqlite")]
        source: String,
        /// The server, for postgres and mysql (TPC-H is loaded into tpch_sf<scale> if missing)
        /// and influxdb (http://host:8086; points are written into flotilla_bench if missing).
        #[arg(long)]
        url: Option<String>,
        /// influxdb: the points of the benchmark's measurement.
        #[arg(long, default_value_t = 10_000_000)]
        points: u64,
        /// TPC-H scale factor; the data is generated into the cache on first use.
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Only these queries (comma-separated numbers), e.g. --queries 1,3,5. Default: all 22.
        #[arg(long, value_delimiter = ',')]
        queries: Vec<usize>,
        /// Where generated data is cached (as for `flotilla demo`).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
        /// Runs per measurement; the best is reported (the first also warms caches).
        #[arg(long, default_value_t = 2)]
        repeat: usize,
        /// A session option for every run, as KEY=VALUE (may be repeated), e.g.
        /// --set flotilla.federation.learn_costs=false.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        settings: Vec<String>,
    },
    /// `flotilla serve` as its clients see it: SELECT * FROM lineitem to a Python ADBC client
    /// beside pyarrow reading the Parquet file locally, and per-call latency of SELECT 1 and a
    /// point lookup, sequential and with concurrent clients.
    ///
    /// With --workers N: a cluster of N nodes instead, a big result read through the node
    /// asked and straight from the workers.
    ///
    /// Example: flotilla bench flightsql --scale 1
    ///
    /// Example: flotilla bench flightsql --scale 1 --workers 2
    Flightsql(FlightSqlBench),
    /// TPC-H on the demo's Parquet files: on this node alone and distributed over workers on
    /// localhost ports (in this process), side by side, with the bytes shuffled.
    ///
    /// Example: flotilla bench tpch --scale 1 --mode both --workers 2
    ///
    /// Example: flotilla bench tpch --scale 1 --workers 3 --kill-one-after 0.5
    Tpch {
        /// TPC-H scale factor; the data is generated into the cache on first use.
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// single, distributed or both (side by side).
        #[arg(long, default_value = "both")]
        mode: String,
        /// Workers of the distributed run.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Only these queries (comma-separated numbers). Default: all 22.
        #[arg(long, value_delimiter = ',')]
        queries: Vec<usize>,
        /// Runs per measurement; the best is reported.
        #[arg(long, default_value_t = 2)]
        repeat: usize,
        /// Where generated data is cached (as for `flotilla demo`).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
        /// A session option for both sides, as KEY=VALUE (may be repeated), e.g.
        /// --set distributed.broadcast_bytes=0.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        settings: Vec<String>,
        /// Also run each query once more and kill one worker (in turn) after this fraction of
        /// its fault-free time, e.g. 0.5: the time with the kill and whether the rows are right
        /// (the killed worker is started again before the next query).
        #[arg(long, value_name = "FRACTION")]
        kill_one_after: Option<f64>,
    },
}

#[derive(Args)]
struct FlightSqlBench {
    /// TPC-H scale factor of the data served (generated into the cache on first use).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Calls per latency measurement.
    #[arg(long, default_value_t = 1000)]
    calls: usize,
    /// Concurrent clients in the second latency measurement.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Runs per throughput measurement; the best is reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Measure a cluster of this many nodes instead (in this process, on loopback ports): a
    /// big unordered result read on node 0 alone, through node 0, and from the workers.
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// A PostgreSQL server (libpq conninfo or URL) holding TPC-H at the same scale in schema
    /// tpch_sf<scale> (as `flotilla bench federation --source postgres` loads it): lineitem
    /// read from it through psycopg, beside the node's PostgreSQL port.
    #[arg(long)]
    pg_url: Option<String>,
    /// Run only these parts (comma-separated: throughput, latency, pg); default: all three.
    #[arg(long, value_delimiter = ',', value_parser = ["throughput", "latency", "pg"])]
    only: Vec<String>,
    /// Where generated data is cached (as for `flotilla demo`).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Benchmark {
    /// The 8 TPC-H tables, generated with the tpchgen crates.
    ///
    /// Example: flotilla datagen tpch --scale 1 --format parquet --out data/sf1
    Tpch {
        /// Scale factor: 1 is about 1 GB of raw data (8.66 million rows).
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Output format: one file per table (parquet, csv) or one database (sqlite).
        #[arg(long, value_parser = parse_format, default_value = "parquet")]
        format: Format,
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Only these tables (comma-separated), e.g. --tables lineitem,orders.
        #[arg(long, value_delimiter = ',', value_parser = parse_table)]
        tables: Vec<Table>,
    },
}

fn parse_format(s: &str) -> std::result::Result<Format, String> {
    s.parse().map_err(|e: Error| e.to_string())
}

fn parse_table(s: &str) -> std::result::Result<Table, String> {
    s.parse().map_err(|e: Error| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_command(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_command(command: Command) -> Result<()> {
    match command {
        Command::Sql(args) => sql(args).await,
        Command::HashPassword { iterations } => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            let password = line.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                return Err(Error::invalid(
                    "no password on standard input (e.g. flotilla hash-password < file)",
                ));
            }
            println!(
                "{}",
                flotilla_flightsql::password::hash(password, iterations.max(1))
            );
            Ok(())
        }
        Command::Serve(args) => {
            let config = load_config(args.config)?;
            flotilla_node::logs::init(args.log_format, config.server.otlp_endpoint.as_deref())?;
            let served = serve::serve(&config, args.listen.as_deref(), |address, notes| {
                tracing::info!(
                    target: "flotilla::serve",
                    "serving Arrow Flight SQL on {address} ({} source(s); {})",
                    config.sources.len(),
                    notes.join("; ")
                );
            })
            .await;
            flotilla_node::logs::shutdown().await;
            served
        }
        Command::Demo(args) => {
            let cache = args.cache_dir.unwrap_or_else(demo::default_cache_dir);
            demo::run(&cache, args.scale, &mut std::io::stdout().lock()).await
        }
        Command::Bench {
            benchmark:
                BenchCommand::Federation {
                    source,
                    url,
                    points,
                    scale,
                    queries,
                    cache_dir,
                    repeat,
                    settings,
                },
        } => {
            if source == "influxdb" {
                let url = url.ok_or_else(|| {
                    Error::invalid("--source influxdb needs --url (e.g. http://localhost:8086)")
                })?;
                let mut out = std::io::stdout().lock();
                return flotilla_bench::influxdb::run(&url, points, repeat, &mut out).await;
            }
            let source = match (source.as_str(), url) {
                ("sqlite", None) => flotilla_bench::BenchSource::Sqlite,
                ("postgres", Some(url)) => flotilla_bench::BenchSource::Postgres { url },
                ("mysql", Some(url)) => flotilla_bench::BenchSource::Mysql { url },
                ("sqlite", Some(_)) => {
                    return Err(Error::invalid(
                        "--url is for postgres and mysql; the sqlite benchmark uses the demo data",
                    ));
                }
                ("postgres" | "mysql", None) => {
                    return Err(Error::invalid(format!(
                        "--source {source} needs --url (the server to benchmark, e.g. \
                         postgresql://user@host:5432/database or mysql://user:pw@host:3306/db)"
                    )));
                }
                (other, _) => {
                    return Err(Error::invalid(format!(
                        "no federation benchmark for source kind '{other}' (sqlite, postgres, \
                         mysql, influxdb)"
                    )));
                }
            };
            let queries = if queries.is_empty() {
                (1..=22).collect()
            } else {
                queries
            };
            let cache = cache_dir.unwrap_or_else(demo::default_cache_dir);
            let mut out = std::io::stdout().lock();
            flotilla_bench::federation(
                &source, &cache, scale, &queries, repeat, &settings, &mut out,
            )
            .await
        }
        Command::Bench {
            benchmark:
                BenchCommand::Tpch {
                    scale,
                    mode,
                    workers,
                    queries,
                    repeat,
                    cache_dir,
                    settings,
                    kill_one_after,
                },
        } => {
            let options = flotilla_bench::tpch::Options {
                kill_one_after,
                scale,
                cache: cache_dir.unwrap_or_else(demo::default_cache_dir),
                mode: mode.parse()?,
                workers,
                queries: if queries.is_empty() {
                    (1..=22).collect()
                } else {
                    queries
                },
                repeat,
                settings,
            };
            flotilla_bench::tpch::run(&options, &mut std::io::stdout().lock()).await
        }
        Command::Bench {
            benchmark: BenchCommand::Flightsql(args),
        } => {
            let options = flotilla_bench::flightsql::Options {
                scale: args.scale,
                cache: args.cache_dir.unwrap_or_else(demo::default_cache_dir),
                calls: args.calls,
                clients: args.clients,
                repeat: args.repeat,
                workers: args.workers,
                pg_url: args.pg_url,
                only: args.only,
            };
            flotilla_bench::flightsql::run(&options, &mut std::io::stdout().lock()).await
        }
        Command::Datagen {
            benchmark:
                Benchmark::Tpch {
                    scale,
                    format,
                    out,
                    tables,
                },
        } => {
            let options = GenerateOptions {
                scale,
                format,
                out,
                tables,
            };
            datagen::generate_with_progress(&options, "tpch").map(|_| ())
        }
    }
}

/// The configuration at `path`, else ./flotilla.toml if it exists, else no sources.
fn load_config(path: Option<PathBuf>) -> Result<Config> {
    Ok(match path {
        Some(path) => Config::load(&path)?,
        None if std::path::Path::new("flotilla.toml").is_file() => {
            Config::load(std::path::Path::new("flotilla.toml"))?
        }
        None => Config::default(),
    })
}

async fn sql(args: SqlArgs) -> Result<()> {
    let config = load_config(args.config)?;
    let ctx = context::build_context(&config).await?;
    let mut stdout = std::io::stdout().lock();
    let mut ran = false;
    for file in &args.files {
        let text = if file.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin())?
        } else {
            std::fs::read_to_string(file)
                .map_err(|e| Error::from(e).with_source(file.display().to_string()))?
        };
        run::run_sql(&ctx, &text, args.format, &mut stdout, args.quiet).await?;
        ran = true;
    }
    if let Some(query) = &args.query {
        run::run_sql(&ctx, query, args.format, &mut stdout, args.quiet).await?;
        ran = true;
    }
    if !ran {
        if !std::io::stdin().is_terminal() {
            // Piped input: run it as a script rather than drawing a prompt.
            let text = std::io::read_to_string(std::io::stdin())?;
            return run::run_sql(&ctx, &text, args.format, &mut stdout, args.quiet).await;
        }
        drop(stdout);
        repl::run(&ctx, args.format).await?;
    }
    Ok(())
}
