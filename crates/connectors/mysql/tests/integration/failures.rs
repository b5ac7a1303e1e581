//! Failures around a MariaDB source: an unreachable server, wrong credentials, and a query
//! dropped while the server is still working on it.

use crate::common::{context, server, session_over, url};
use flotilla_connectors_mysql::{MysqlOptions, MysqlSource};
use flotilla_federation::config::Pushdown;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stopped_during_a_query_is_a_clear_error_and_the_pool_recovers() {
    let mut private = flotilla_testkit::MariaDb::start_private().unwrap();
    private
        .query(
            "USE flotilla; CREATE TABLE numbers (n INT PRIMARY KEY); \
             INSERT INTO numbers SELECT seq FROM seq_1_to_20000;",
        )
        .unwrap();
    let source: Arc<dyn Source> =
        Arc::new(MysqlSource::new("my", &private.url(), None, MysqlOptions::default()).unwrap());
    let ctx = session_over(source, Pushdown::All).await;
    // 20 000² rows counted inside MariaDB: long enough to stop the server under it.
    let sql = "SELECT count(*) FROM my.flotilla.numbers a CROSS JOIN my.flotilla.numbers b";
    let mut stream = ctx.sql(sql).await.unwrap().execute_stream().await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(1), stream.next()).await;
    assert!(first.is_err(), "the query should still be running");
    private.stop().unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an error within seconds, not a hang");
    let e = match outcome {
        Some(Err(e)) => e.to_string(),
        other => panic!("expected an error, got {other:?}"),
    };
    assert!(e.contains("source 'my'"), "{e}");
    drop(stream);
    let count = || async {
        ctx.sql("SELECT count(*) FROM my.flotilla.numbers")
            .await
            .unwrap()
            .collect()
            .await
    };
    let e = count().await.unwrap_err().to_string();
    assert!(
        e.contains("source 'my'") && e.contains("cannot connect"),
        "{e}"
    );
    // After a restart the next query works: the pool replaces its broken connections.
    private.restart().unwrap();
    let batches = count().await.unwrap();
    let value = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Int64Array>()
        .unwrap()
        .value(0);
    assert_eq!(value, 20_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_root_certificate_is_checked_and_used() {
    let pki = flotilla_testkit::tls::test_pki();
    let mut private = flotilla_testkit::MariaDb::start_private().unwrap();
    private.enable_tls(&pki).unwrap();
    let options = MysqlOptions {
        tls_root_cert: Some(pki.ca_cert.clone()),
        ..Default::default()
    };
    let source = Arc::new(MysqlSource::new("secure", &private.url(), None, options).unwrap());
    let ctx = datafusion::prelude::SessionContext::new();
    ctx.register_catalog(
        "secure",
        catalog_of(Arc::clone(&source) as Arc<dyn Source>)
            .await
            .unwrap(),
    );
    // The session's own view of its connection: a cipher is in use.
    let encrypted = source
        .run_natively(
            "SELECT 1 FROM DUAL WHERE (SELECT VARIABLE_VALUE FROM \
                       information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'Ssl_cipher') <> ''",
        )
        .await
        .unwrap();
    assert_eq!(encrypted, 1, "the connection is not encrypted");

    // A CA that did not sign the server's certificate: refused, clearly.
    let other = flotilla_testkit::tls::test_pki();
    let options = MysqlOptions {
        tls_root_cert: Some(other.ca_cert.clone()),
        ..Default::default()
    };
    let untrusted: Arc<dyn Source> =
        Arc::new(MysqlSource::new("untrusted", &private.url(), None, options).unwrap());
    let e = catalog_of(untrusted).await.unwrap_err().to_string();
    assert!(
        e.contains("source 'untrusted'") && e.to_lowercase().contains("certificate"),
        "{e}"
    );
}
