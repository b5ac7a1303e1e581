//! Queries: TPC-H results equal DataFusion's own, errors carry the right codes.

use crate::common::{self, SCALE};
use arrow_flight::FlightDescriptor;
use arrow_flight::sql::{CommandStatementQuery, ProstMessageExt};
use flotilla_testkit::compare::{compare_batches, query_is_ordered};
use flotilla_testkit::plans::{tpch_parquet_context, tpch_query};
use prost::Message;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_q1_and_q3_equal_local_results() {
    let server = common::start().await;
    let mut client = common::client(server.addr).await;
    let local = tpch_parquet_context(SCALE).await;
    for n in [1, 3, 5, 10] {
        let sql = tpch_query(n);
        let expected = local.sql(&sql).await.unwrap().collect().await.unwrap();
        let info = client.execute(sql.clone(), None).await.unwrap();
        // The FlightInfo carries the schema the stream has: planned once.
        let announced = info.clone().try_decode_schema().unwrap();
        let actual = common::fetch(&mut client, info).await;
        assert!(!actual.is_empty(), "q{n}: no batches");
        assert_eq!(actual[0].schema().as_ref(), &announced, "q{n}: schema");
        if let Err(diff) = compare_batches(&expected, &actual, query_is_ordered(&sql)) {
            panic!("q{n}: {diff}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_result_still_has_its_schema() {
    let server = common::start().await;
    let mut client = common::client(server.addr).await;
    let info = client
        .execute(
            "SELECT n_name, n_nationkey FROM nation WHERE n_nationkey < 0".into(),
            None,
        )
        .await
        .unwrap();
    let announced = info.clone().try_decode_schema().unwrap();
    assert_eq!(announced.fields().len(), 2);
    let batches = common::fetch(&mut client, info).await;
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
}

/// The status of GetFlightInfo for `sql`.
async fn status_of(addr: std::net::SocketAddr, sql: &str) -> tonic::Status {
    let mut raw = common::raw(addr).await;
    let command = CommandStatementQuery {
        query: sql.to_string(),
        transaction_id: None,
    };
    let descriptor = FlightDescriptor::new_cmd(command.as_any().encode_to_vec());
    raw.get_flight_info(descriptor)
        .await
        .expect_err("the statement should fail")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_have_their_codes_and_readable_messages() {
    let server = common::start().await;
    let syntax = status_of(server.addr, "SELEC 1").await;
    assert_eq!(syntax.code(), Code::InvalidArgument, "{syntax:?}");
    assert!(syntax.message().contains("SELEC"), "{}", syntax.message());
    let unknown = status_of(server.addr, "SELECT * FROM no_such_table").await;
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
    assert!(
        unknown.message().contains("no_such_table"),
        "{}",
        unknown.message()
    );
    let column = status_of(server.addr, "SELECT no_such_column FROM nation").await;
    assert_eq!(column.code(), Code::InvalidArgument, "{column:?}");
    for status in [&syntax, &unknown, &column] {
        assert!(
            !status.message().contains("DataFusionError"),
            "a Debug dump: {status:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_while_streaming_reaches_the_client() {
    let server = common::start().await;
    let mut client = common::client(server.addr).await;
    // Planning succeeds; the cast fails on a row only when the plan runs.
    let info = client
        .execute("SELECT CAST(n_name AS INT) FROM nation".into(), None)
        .await
        .unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let error = match client.do_get(ticket).await {
        Ok(stream) => futures::TryStreamExt::try_collect::<Vec<_>>(stream)
            .await
            .expect_err("the cast fails")
            .to_string(),
        Err(e) => e.to_string(),
    };
    assert!(
        error.contains("ALGERIA") || error.contains("Cannot cast"),
        "{error}"
    );
}

/// Values of every kind of Arrow type DataFusion makes, with a NULL, arrive with the type the
/// FlightInfo announces and the values DataFusion computes locally. (arrow-flight's own
/// encoder announced a `LargeList` as `List`: ADBC refused the stream.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_arrow_type_arrives_as_announced_and_as_datafusion_computes_it() {
    let server = common::start().await;
    let mut client = common::client(server.addr).await;
    let local = datafusion::prelude::SessionContext::new();
    for value in [
        "arrow_cast(1.5, 'Float16')",
        "arrow_cast('a', 'Dictionary(Int32, Utf8)')",
        "arrow_cast('a', 'Dictionary(UInt8, LargeUtf8)')",
        "arrow_cast('a', 'LargeUtf8')",
        "arrow_cast('a', 'Utf8View')",
        "arrow_cast('x', 'LargeBinary')",
        "arrow_cast(make_array(1, NULL, 3), 'LargeList(Int64)')",
        "arrow_cast(make_array(make_array(1), NULL), 'LargeList(LargeList(Int64))')",
        "arrow_cast(make_array(1, 2), 'FixedSizeList(2, Int64)')",
        "arrow_cast(1.5, 'Decimal256(40, 2)')",
        "INTERVAL '1 day 2 hours'",
        "arrow_cast(arrow_cast(5, 'Int64'), 'Duration(Second)')",
        "named_struct('a', 1, 'b', arrow_cast(make_array(2), 'LargeList(Int64)'))",
        "map(['k'], [1])",
    ] {
        let sql = format!(
            "SELECT k, CASE WHEN k = 1 THEN {value} END AS v FROM (VALUES (1), (2)) AS t(k)"
        );
        let expected = local.sql(&sql).await.unwrap().collect().await.unwrap();
        let info = client
            .execute(sql.clone(), None)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let announced = info.clone().try_decode_schema().unwrap();
        assert_eq!(&announced, expected[0].schema().as_ref(), "{sql}");
        let info_endpoints = info.endpoint.clone();
        let mut actual = Vec::new();
        for endpoint in info_endpoints {
            let stream = client
                .do_get(endpoint.ticket.expect("a ticket"))
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            actual.extend(
                futures::TryStreamExt::try_collect::<Vec<_>>(stream)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}")),
            );
        }
        for batch in &actual {
            assert_eq!(batch.schema().as_ref(), &announced, "{sql}");
        }
        let mut got = common::rows(&actual);
        got.sort();
        let mut want = common::rows(&expected);
        want.sort();
        assert_eq!(got, want, "{sql}");
    }
}

/// With `flotilla.flight.partitioned_results`, a result in several partitions comes as one
/// endpoint per partition (unordered), whose rows together are the query's; by default it is
/// (or set back to false) one ordered endpoint with the same rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_of_several_partitions_is_served_as_an_endpoint_per_partition() {
    let server = common::start().await;
    let mut client = common::client(server.addr).await;
    common::query(
        &mut client,
        "SET datafusion.execution.target_partitions = 3",
    )
    .await;
    common::query(
        &mut client,
        "SET flotilla.flight.partitioned_results = true",
    )
    .await;
    let sql = "SELECT l_orderkey, l_linenumber FROM lineitem WHERE l_quantity > 10";
    let info = client.execute(sql.into(), None).await.unwrap();
    assert_eq!(info.endpoint.len(), 3, "{info:?}");
    assert!(!info.ordered);
    let mut parts = common::rows(&common::fetch(&mut client, info).await);
    common::query(
        &mut client,
        "SET flotilla.flight.partitioned_results = false",
    )
    .await;
    let info = client.execute(sql.into(), None).await.unwrap();
    assert_eq!(info.endpoint.len(), 1);
    assert!(info.ordered);
    let mut whole = common::rows(&common::fetch(&mut client, info).await);
    parts.sort();
    whole.sort();
    assert!(whole.len() > 40_000, "{}", whole.len());
    assert_eq!(parts, whole);
}
