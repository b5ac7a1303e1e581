//! Results straight from the workers: the endpoints of a query whose last stage only gathers,
//! read from the workers with the tickets a client would present, never through the
//! coordinator.

use crate::lifecycle::within;
use crate::tpch::{SCALE, coordinator, fan_out};
use arrow_flight::Ticket;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use datafusion::arrow::array::RecordBatch;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use flotilla_distributed::results::ResultTicket;
use flotilla_distributed::{
    ChannelCache, DefaultChannels, LocalhostCluster, ResultEndpoint, Worker, result_endpoints,
};
use flotilla_testkit::compare::assert_same_rows;
use flotilla_testkit::plans::tpch_parquet_context;
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use std::sync::Arc;
use std::time::Duration;

const SECRET: &str = "shared-by-the-cluster";

fn channels(secret: &str) -> Arc<ChannelCache> {
    Arc::new(
        ChannelCache::new(Arc::new(DefaultChannels::default()))
            .with_secret(secret)
            .unwrap(),
    )
}

/// Three workers on loopback ports sharing [`SECRET`], and a coordinator (not one of them)
/// that fans every stage out over them.
async fn cluster() -> (LocalhostCluster, SessionContext) {
    let cluster = LocalhostCluster::start(3, |_| {
        Worker::new(SessionStateBuilder::new().with_default_features().build())
            .with_channels(channels(SECRET))
    })
    .await
    .unwrap();
    let distribution = cluster
        .distribution()
        .unwrap()
        .with_channels(channels(SECRET));
    let ctx = coordinator(distribution, fan_out()).await;
    (cluster, ctx)
}

async fn plan(ctx: &SessionContext, sql: &str) -> Arc<dyn ExecutionPlan> {
    ctx.sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap()
}

async fn endpoints(ctx: &SessionContext, sql: &str) -> Option<Vec<ResultEndpoint>> {
    result_endpoints(&plan(ctx, sql).await, &ctx.task_ctx()).unwrap()
}

/// What a client gets for `ticket` at `location`, as it would ask: no cluster secret.
async fn open(location: &str, ticket: Vec<u8>) -> Result<FlightRecordBatchStream, tonic::Status> {
    let channel = flotilla_common::grpc::endpoint(location, None)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let response = FlightServiceClient::new(channel)
        .do_get(Ticket::new(ticket))
        .await?;
    Ok(FlightRecordBatchStream::new_from_flight_data(
        response.into_inner().map_err(FlightError::from),
    ))
}

async fn read(location: &str, ticket: Vec<u8>) -> Result<Vec<RecordBatch>, String> {
    let stream = open(location, ticket).await.map_err(|s| s.to_string())?;
    stream.try_collect().await.map_err(|e| e.to_string())
}

/// Every endpoint read at once, as ADBC does; the rows of all of them.
async fn read_all(endpoints: &[ResultEndpoint]) -> Vec<RecordBatch> {
    let reads = endpoints
        .iter()
        .map(|endpoint| read(&endpoint.location, endpoint.ticket.clone()));
    futures::future::join_all(reads)
        .await
        .into_iter()
        .flat_map(|rows| rows.unwrap_or_else(|e| panic!("reading an endpoint: {e}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gathering_query_is_read_from_its_workers_row_for_row() {
    let (cluster, ctx) = cluster().await;
    let sql = "SELECT l_returnflag, l_linestatus, count(*) AS n, sum(l_quantity) AS q \
               FROM lineitem GROUP BY l_returnflag, l_linestatus";
    let endpoints = endpoints(&ctx, sql)
        .await
        .expect("a query ending in a gather is read from the workers");
    // Fanned out: one endpoint per task of the last stage, one task per worker.
    let mut locations: Vec<&str> = endpoints.iter().map(|e| e.location.as_str()).collect();
    locations.sort_unstable();
    let mut urls: Vec<&str> = cluster.urls().iter().map(String::as_str).collect();
    urls.sort_unstable();
    assert_eq!(locations, urls);

    let sent_before: u64 = cluster.workers().iter().map(Worker::bytes_sent).sum();
    let actual = read_all(&endpoints).await;
    let expected = tpch_parquet_context(SCALE)
        .await
        .sql(sql)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_same_rows(&expected, &actual, false);
    let sent_after: u64 = cluster.workers().iter().map(Worker::bytes_sent).sum();
    assert!(sent_after > sent_before, "the workers sent the rows");

    // Each task's rows are served once.
    let again = read(&endpoints[0].location, endpoints[0].ticket.clone())
        .await
        .unwrap_err();
    assert!(again.contains("already read"), "{again}");
    within(Duration::from_secs(5), "tasks still kept", || {
        cluster.workers().iter().all(|w| w.running_tasks() == 0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_a_last_stage_that_just_gathers_is_read_from_the_workers() {
    let (_cluster, ctx) = cluster().await;
    let grouped = "SELECT l_returnflag, count(*) FROM lineitem GROUP BY l_returnflag";
    assert!(endpoints(&ctx, grouped).await.is_some());
    // EXPLAIN says so, naming the workers.
    let shown = |sql: &'static str| {
        let ctx = ctx.clone();
        async move {
            flotilla_testkit::plans::plan_text(&plan(&ctx, sql).await)
                .contains("flight_sql_results_from=[grpc://")
        }
    };
    assert!(shown(grouped).await);
    // A merge, a limit or a single-node query needs the rows in one place.
    for sql in [
        "SELECT l_returnflag, count(*) FROM lineitem GROUP BY l_returnflag ORDER BY 1",
        "SELECT l_returnflag, count(*) FROM lineitem GROUP BY l_returnflag LIMIT 2",
        "SELECT 1",
    ] {
        assert!(
            endpoints(&ctx, sql).await.is_none(),
            "{sql}\n{}",
            flotilla_testkit::plans::plan_text(&plan(&ctx, sql).await)
        );
        assert!(!shown(sql).await, "{sql}");
    }
    ctx.sql("SET distributed.results_from_workers = false")
        .await
        .unwrap();
    assert!(endpoints(&ctx, grouped).await.is_none());
    assert!(!shown(grouped).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_result_ticket_not_signed_by_the_cluster_or_expired_is_refused() {
    let (cluster, ctx) = cluster().await;
    let sql = "SELECT l_returnflag, count(*) FROM lineitem GROUP BY l_returnflag";
    let endpoint = endpoints(&ctx, sql).await.unwrap().remove(0);
    let location = endpoint.location.as_str();
    let ticket = ResultTicket::open(&endpoint.ticket, Some(SECRET)).unwrap();

    let forged = ticket.clone().seal(Some("a-guess")).unwrap();
    let refused = open(location, forged).await.err().unwrap();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused}");
    assert!(refused.message().contains("not issued"), "{refused}");
    let unsigned = ticket.clone().seal(None).unwrap();
    let refused = open(location, unsigned).await.err().unwrap();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused}");

    // The signature covers the whole ticket: another query under it is refused.
    let mut tampered = ticket.clone();
    if let Some(task) = tampered.task.as_mut() {
        task.query.push('x');
    }
    let refused = open(location, envelope(&tampered)).await.err().unwrap();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused}");

    let expired = ResultTicket {
        expires_ms: 1,
        ..ticket
    }
    .seal(Some(SECRET))
    .unwrap();
    let refused = open(location, expired).await.err().unwrap();
    assert!(refused.message().contains("expired"), "{refused}");

    // None of these ran anything; the genuine ticket still reads.
    assert!(cluster.workers().iter().all(|w| w.running_tasks() == 0));
    read(location, endpoint.ticket).await.unwrap();
}

/// `ticket` in its envelope exactly as given (signature included).
fn envelope(ticket: &ResultTicket) -> Vec<u8> {
    #[derive(Clone, PartialEq, prost::Message)]
    struct Envelope {
        #[prost(string, tag = "1")]
        type_url: String,
        #[prost(bytes = "vec", tag = "2")]
        value: Vec<u8>,
    }
    Envelope {
        type_url: flotilla_distributed::results::RESULT_TICKET_TYPE.to_string(),
        value: ticket.encode_to_vec(),
    }
    .encode_to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropping_a_result_stream_ends_the_query_on_every_worker() {
    let (cluster, ctx) = cluster().await;
    ctx.sql("SET datafusion.execution.batch_size = 1024")
        .await
        .unwrap();
    // Pairs of lines by supplier: far more rows than this test reads.
    let sql = "SELECT a.l_orderkey, b.l_orderkey FROM lineitem a \
               JOIN lineitem b ON a.l_suppkey = b.l_suppkey";
    let endpoints = endpoints(&ctx, sql).await.unwrap();
    let mut stream = open(&endpoints[0].location, endpoints[0].ticket.clone())
        .await
        .unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert!(first.num_rows() > 0);
    let workers = cluster.workers();
    assert!(workers.iter().any(|w| w.running_tasks() > 0));
    drop(stream);
    within(Duration::from_secs(5), "tasks still running", || {
        workers.iter().all(|w| w.running_tasks() == 0)
    })
    .await;
    // The query is over everywhere: its other endpoint is refused, not started.
    let late = read(&endpoints[1].location, endpoints[1].ticket.clone())
        .await
        .unwrap_err();
    assert!(late.contains("has ended"), "{late}");
}
