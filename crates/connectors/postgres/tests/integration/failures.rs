//! Failures around a PostgreSQL source: an unreachable server and a query dropped while the
//! server is still working on it.

use crate::common::{context, server, session_over};
use flotilla_connectors_postgres::{PostgresOptions, PostgresSource};
use flotilla_federation::config::Pushdown;
use flotilla_federation::{Source, catalog_of};
use futures::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test]
async fn an_unreachable_server_is_a_clear_error_naming_the_source() {
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgresql://postgres@127.0.0.1:{port}/postgres");
    let source: Arc<dyn Source> =
        Arc::new(PostgresSource::new("down", &url, PostgresOptions::default()).unwrap());
    let started = Instant::now();
    let e = catalog_of(source).await.unwrap_err().to_string();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        e.contains("source 'down'") && e.contains("cannot connect"),
        "{e}"
    );
    // A malformed connection string is refused before any connection.
    let e = PostgresSource::new(
        "bad",
        "postgresql://host:notaport/db",
        PostgresOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("source 'bad'") && e.contains("connection string"),
        "{e}"
    );
}

/// Active statements sent by Flotilla (its connections say `application_name = flotilla`).
fn active_statements() -> usize {
    server()
        .query(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE application_name = 'flotilla' AND state = 'active' \
             AND query LIKE '%CROSS_JOIN_PROBE%'",
        )
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_query_stops_the_statement_in_postgres() {
    let schema = server().load_tpch(0.1).unwrap();
    let (ctx, source) = context().await;
    // A cross join of 15 000 × 150 000 rows, counted inside PostgreSQL: runs for minutes.
    // The literal marks the statement in pg_stat_activity.
    let sql = format!(
        "SELECT count(*) FROM pg.{schema}.customer CROSS JOIN pg.{schema}.orders \
         WHERE c_name <> 'CROSS_JOIN_PROBE'"
    );
    let mut stream = ctx.sql(&sql).await.unwrap().execute_stream().await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(2), stream.next()).await;
    assert!(first.is_err(), "the query should still be running");
    assert_eq!(
        active_statements(),
        1,
        "the statement runs in PostgreSQL: {}",
        server()
            .query("SELECT application_name, state, query FROM pg_stat_activity")
            .unwrap()
    );
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(5);
    while active_statements() > 0 {
        assert!(
            Instant::now() < deadline,
            "the statement still runs 5 s after the query was dropped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The source keeps answering.
    let batches = ctx
        .sql(&format!("SELECT count(*) FROM pg.{schema}.region"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(batches[0].num_rows(), 1);
    assert!(
        source.idle_connections() >= 1,
        "the finished query's connection is pooled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stopped_during_a_query_is_a_clear_error_and_the_pool_recovers() {
    let mut private = flotilla_testkit::Postgres::start_private().unwrap();
    private
        .script("CREATE TABLE numbers AS SELECT generate_series(1, 20000) AS n;")
        .unwrap();
    let source =
        Arc::new(PostgresSource::new("pg", &private.url(), PostgresOptions::default()).unwrap());
    let ctx = session_over(Arc::clone(&source) as Arc<dyn Source>, Pushdown::All).await;
    // 20 000² rows counted inside PostgreSQL: long enough to stop the server under it.
    let sql = "SELECT count(*) FROM pg.public.numbers a CROSS JOIN pg.public.numbers b";
    let mut stream = ctx.sql(sql).await.unwrap().execute_stream().await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(1), stream.next()).await;
    assert!(first.is_err(), "the query should still be running");
    private.stop().unwrap();
    let started = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an error within seconds, not a hang");
    let e = match outcome {
        Some(Err(e)) => e.to_string(),
        other => panic!("expected an error, got {other:?}"),
    };
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(e.contains("source 'pg'"), "{e}");
    drop(stream);
    // While it is down: a clear error, quickly.
    let e = ctx
        .sql("SELECT count(*) FROM pg.public.numbers")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("source 'pg'") && e.contains("cannot connect"),
        "{e}"
    );
    // After a restart the next query works: stale pooled connections are replaced.
    private.restart().unwrap();
    let batches = ctx
        .sql("SELECT count(*) FROM pg.public.numbers")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let count = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Int64Array>()
        .unwrap()
        .value(0);
    assert_eq!(count, 20_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_root_certificate_is_checked_and_used() {
    let pki = flotilla_testkit::tls::test_pki();
    server().enable_tls(&pki).unwrap();
    let url = format!("{}?sslmode=require", server().url());
    let options = PostgresOptions {
        tls_root_cert: Some(pki.ca_cert.clone()),
        ..Default::default()
    };
    let source: Arc<dyn Source> = Arc::new(PostgresSource::new("secure", &url, options).unwrap());
    server()
        .query("CREATE TABLE public.tls_probe (a int); INSERT INTO public.tls_probe VALUES (42)")
        .unwrap();
    let ctx = datafusion::prelude::SessionContext::new();
    ctx.register_catalog("secure", catalog_of(Arc::clone(&source)).await.unwrap());
    let rows = ctx
        .sql("SELECT a FROM secure.public.tls_probe")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(rows[0].num_rows(), 1);
    // The server saw the connection (now idle in the pool) as TLS.
    let tls_connections: usize = server()
        .query(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'flotilla' AND s.ssl",
        )
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(tls_connections >= 1, "no TLS connection from Flotilla");

    // Without the CA, the server's certificate is not trusted: a clear error, no fallback.
    let untrusted: Arc<dyn Source> =
        Arc::new(PostgresSource::new("untrusted", &url, PostgresOptions::default()).unwrap());
    let e = catalog_of(untrusted).await.unwrap_err().to_string();
    assert!(
        e.contains("source 'untrusted'") && e.to_lowercase().contains("certificate"),
        "{e}"
    );
    // A root file that is not a certificate is refused before connecting.
    let e = PostgresSource::new(
        "bad",
        &url,
        PostgresOptions {
            tls_root_cert: Some(pki.server_key.clone()),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("source 'bad'") && e.contains("tls_root_cert"),
        "{e}"
    );
}
