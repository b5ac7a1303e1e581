//! `flotilla serve` nodes on hosts of their own (network namespaces on a private subnet, see
//! `flotilla_testkit::netns`): a node killed at a random moment during each TPC-H query, and a
//! link cut mid-query — with retries the queries are right, without them they fail fast naming
//! the node; the next query succeeds; a node that comes back is used again. Needs root (CI runs
//! as root); without it the tests fail saying so.

use crate::distributed::{config, config_text, coordinating, plan_text, rows};
use crate::flightsql::{Served, serve_with};
use datafusion::prelude::SessionContext;
use flotilla_distributed::queries_run_again;
use flotilla_node::context::build_context;
use flotilla_testkit::assert_same_rows;
use flotilla_testkit::fuzz::Rng;
use flotilla_testkit::netns::Network;
use flotilla_testkit::plans::tpch_query;
use std::time::{Duration, Instant};

const PORT: u16 = 50051;

/// A cluster of `count` nodes, each on its own host.
struct Cluster {
    network: Network,
    urls: Vec<String>,
    nodes: Vec<Option<Served>>,
    text: String,
}

impl Cluster {
    fn start(count: usize) -> Self {
        let network = Network::create(count).unwrap_or_else(|e| panic!("{e}"));
        let urls: Vec<String> = (0..count)
            .map(|i| format!("grpc://{}:{PORT}", network.address(i)))
            .collect();
        let peers = urls
            .iter()
            .map(|url| format!("\"{url}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let text = format!("{}\n[cluster]\npeers = [{peers}]\n", config_text());
        let mut cluster = Self {
            network,
            urls,
            nodes: (0..count).map(|_| None).collect(),
            text,
        };
        for i in 0..count {
            cluster.start_node(i);
        }
        cluster
    }

    fn start_node(&mut self, i: usize) {
        let command = self.network.command(i, env!("CARGO_BIN_EXE_flotilla"), &[]);
        let listen = format!("{}:{PORT}", self.network.address(i));
        self.nodes[i] = Some(serve_with(command, &self.text, &listen));
    }

    /// Kills node `i` (SIGKILL) and waits for it to be gone.
    fn kill(&mut self, i: usize) {
        if let Some(mut node) = self.nodes[i].take() {
            let _ = node.child.kill();
            let _ = node.child.wait();
        }
    }

    /// A coordinator in this process (its own host) that spreads every stage over all nodes.
    async fn coordinator(&self) -> SessionContext {
        coordinating(&self.urls).await
    }
}

/// Waits until `ctx` plans on node `url` again.
async fn until_used(ctx: &SessionContext, url: &str) {
    let started = Instant::now();
    let sql = "SELECT l_returnflag, count(*) FROM lake.public.lineitem GROUP BY 1";
    loop {
        let plan = plan_text(ctx, sql).await;
        if plan.contains(url) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "{url} is not used again after it came back:\n{plan}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The TPC-H query `n` over the node's sources (`lake` is the default catalog).
fn query(n: usize) -> String {
    tpch_query(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_during_each_tpch_query_on_separate_hosts_costs_no_answer() {
    let mut cluster = Cluster::start(3);
    let ctx = cluster.coordinator().await;
    let single = build_context(&config()).await.unwrap();
    let mut rng = Rng::new(3);
    let before = queries_run_again();
    let mut failures = Vec::new();
    for n in 1..=22 {
        let sql = query(n);
        let expected = rows(&single, &sql).await;
        let victim = rng.below(3);
        let delay = Duration::from_millis(rng.between(30, 600) as u64);
        let running = {
            let ctx = ctx.clone();
            let sql = sql.clone();
            tokio::spawn(async move { ctx.sql(&sql).await?.collect().await })
        };
        tokio::time::sleep(delay).await;
        cluster.kill(victim);
        match running.await.unwrap() {
            Ok(actual) => {
                if let Err(e) = flotilla_testkit::compare_batches(&expected, &actual, true) {
                    failures.push(format!("q{n} (node {victim} killed after {delay:?}): {e}"));
                }
            }
            Err(e) => failures.push(format!("q{n} (node {victim} killed after {delay:?}): {e}")),
        }
        cluster.start_node(victim);
        until_used(&ctx, &cluster.urls[victim]).await;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let again = queries_run_again() - before;
    eprintln!("namespaces: {again} of 22 queries ran again after their node was killed");
    assert!(again > 0, "no query was running when its node was killed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_link_cut_mid_query_fails_fast_without_retry_and_costs_no_answer_with_it() {
    let cluster = Cluster::start(3);
    let ctx = cluster.coordinator().await;

    // Without retries: the query fails within 5 s of the cut, naming the node.
    ctx.sql("SET distributed.retry = 'none'").await.unwrap();
    let long = "SELECT count(*) FROM lake.public.lineitem a \
                JOIN lake.public.lineitem b ON a.l_suppkey = b.l_suppkey";
    let running = {
        let ctx = ctx.clone();
        tokio::spawn(async move { ctx.sql(long).await?.collect().await })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !running.is_finished(),
        "the query ended before the link was cut"
    );
    cluster.network.cut(1).unwrap();
    let cut = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the query ends after the cut")
        .unwrap();
    let took = cut.elapsed();
    let message = outcome.expect_err("a node is cut off").to_string();
    assert!(message.contains(&cluster.urls[1]), "{message}");
    assert!(
        took < Duration::from_secs(5),
        "failed {took:?} after the cut: {message}"
    );
    eprintln!("failed {took:?} after the cut: {message}");

    // The next query runs on the nodes left.
    let sql = query(3);
    let expected = rows(&build_context(&config()).await.unwrap(), &sql).await;
    assert!(!plan_text(&ctx, &sql).await.contains(&cluster.urls[1]));
    assert_same_rows(&expected, &rows(&ctx, &sql).await, true);

    // Connected again, the node is used again.
    cluster.network.restore(1).unwrap();
    until_used(&ctx, &cluster.urls[1]).await;

    // With retries: a query whose node is cut off mid-way runs again and is right.
    ctx.sql("SET distributed.retry = 'query'").await.unwrap();
    let sql = query(9);
    let expected = rows(&build_context(&config()).await.unwrap(), &sql).await;
    let running = {
        let ctx = ctx.clone();
        let sql = sql.clone();
        tokio::spawn(async move { ctx.sql(&sql).await?.collect().await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.network.cut(2).unwrap();
    let actual = running
        .await
        .unwrap()
        .expect("the query runs again without the node cut off");
    assert_same_rows(&expected, &actual, true);
    cluster.network.restore(2).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_link_cut_between_two_workers_costs_no_answer() {
    let cluster = Cluster::start(3);
    let ctx = cluster.coordinator().await;
    let sql = query(9);
    let expected = rows(&build_context(&config()).await.unwrap(), &sql).await;
    // Nodes 1 and 2 cannot reach each other; this process reaches all three.
    cluster.network.cut_between(1, 2).unwrap();

    // Without retries: the query fails at once, naming a node of the cut link.
    ctx.sql("SET distributed.retry = 'none'").await.unwrap();
    let message = ctx
        .sql(&sql)
        .await
        .unwrap()
        .collect()
        .await
        .expect_err("nodes 1 and 2 read each other's partitions")
        .to_string();
    assert!(
        message.contains(&cluster.urls[1]) || message.contains(&cluster.urls[2]),
        "{message}"
    );
    assert!(message.contains("distributed.retry is none"), "{message}");

    // With retries: the query runs again without one of them, and is right.
    ctx.sql("SET distributed.retry = 'query'").await.unwrap();
    let before = queries_run_again();
    assert_same_rows(&expected, &rows(&ctx, &sql).await, true);
    assert!(queries_run_again() > before, "the query was not run again");

    // Cut mid-query: the same.
    cluster.network.join_between(1, 2).unwrap();
    let running = {
        let ctx = ctx.clone();
        let sql = sql.clone();
        tokio::spawn(async move { ctx.sql(&sql).await?.collect().await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.network.cut_between(1, 2).unwrap();
    let actual = running
        .await
        .unwrap()
        .expect("the query runs again without a node of the cut link");
    assert_same_rows(&expected, &actual, true);
    cluster.network.join_between(1, 2).unwrap();
}
