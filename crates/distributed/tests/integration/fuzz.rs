//! The differential harness: seeded random queries over generated tables
//! (`flotilla_testkit::fuzz`), each run on one node and on a cluster in a configuration drawn
//! from the matrix users can set, rows compared as multisets (in order where the query orders
//! on unique columns). With `results_from_workers` drawn, a query whose last stage only
//! gathers is read from its workers' endpoints, as a Flight SQL client reads it.
//!
//! TPC-H 22 runs over the same matrix (`tpch_over_the_configuration_matrix_equals_one_node`).
//!
//! The test command runs a fixed set of seeds. The long mode runs new seeds until time is up:
//!
//! ```text
//! FLOTILLA_FUZZ_MINUTES=60 cargo test -p flotilla-distributed --test integration fuzz -- --nocapture
//! FLOTILLA_FUZZ_SEED=1234 cargo test -p flotilla-distributed --test integration fuzz   # one seed again
//! ```
//!
//! A failure prints the seed, the SQL, the configuration and the distributed plan.

use crate::tpch;
use arrow_flight::Ticket;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use datafusion::arrow::array::RecordBatch;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::physical_plan::{ExecutionPlan, displayable};
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use flotilla_distributed::{
    ChannelCache, Compression, DistributedOptions, DistributedSessionStateBuilder,
    InProcessCluster, Worker, result_endpoints,
};
use flotilla_testkit::compare::{compare_batches, query_is_ordered};
use flotilla_testkit::fuzz::{Queries, Rng, Tables};
use flotilla_testkit::plans::{register_tpch_parquet, tpch_query};
use futures::TryStreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Seeds the test command runs, and queries per seed.
const FIXED_SEEDS: std::ops::Range<u64> = 1..9;
const QUERIES_PER_SEED: usize = 24;

/// One point of the configuration matrix.
#[derive(Debug, Clone)]
struct Setting {
    nodes: usize,
    target_partitions: usize,
    /// Every stage spread over all nodes, whatever its size.
    forced: bool,
    broadcast: bool,
    compression: Compression,
    batch_size: usize,
    /// Rows read from the last stage's workers, as a Flight SQL client does, where the plan
    /// allows (`distributed.results_from_workers`).
    results_from_workers: bool,
}

impl Setting {
    fn draw(rng: &mut Rng) -> Self {
        Self {
            nodes: 1 + rng.below(4),
            target_partitions: 1 + rng.below(4),
            forced: rng.chance(80),
            broadcast: rng.chance(50),
            compression: *rng.pick(&[Compression::None, Compression::Lz4, Compression::Zstd]),
            batch_size: *rng.pick(&[7, 64, 8192]),
            results_from_workers: rng.chance(50),
        }
    }

    fn options(&self) -> DistributedOptions {
        let defaults = DistributedOptions::default();
        DistributedOptions {
            bytes_per_task: if self.forced {
                1
            } else {
                defaults.bytes_per_task
            },
            min_bytes: 0,
            broadcast_bytes: if self.broadcast {
                defaults.broadcast_bytes
            } else {
                0
            },
            compression: self.compression,
            results_from_workers: self.results_from_workers,
            ..defaults
        }
    }

    fn config(&self) -> SessionConfig {
        SessionConfig::new()
            .with_target_partitions(self.target_partitions)
            .with_batch_size(self.batch_size)
    }

    /// In-process workers, one per node of the setting.
    fn cluster(&self) -> InProcessCluster {
        InProcessCluster::new(self.nodes, |_| {
            Worker::new(SessionStateBuilder::new().with_default_features().build())
        })
    }

    /// A session distributing over `cluster` as the setting says; no tables yet.
    fn session(&self, cluster: &InProcessCluster) -> SessionContext {
        let state = SessionStateBuilder::new()
            .with_config(self.config().with_option_extension(self.options()))
            .with_default_features()
            .with_distribution(cluster.distribution().unwrap())
            .build();
        SessionContext::new_with_state(state)
    }
}

async fn register(ctx: &SessionContext, tables: &Tables) {
    for (name, dir) in tables.paths() {
        ctx.register_parquet(name, dir.to_str().unwrap(), ParquetReadOptions::default())
            .await
            .unwrap();
    }
}

/// Runs `seed`'s queries; returns a description of each failure.
async fn run_seed(seed: u64, queries: usize) -> Vec<String> {
    let dir = flotilla_testkit::reaper::temp_dir("flotilla-fuzz-").unwrap();
    let tables = Tables::write(&dir, seed);
    let mut generator = Queries::new(seed);
    let mut draws = Rng::new(seed ^ 0xC0FF_EE00);
    let mut failures = Vec::new();
    // A few configurations per seed, each with its own cluster.
    for chunk in 0..3 {
        let setting = Setting::draw(&mut draws);
        let cluster = setting.cluster();
        let single = SessionContext::new_with_config(setting.config());
        register(&single, &tables).await;
        let distributed = setting.session(&cluster);
        let channels = Arc::clone(cluster.distribution().unwrap().channels());
        register(&distributed, &tables).await;
        for i in 0..queries / 3 {
            let query = generator.next_query();
            let expected = match single.sql(&query.sql).await {
                Ok(frame) => frame.collect().await,
                Err(e) => Err(e),
            };
            // SQL one node cannot run says nothing about distribution.
            let Ok(expected) = expected else { continue };
            let frame = match distributed.sql(&query.sql).await {
                Ok(frame) => frame,
                Err(e) => {
                    failures.push(describe(
                        seed,
                        chunk,
                        i,
                        &setting,
                        &query.sql,
                        &e.to_string(),
                        "",
                    ));
                    continue;
                }
            };
            let (plan, outcome) = match frame.create_physical_plan().await {
                Ok(plan) => {
                    let text = displayable(plan.as_ref()).indent(false).to_string();
                    let outcome = match run(&distributed, &channels, plan, &setting).await {
                        Ok(actual) => compare_batches(&expected, &actual, query.ordered),
                        Err(e) => Err(format!("failed: {e}")),
                    };
                    (text, outcome)
                }
                Err(e) => (String::new(), Err(format!("failed to plan: {e}"))),
            };
            if let Err(difference) = outcome {
                failures.push(describe(
                    seed,
                    chunk,
                    i,
                    &setting,
                    &query.sql,
                    &difference,
                    &plan,
                ));
            }
        }
    }
    failures
}

/// Queries whose rows were read from their workers' endpoints.
static READ_FROM_WORKERS: AtomicUsize = AtomicUsize::new(0);

/// The rows of `plan`: from the endpoints a Flight SQL client would be given when the setting
/// reads results from the workers and the plan allows it, else through the plan itself.
async fn run(
    ctx: &SessionContext,
    channels: &Arc<ChannelCache>,
    plan: Arc<dyn ExecutionPlan>,
    setting: &Setting,
) -> Result<Vec<RecordBatch>, String> {
    let endpoints = if setting.results_from_workers {
        result_endpoints(&plan, &ctx.task_ctx()).map_err(|e| e.to_string())?
    } else {
        None
    };
    let Some(endpoints) = endpoints else {
        return datafusion::physical_plan::collect(plan, ctx.task_ctx())
            .await
            .map_err(|e| e.to_string());
    };
    READ_FROM_WORKERS.fetch_add(1, Ordering::Relaxed);
    // Every endpoint at once, as ADBC reads them.
    let reads = endpoints.into_iter().map(|endpoint| async move {
        let channel = channels
            .get(&endpoint.location)
            .map_err(|e| e.to_string())?;
        let response = FlightServiceClient::new(channel)
            .do_get(Ticket::new(endpoint.ticket))
            .await
            .map_err(|s| format!("{}: {}", endpoint.location, s.message()))?;
        FlightRecordBatchStream::new_from_flight_data(
            response.into_inner().map_err(FlightError::from),
        )
        .try_collect::<Vec<_>>()
        .await
        .map_err(|e| format!("{}: {e}", endpoint.location))
    });
    let mut rows = Vec::new();
    for read in futures::future::join_all(reads).await {
        rows.extend(read?);
    }
    Ok(rows)
}

fn describe(
    seed: u64,
    chunk: usize,
    index: usize,
    setting: &Setting,
    sql: &str,
    difference: &str,
    plan: &str,
) -> String {
    format!(
        "seed {seed}, configuration {chunk}, query {index} (FLOTILLA_FUZZ_SEED={seed} to run it \
         again)\n  SQL: {sql}\n  configuration: {setting:?}\n  difference: {difference}\n  \
         plan:\n{plan}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_queries_on_a_cluster_equal_one_node() {
    let minutes: Option<u64> = std::env::var("FLOTILLA_FUZZ_MINUTES").ok().map(|m| {
        m.parse()
            .expect("FLOTILLA_FUZZ_MINUTES is a number of minutes")
    });
    let seed: Option<u64> = std::env::var("FLOTILLA_FUZZ_SEED")
        .ok()
        .map(|s| s.parse().expect("FLOTILLA_FUZZ_SEED is a number"));
    let mut failures = Vec::new();
    match (seed, minutes) {
        (Some(seed), _) => failures.extend(run_seed(seed, QUERIES_PER_SEED).await),
        (None, Some(minutes)) => {
            let until = Instant::now() + Duration::from_secs(minutes * 60);
            let mut seed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |t| t.as_secs());
            let mut runs = 0;
            while Instant::now() < until && failures.len() < 20 {
                failures.extend(run_seed(seed, QUERIES_PER_SEED).await);
                runs += 1;
                seed += 1;
            }
            eprintln!(
                "fuzz: {runs} seeds, {} read from the workers, {} failures",
                READ_FROM_WORKERS.load(Ordering::Relaxed),
                failures.len()
            );
        }
        (None, None) => {
            for seed in FIXED_SEEDS {
                failures.extend(run_seed(seed, QUERIES_PER_SEED).await);
            }
            // The fixed seeds cover reading results from the workers too.
            assert!(
                READ_FROM_WORKERS.load(Ordering::Relaxed) > 0,
                "no query was read from its workers' endpoints"
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} queries differ from one node:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Runs TPC-H query `n` at SF 0.1 on `setting`: whether its plan crossed nodes, or the
/// difference from DataFusion alone.
async fn tpch_on(n: usize, setting: &Setting) -> Result<bool, String> {
    let sql = tpch_query(n);
    let expected = tpch::reference_rows(&sql).await;
    let cluster = setting.cluster();
    let ctx = setting.session(&cluster);
    register_tpch_parquet(&ctx, tpch::SCALE, &tpch::TABLES).await;
    let channels = Arc::clone(cluster.distribution().unwrap().channels());
    let plan = ctx
        .sql(&sql)
        .await
        .map_err(|e| e.to_string())?
        .create_physical_plan()
        .await
        .map_err(|e| format!("failed to plan: {e}"))?;
    let text = displayable(plan.as_ref()).indent(false).to_string();
    let actual = run(&ctx, &channels, plan, setting)
        .await
        .map_err(|e| format!("failed: {e}\n{text}"))?;
    compare_batches(&expected, &actual, query_is_ordered(&sql))
        .map_err(|d| format!("{d}\n{text}"))?;
    Ok(text.contains("Network"))
}

/// TPC-H 22 over the configuration matrix: each query on configurations drawn from a seed.
/// The test command runs each query once, at 1–4 partitions and 1–4 nodes in turn (the rest
/// drawn); the long mode (`FLOTILLA_FUZZ_MINUTES`) draws whole configurations until time is up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tpch_over_the_configuration_matrix_equals_one_node() {
    let minutes: Option<u64> = std::env::var("FLOTILLA_FUZZ_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok());
    let mut failures = Vec::new();
    let mut crossed = 0;
    let mut check = async |n: usize, setting: Setting, seed: u64| {
        // Batches of a few rows make SF 0.1 crawl; the random queries cover those.
        let setting = Setting {
            batch_size: setting.batch_size.max(1024),
            ..setting
        };
        let started = Instant::now();
        let outcome = tpch_on(n, &setting).await;
        eprintln!("q{n}: {:?} {setting:?}", started.elapsed());
        match outcome {
            Ok(distributed) => crossed += usize::from(distributed),
            Err(difference) => failures.push(format!(
                "TPC-H q{n}, seed {seed}\n  configuration: {setting:?}\n  difference: {difference}"
            )),
        }
    };
    match minutes {
        None => {
            let mut draws = Rng::new(7);
            for n in 1..=22 {
                let setting = Setting {
                    target_partitions: 1 + n % 4,
                    nodes: 1 + (n / 4) % 4,
                    ..Setting::draw(&mut draws)
                };
                check(n, setting, 7).await;
            }
            // Nodes 2–4 with distribution forced in most: the fixed run must cross nodes.
            assert!(crossed >= 10, "only {crossed} of 22 queries crossed nodes");
        }
        Some(minutes) => {
            let until = Instant::now() + Duration::from_secs(minutes * 60);
            let mut seed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |t| t.as_secs());
            let mut runs = 0;
            while Instant::now() < until {
                let mut draws = Rng::new(seed);
                for n in 1..=22 {
                    check(n, Setting::draw(&mut draws), seed).await;
                }
                runs += 1;
                seed += 1;
            }
            eprintln!("tpch matrix: {runs} × 22 queries");
        }
    }
    assert!(
        failures.is_empty(),
        "{} TPC-H queries differ from one node:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
