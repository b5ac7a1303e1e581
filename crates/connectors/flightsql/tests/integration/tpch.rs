//! TPC-H through node A → Flight SQL → node B equals DataFusion on the same Parquet, and each
//! query is sent to B whole.

use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use flotilla_connectors_flightsql::{FlightSqlOptions, FlightSqlSource};
use flotilla_federation::{Source, catalog_of, federated_context};
use flotilla_flightsql::{FlightSqlServer, SharedCatalogs, User};
use flotilla_testkit::plans::{
    plan_text, pushed_whole, run, tpch_parquet_context, tpch_parquet_dir, tpch_query,
};
use flotilla_testkit::{compare_batches, query_is_ordered};
use std::net::SocketAddr;
use std::sync::Arc;

const SCALE: f64 = 0.1;
const TABLES: [&str; 8] = [
    "customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier",
];

/// Node B: TPC-H in catalog `lake`, schema `public`; stops with the returned sender.
async fn node_b(users: Vec<User>) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let config = SessionConfig::new().with_default_catalog_and_schema("lake", "public");
    let ctx = SessionContext::new_with_config(config);
    let dir = tpch_parquet_dir(SCALE);
    for table in TABLES {
        let path = dir.join(format!("{table}.parquet"));
        ctx.register_parquet(table, path.to_str().unwrap(), ParquetReadOptions::default())
            .await
            .unwrap();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = FlightSqlServer::new(Arc::new(SharedCatalogs::new(&ctx))).with_users(users);
    tokio::spawn(server.serve(listener, async {
        let _ = stopped.await;
    }));
    (addr, stop)
}

/// Node A: B's `lake` catalog as source `b`, the default schema for unqualified names.
async fn node_a(addr: SocketAddr, options: FlightSqlOptions) -> SessionContext {
    let source: Arc<dyn Source> = Arc::new(
        FlightSqlSource::connect("b", &format!("grpc://{addr}"), options)
            .await
            .unwrap(),
    );
    let config = SessionConfig::new().with_default_catalog_and_schema("b", "public");
    let ctx = federated_context(config);
    ctx.register_catalog("b", catalog_of(source).await.unwrap());
    ctx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_through_another_node_equals_parquet_and_is_pushed_whole() {
    let (addr, _stop) = node_b(Vec::new()).await;
    let a = node_a(addr, FlightSqlOptions::default()).await;
    let local = tpch_parquet_context(SCALE).await;
    let mut failures = Vec::new();
    for n in 1..=22 {
        let sql = tpch_query(n);
        let expected = local.sql(&sql).await.unwrap().collect().await.unwrap();
        let (actual, plan) = run(&a, &sql).await;
        let text = plan_text(&plan);
        if !pushed_whole(&text) {
            failures.push(format!("q{n} not pushed whole:\n{text}"));
        }
        if let Err(diff) = compare_batches(&expected, &actual, query_is_ordered(&sql)) {
            failures.push(format!("q{n}: {diff}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_and_catalogs_are_checked_with_clear_errors() {
    let users = vec![User {
        name: "a".into(),
        password: "pw".into(),
    }];
    let (addr, _stop) = node_b(users).await;
    let url = format!("grpc://{addr}");
    let wrong = FlightSqlOptions {
        user: Some("a".into()),
        password: Some("nope".into()),
        ..Default::default()
    };
    let error = FlightSqlSource::connect("b", &url, wrong)
        .await
        .unwrap_err();
    assert_eq!(
        error.kind(),
        flotilla_common::ErrorKind::Unauthenticated,
        "{error}"
    );
    assert!(error.to_string().starts_with("source 'b'"), "{error}");

    let right = FlightSqlOptions {
        user: Some("a".into()),
        password: Some("pw".into()),
        catalog: Some("nowhere".into()),
        ..Default::default()
    };
    let error = FlightSqlSource::connect("b", &url, right)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("lake"),
        "names the catalogs there: {error}"
    );

    let ok = FlightSqlOptions {
        user: Some("a".into()),
        password: Some("pw".into()),
        ..Default::default()
    };
    let a = node_a(addr, ok).await;
    let rows = a
        .sql("SELECT count(*) FROM nation")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(rows[0].num_rows(), 1);

    let unreachable =
        FlightSqlSource::connect("gone", "grpc://127.0.0.1:1", FlightSqlOptions::default())
            .await
            .unwrap_err();
    assert_eq!(
        unreachable.kind(),
        flotilla_common::ErrorKind::Unavailable,
        "{unreachable}"
    );
    assert!(unreachable.to_string().contains("gone"), "{unreachable}");
}
