//! Failures around a MariaDB source: an unreachable server, wrong credentials, and a query
//! dropped while the server is still working on it.

use crate::common::{context, server, url};
use flotilla_connectors_mysql::{MysqlOptions, MysqlSource};
use flotilla_federation::{Source, catalog_of};
use futures::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test]
async fn unreachable_servers_and_wrong_passwords_are_clear_errors() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down: Arc<dyn Source> = Arc::new(
        MysqlSource::new(
            "down",
            &format!("mysql://u:p@127.0.0.1:{port}/db"),
            None,
            MysqlOptions::default(),
        )
        .unwrap(),
    );
    let started = Instant::now();
    let e = catalog_of(down).await.unwrap_err().to_string();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        e.contains("source 'down'") && e.contains("cannot connect"),
        "{e}"
    );

    let wrong: Arc<dyn Source> = Arc::new(
        MysqlSource::new(
            "my",
            &url("flotilla"),
            Some("not-the-password"),
            MysqlOptions::default(),
        )
        .unwrap(),
    );
    let e = catalog_of(wrong).await.unwrap_err();
    assert_eq!(e.kind(), flotilla_common::ErrorKind::Unauthenticated, "{e}");
    assert!(e.to_string().contains("Access denied"), "{e}");
}

/// Statements of the test's marker running on the server.
fn running_probes() -> usize {
    server()
        .query(
            "SELECT count(*) FROM information_schema.PROCESSLIST \
             WHERE INFO LIKE '%CROSS_JOIN_PROBE%' AND INFO NOT LIKE '%PROCESSLIST%'",
        )
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_query_kills_the_statement_in_mariadb() {
    let database = server().load_tpch(0.1).unwrap();
    let (ctx, _) = context(&database).await;
    let sql = format!(
        "SELECT count(*) FROM my.{database}.customer CROSS JOIN my.{database}.orders \
         WHERE c_name <> 'CROSS_JOIN_PROBE'"
    );
    let mut stream = ctx.sql(&sql).await.unwrap().execute_stream().await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(2), stream.next()).await;
    assert!(first.is_err(), "the query should still be running");
    assert_eq!(running_probes(), 1, "the statement runs in MariaDB");
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(5);
    while running_probes() > 0 {
        assert!(
            Instant::now() < deadline,
            "the statement still runs 5 s after the query was dropped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let batches = ctx
        .sql(&format!("SELECT count(*) FROM my.{database}.region"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(batches[0].num_rows(), 1);
}
