//! Who is alive: a worker found dead is out of planning at once — it costs at most the query
//! that found it — and is used again once it answers.

use crate::tpch::{coordinator, fan_out, plan_text, reference_rows, worker};
use flotilla_distributed::{ClusterNodes, Distribution, LocalhostCluster, StaticWorkers};
use flotilla_testkit::compare::assert_same_rows;
use flotilla_testkit::plans::tpch_query;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A loopback port nothing listens on, and its worker URL: a node that is down.
fn nobody_listening() -> (u16, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    (port, format!("grpc://127.0.0.1:{port}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_worker_costs_one_query_at_most_and_is_used_again_when_back() {
    let cluster = LocalhostCluster::start(2, worker).await.unwrap();
    // A third node that is down: nothing listens on its port.
    let (port, dead) = nobody_listening();
    let mut urls = cluster.urls().to_vec();
    urls.push(dead.clone());
    let distribution = Distribution::new(Arc::new(StaticWorkers::new(urls).unwrap()));
    let distribution_table = distribution.clone();
    let ctx = coordinator(distribution, fan_out()).await;
    // Without running queries again, the query that finds the dead node fails (with retries it
    // would run again without it: see failover.rs).
    ctx.sql("SET distributed.retry = 'none'").await.unwrap();
    let sql = tpch_query(1);
    let expected = reference_rows(&sql).await;

    // The first query is planned on it (nobody knows yet) and fails, naming it.
    assert!(plan_text(&ctx, &sql).await.contains(&dead));
    let error = ctx
        .sql(&sql)
        .await
        .unwrap()
        .collect()
        .await
        .expect_err("a task on a dead node")
        .to_string();
    assert!(error.contains(&dead), "{error}");

    // The cluster table says who is down, and why; the others answer with their tasks.
    let nodes = ClusterNodes::new(
        Arc::clone(distribution_table.discovery()),
        Arc::clone(distribution_table.channels()),
    );
    ctx.register_table("nodes", Arc::new(nodes)).unwrap();
    let count = |sql: String| {
        let ctx = ctx.clone();
        async move {
            let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
            batches.iter().map(|b| b.num_rows()).sum::<usize>()
        }
    };
    assert_eq!(
        count(format!(
            "SELECT * FROM nodes WHERE node = '{dead}' AND state = 'down' \
             AND last_error IS NOT NULL AND down_since IS NOT NULL AND running_tasks IS NULL"
        ))
        .await,
        1
    );
    assert_eq!(
        count(
            "SELECT * FROM nodes WHERE state = 'up' AND last_error IS NULL \
             AND running_tasks IS NOT NULL AND last_seen IS NOT NULL"
                .to_string()
        )
        .await,
        2
    );

    // The next ones are planned without it and are right.
    for _ in 0..3 {
        let plan = plan_text(&ctx, &sql).await;
        assert!(!plan.contains(&dead), "{plan}");
        let actual = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        assert_same_rows(&expected, &actual, true);
    }

    // The node comes back on its address: probes find it and plans use it again.
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    let service = worker(2).with_address(dead.clone()).into_service();
    let server = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await;
    });
    let started = Instant::now();
    while !plan_text(&ctx, &sql).await.contains(&dead) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the node is not used again after it came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let actual = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
    assert_same_rows(&expected, &actual, true);
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_that_died_is_left_out_of_the_next_plan_whoever_saw_it() {
    // Stages of a join on three nodes, one dead: some tasks of the live workers read from it,
    // and so may the coordinator. However the failure reaches the coordinator, it asks the
    // query's workers before returning it, so the next plan leaves the dead node out.
    let cluster = LocalhostCluster::start(2, worker).await.unwrap();
    let (_, dead) = nobody_listening();
    let urls = vec![
        cluster.urls()[0].clone(),
        dead.clone(),
        cluster.urls()[1].clone(),
    ];
    let distribution = Distribution::new(Arc::new(StaticWorkers::new(urls).unwrap()));
    let ctx = coordinator(distribution, fan_out()).await;
    let sql = tpch_query(3);
    let _ = ctx.sql(&sql).await.unwrap().collect().await;
    let plan = plan_text(&ctx, &sql).await;
    assert!(!plan.contains(&dead), "{plan}");
    assert!(ctx.sql(&sql).await.unwrap().collect().await.is_ok());
}
