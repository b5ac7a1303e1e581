//! Malformed and hostile requests get error statuses and the server keeps serving; cancel and
//! ticket expiry.

use crate::common;
use arrow_flight::sql::{
    Any, CommandPreparedStatementQuery, CommandStatementQuery, ProstMessageExt,
    TicketStatementQuery,
};
use arrow_flight::{Action, CancelFlightInfoRequest, FlightData, FlightDescriptor, Ticket};
use flotilla_flightsql::RegistryLimits;
use futures::StreamExt;
use prost::Message;
use std::time::Duration;
use tonic::Code;

/// A deterministic generator of junk (no dependency on a random crate).
struct Junk(u64);

impl Junk {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn bytes(&mut self) -> Vec<u8> {
        let len = (self.next() % 200) as usize;
        (0..len).map(|_| self.next() as u8).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_malformed_requests_get_errors_and_the_server_keeps_serving() {
    let server = common::start().await;
    let mut raw = common::raw(server.addr).await;
    let mut junk = Junk(0x5EED_F107_111A);
    let mut codes = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..1000 {
        let outcome: Result<(), tonic::Status> = match i % 8 {
            // Random bytes as a ticket.
            0 => raw.do_get(Ticket::new(junk.bytes())).await.map(|_| ()),
            // Random bytes as a command.
            1 => raw
                .get_flight_info(FlightDescriptor::new_cmd(junk.bytes()))
                .await
                .map(|_| ()),
            // A well-formed Any of a type nobody knows.
            2 => {
                let any = Any {
                    type_url: "type.googleapis.com/nobody.Knows".into(),
                    value: junk.bytes().into(),
                };
                raw.get_flight_info(FlightDescriptor::new_cmd(any.encode_to_vec()))
                    .await
                    .map(|_| ())
            }
            // A statement ticket naming no query.
            3 => {
                let ticket = TicketStatementQuery {
                    statement_handle: junk.bytes().into(),
                };
                raw.do_get(Ticket::new(ticket.as_any().encode_to_vec()))
                    .await
                    .map(|_| ())
            }
            // A prepared statement handle that does not exist.
            4 => {
                let command = CommandPreparedStatementQuery {
                    prepared_statement_handle: junk.bytes().into(),
                };
                raw.get_flight_info(FlightDescriptor::new_cmd(command.as_any().encode_to_vec()))
                    .await
                    .map(|_| ())
            }
            // An unknown action with a random body.
            5 => raw
                .do_action(Action::new("NoSuchAction", junk.bytes()))
                .await
                .map(|_| ()),
            // A known action with a random body.
            6 => raw
                .do_action(Action::new("CancelFlightInfo", junk.bytes()))
                .await
                .map(|_| ()),
            // DoPut with a random descriptor and random data.
            _ => {
                let data = FlightData {
                    flight_descriptor: Some(FlightDescriptor::new_cmd(junk.bytes())),
                    data_header: junk.bytes().into(),
                    data_body: junk.bytes().into(),
                    ..Default::default()
                };
                match raw.do_put(futures::stream::iter([data])).await {
                    Ok(response) => {
                        let mut results = response.into_inner();
                        match results.next().await {
                            Some(Err(status)) => Err(status),
                            _ => Ok(()),
                        }
                    }
                    Err(status) => Err(status),
                }
            }
        };
        let status = outcome.expect_err(&format!("request {i} should fail"));
        assert_ne!(status.code(), Code::Ok);
        assert!(
            !status.message().contains("panicked") && !status.message().contains(" { "),
            "request {i}: a panic or a Debug dump: {status:?}"
        );
        *codes.entry(format!("{:?}", status.code())).or_default() += 1;
    }
    // Unknown handles are "not found", junk is "invalid argument": no internal errors.
    assert!(!codes.contains_key("Internal"), "{codes:?}");

    let mut client = common::client(server.addr).await;
    let rows = common::rows(&common::query(&mut client, "SELECT count(*) FROM nation").await);
    assert_eq!(rows, ["25"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_and_mismatched_parameters_are_refused() {
    let server = common::start().await;
    let mut raw = common::raw(server.addr).await;
    let huge = CommandStatementQuery {
        query: format!("SELECT '{}'", "x".repeat(70 * 1024 * 1024)),
        transaction_id: None,
    };
    let status = raw
        .get_flight_info(FlightDescriptor::new_cmd(huge.as_any().encode_to_vec()))
        .await
        .expect_err("70 MiB is over the limit");
    assert_ne!(status.code(), Code::Ok);

    let mut client = common::client(server.addr).await;
    let mut prepared = client
        .prepare(
            "SELECT n_name FROM nation WHERE n_nationkey = $1".into(),
            None,
        )
        .await
        .unwrap();
    let schema = datafusion::arrow::datatypes::Schema::new(vec![
        datafusion::arrow::datatypes::Field::new(
            "a",
            datafusion::arrow::datatypes::DataType::Int64,
            true,
        ),
        datafusion::arrow::datatypes::Field::new(
            "b",
            datafusion::arrow::datatypes::DataType::Int64,
            true,
        ),
    ]);
    let two = datafusion::arrow::record_batch::RecordBatch::try_new(
        std::sync::Arc::new(schema),
        vec![
            std::sync::Arc::new(datafusion::arrow::array::Int64Array::from(vec![1])),
            std::sync::Arc::new(datafusion::arrow::array::Int64Array::from(vec![2])),
        ],
    )
    .unwrap();
    prepared.set_parameters(two).unwrap();
    let error = prepared.execute().await.unwrap_err();
    assert_eq!(common::code(&error), Code::InvalidArgument, "{error}");
    assert!(common::message(&error).contains("2 column"), "{error}");
    let rows = common::rows(&common::query(&mut client, "SELECT 1").await);
    assert_eq!(rows, ["1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_expire() {
    let limits = RegistryLimits {
        ticket_ttl: Duration::from_millis(100),
        ..RegistryLimits::default()
    };
    let server = common::start_with(Vec::new(), limits).await;
    let mut client = common::client(server.addr).await;
    let info = client.execute("SELECT 1".into(), None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let mut raw = common::raw(server.addr).await;
    let status = raw.do_get(ticket).await.expect_err("expired");
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains("expired"), "{}", status.message());
}

fn cancel_action(info: &arrow_flight::FlightInfo) -> Action {
    let request = CancelFlightInfoRequest {
        info: Some(info.clone()),
    };
    Action::new("CancelFlightInfo", request.encode_to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_before_and_during_a_query() {
    let server = common::start().await;
    let mut client = common::client(server.addr).await;
    let mut raw = common::raw(server.addr).await;

    // Before DoGet: the ticket is gone.
    let info = client.execute("SELECT 1".into(), None).await.unwrap();
    let results: Vec<_> = raw
        .do_action(cancel_action(&info))
        .await
        .unwrap()
        .into_inner()
        .collect()
        .await;
    let result =
        arrow_flight::CancelFlightInfoResult::decode(results[0].as_ref().unwrap().body.clone())
            .unwrap();
    assert_eq!(result.status, arrow_flight::CancelStatus::Cancelled as i32);
    let status = raw
        .do_get(info.endpoint[0].ticket.clone().unwrap())
        .await
        .expect_err("cancelled");
    assert_eq!(status.code(), Code::NotFound);

    // While streaming: a cross join of 3.6 billion rows, cancelled after its first batch.
    let info = client
        .execute(
            "SELECT a.l_orderkey, b.l_partkey FROM lineitem a CROSS JOIN lineitem b".into(),
            None,
        )
        .await
        .unwrap();
    let mut stream = raw
        .do_get(info.endpoint[0].ticket.clone().unwrap())
        .await
        .unwrap()
        .into_inner();
    stream.next().await.unwrap().unwrap();
    raw.do_action(cancel_action(&info)).await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match stream.next().await {
                Some(Ok(_)) => continue,
                Some(Err(status)) => return Some(status),
                None => return None,
            }
        }
    })
    .await
    .expect("the stream ends soon after the cancel");
    let status = ended.expect("a cancelled stream ends with an error, not as if complete");
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");
}
