//! Queries that survive a dead node: a worker killed at a random moment during each TPC-H query
//! (its port closed and its connections cut, as when its process dies) — the query runs again
//! on the live nodes and is right; with `distributed.retry = none` it fails fast, naming the
//! node; the next query succeeds either way; a node that comes back is used again.

use crate::tpch::{SCALE, coordinator, fan_out, plan_text, reference_rows, worker};
use datafusion::prelude::SessionContext;
use flotilla_distributed::LocalhostCluster;
use flotilla_distributed::queries_run_again;
use flotilla_testkit::compare::compare_batches;
use flotilla_testkit::fuzz::Rng;
use flotilla_testkit::plans::{tpch_parquet_context, tpch_query};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Waits until every worker of `cluster` is planned on again (after restarts).
async fn until_all_used(ctx: &SessionContext, urls: &[String]) {
    let started = Instant::now();
    let sql = tpch_query(1);
    loop {
        let plan = plan_text(ctx, &sql).await;
        if urls.iter().all(|url| plan.contains(url.as_str())) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "restarted workers are not used again:\n{plan}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tpch_with_a_node_killed_during_each_query_is_right() {
    let cluster = Arc::new(Mutex::new(
        LocalhostCluster::start(3, worker).await.unwrap(),
    ));
    let urls = cluster.lock().await.urls().to_vec();
    let distribution = cluster.lock().await.distribution().unwrap();
    let ctx = coordinator(distribution, fan_out()).await;
    let reference = tpch_parquet_context(SCALE).await;
    let mut rng = Rng::new(18);
    let before = queries_run_again();
    let mut failures = Vec::new();
    for n in 1..=22 {
        let sql = tpch_query(n);
        let expected = reference.sql(&sql).await.unwrap().collect().await.unwrap();
        let victim = rng.below(3);
        let delay = Duration::from_millis(rng.between(20, 400) as u64);
        let killer = {
            let cluster = Arc::clone(&cluster);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                cluster.lock().await.kill(victim);
            })
        };
        match ctx.sql(&sql).await.unwrap().collect().await {
            Ok(actual) => {
                if let Err(e) = compare_batches(&expected, &actual, true) {
                    failures.push(format!("q{n} (node {victim} killed after {delay:?}): {e}"));
                }
            }
            Err(e) => failures.push(format!("q{n} (node {victim} killed after {delay:?}): {e}")),
        }
        killer.await.unwrap();
        cluster.lock().await.restart(victim).await.unwrap();
        until_all_used(&ctx, &urls).await;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!(
        "failover: {} of 22 queries ran again after their node was killed",
        queries_run_again() - before
    );
    // The kills hit running queries, which ran again (not only queries already done).
    assert!(
        queries_run_again() > before,
        "no query was running when its node was killed: the test proved nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_retry_a_dead_node_fails_the_query_fast_and_by_name() {
    let mut cluster = LocalhostCluster::start(3, worker).await.unwrap();
    let ctx = coordinator(cluster.distribution().unwrap(), fan_out()).await;
    ctx.sql("SET distributed.retry = 'none'").await.unwrap();
    // Pairs of lines by supplier: runs far longer than this test waits.
    let long = "SELECT count(*) FROM lineitem a JOIN lineitem b ON a.l_suppkey = b.l_suppkey";
    let running = {
        let ctx = ctx.clone();
        tokio::spawn(async move { ctx.sql(long).await.unwrap().collect().await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed = Instant::now();
    cluster.kill(1);
    let error = running
        .await
        .unwrap()
        .expect_err("the query lost a node")
        .to_string();
    let took = killed.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "failed {took:?} after the kill"
    );
    let dead = &cluster.urls()[1];
    assert!(error.contains(dead.as_str()), "{error}");
    assert!(error.contains("distributed.retry is none"), "{error}");
    // The next query is planned without it and is right.
    let sql = tpch_query(3);
    let expected = reference_rows(&sql).await;
    assert!(!plan_text(&ctx, &sql).await.contains(dead.as_str()));
    let actual = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
    compare_batches(&expected, &actual, true).unwrap();
}
