//! A server on a free loopback port over TPC-H SF 0.01 (catalog `tpch`, schema `public`, the
//! session default), and clients for it.

use arrow_flight::FlightInfo;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::client::FlightSqlServiceClient;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use flotilla_flightsql::{
    FlightSqlServer, QueryAdmission, RegistryLimits, SessionLimits, SharedCatalogs, User,
};
use futures::TryStreamExt;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::oneshot;
use tonic::transport::Channel;

pub const SCALE: f64 = 0.01;

const TABLES: [&str; 8] = [
    "customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier",
];

/// A running server; stops when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

/// The node's base session: TPC-H tables in `tpch.public`, which is the default schema.
pub async fn tpch_context() -> SessionContext {
    let config = SessionConfig::new()
        .with_information_schema(true)
        .with_default_catalog_and_schema("tpch", "public");
    let ctx = SessionContext::new_with_config(config);
    let dir = flotilla_testkit::plans::tpch_parquet_dir(SCALE);
    for table in TABLES {
        let path = dir.join(format!("{table}.parquet"));
        ctx.register_parquet(table, path.to_str().unwrap(), ParquetReadOptions::default())
            .await
            .unwrap();
    }
    ctx
}

pub async fn start() -> TestServer {
    start_with(Vec::new(), RegistryLimits::default()).await
}

pub async fn start_with(users: Vec<User>, limits: RegistryLimits) -> TestServer {
    let ctx = tpch_context().await;
    serve(
        FlightSqlServer::new(Arc::new(SharedCatalogs::new(&ctx)))
            .with_users(users)
            .with_registry_limits(limits),
    )
    .await
}

/// A server keeping at most `limits.max_sessions` sessions.
pub async fn start_limited(limits: SessionLimits) -> TestServer {
    let ctx = tpch_context().await;
    serve(FlightSqlServer::new(Arc::new(SharedCatalogs::new(&ctx))).with_session_limits(limits))
        .await
}

/// A server running at most `admission.max_running` queries at once.
pub async fn start_admitting(admission: QueryAdmission) -> TestServer {
    let ctx = tpch_context().await;
    serve(FlightSqlServer::new(Arc::new(SharedCatalogs::new(&ctx))).with_query_admission(admission))
        .await
}

/// A server speaking TLS with `cert` and `key` (PEM).
pub async fn start_tls(cert: Vec<u8>, key: Vec<u8>) -> TestServer {
    let ctx = tpch_context().await;
    serve(FlightSqlServer::new(Arc::new(SharedCatalogs::new(&ctx))).with_tls(cert, key)).await
}

/// Runs `server` on a free loopback port.
async fn serve(server: FlightSqlServer) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        server
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    TestServer { addr, _stop: stop }
}

pub async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A Flight SQL client that has done the handshake (so it keeps one session).
pub async fn client(addr: SocketAddr) -> FlightSqlServiceClient<Channel> {
    let mut client = FlightSqlServiceClient::new(channel(addr).await);
    client.handshake("", "").await.unwrap();
    client
}

/// A raw Flight client, for calls whose gRPC status a test checks.
pub async fn raw(addr: SocketAddr) -> FlightServiceClient<Channel> {
    FlightServiceClient::new(channel(addr).await)
}

/// Every batch of every endpoint of `info`.
pub async fn fetch(
    client: &mut FlightSqlServiceClient<Channel>,
    info: FlightInfo,
) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.expect("a ticket");
        let stream = client.do_get(ticket).await.unwrap();
        batches.extend(stream.try_collect::<Vec<_>>().await.unwrap());
    }
    batches
}

/// Runs `sql` through the client and returns its rows.
pub async fn query(client: &mut FlightSqlServiceClient<Channel>, sql: &str) -> Vec<RecordBatch> {
    let info = client
        .execute(sql.to_string(), None)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    fetch(client, info).await
}

/// The rows of `batches` as Arrow displays them, one string per row.
pub fn rows(batches: &[RecordBatch]) -> Vec<String> {
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    let options = FormatOptions::default();
    let mut out = Vec::new();
    for batch in batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = formatters
                .iter()
                .map(|f| f.value(row).to_string())
                .collect();
            out.push(cells.join("|"));
        }
    }
    out
}

/// The gRPC code of a client error (`Unknown` for errors that are not statuses).
pub fn code(error: &arrow_flight::error::FlightError) -> tonic::Code {
    match error {
        arrow_flight::error::FlightError::Tonic(status) => status.code(),
        _ => tonic::Code::Unknown,
    }
}

/// The message of a client error.
pub fn message(error: &arrow_flight::error::FlightError) -> String {
    match error {
        arrow_flight::error::FlightError::Tonic(status) => status.message().to_string(),
        other => other.to_string(),
    }
}
