//! What happens to a query's tasks: dropping the result stops them everywhere; a small memory
//! pool makes the exchange spill instead of failing.

use crate::tpch::{SCALE, coordinator, fan_out};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use flotilla_distributed::{InProcessCluster, Worker};
use flotilla_testkit::compare::assert_same_rows;
use flotilla_testkit::plans::{tpch_parquet_context, tpch_query};
use futures::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Waits up to `limit` for `done`; returns how long it took.
pub(crate) async fn within(limit: Duration, what: &str, done: impl Fn() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what} after {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropping_the_result_stops_every_task_on_every_node() {
    let cluster = InProcessCluster::new(3, |_| {
        Worker::new(SessionStateBuilder::new().with_default_features().build())
    });
    let ctx = coordinator(cluster.distribution().unwrap(), fan_out()).await;
    // Operators give the runtime a chance to stop them every 128 batches (DataFusion's
    // cooperative budget); smaller batches make those chances come sooner.
    ctx.sql("SET datafusion.execution.batch_size = 1024")
        .await
        .unwrap();
    // Pairs of lines by supplier: runs far longer than this test waits.
    let sql = "SELECT count(*) FROM lineitem a JOIN lineitem b ON a.l_suppkey = b.l_suppkey";
    let mut stream = ctx.sql(sql).await.unwrap().execute_stream().await.unwrap();
    let first = tokio::time::timeout(Duration::from_millis(1500), stream.next()).await;
    assert!(
        first.is_err(),
        "the query finished before it could be cancelled"
    );
    let workers = cluster.workers();
    assert!(
        workers
            .iter()
            .any(|w| w.memory_reserved() > 0 || w.running_tasks() > 0),
        "the workers are busy with the query"
    );
    drop(stream);
    // The times are printed, not asserted to the second: this machine is shared with
    // the other tests, and a debug build's operator only lets go at the end of its current poll.
    let stopped = within(Duration::from_secs(5), "tasks still running", || {
        workers.iter().all(|w| w.running_tasks() == 0)
    })
    .await;
    let freed = within(Duration::from_secs(30), "memory still reserved", || {
        workers.iter().all(|w| w.memory_reserved() == 0)
    })
    .await;
    eprintln!("tasks stopped after {stopped:?}, memory back after {freed:?}");

    // The cluster keeps answering.
    let rows = ctx
        .sql("SELECT o_orderstatus, count(*) FROM orders GROUP BY 1")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_or_else(|e| panic!("the next query: {e}"));
    assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_small_exchange_budget_spills_and_q18_still_answers() {
    // Each worker has 24 MiB: shuffle buffers over their share go to disk.
    let cluster = InProcessCluster::new(2, |_| {
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(24 << 20)))
            .build_arc()
            .unwrap();
        Worker::new(
            SessionStateBuilder::new()
                .with_default_features()
                .with_runtime_env(runtime)
                .build(),
        )
    });
    let ctx = coordinator(cluster.distribution().unwrap(), fan_out()).await;
    let sql = tpch_query(18);
    let expected = tpch_parquet_context(SCALE)
        .await
        .sql(&sql)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let actual = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
    assert_same_rows(&expected, &actual, true);
    let workers = cluster.workers();
    within(Duration::from_secs(5), "tasks still kept", || {
        workers.iter().all(|w| w.running_tasks() == 0)
    })
    .await;
    let spilled: u64 = workers.iter().map(Worker::spilled_bytes).sum();
    eprintln!("spilled {spilled} bytes");
    assert!(spilled > 0, "nothing spilled with 24 MiB per worker");
}
