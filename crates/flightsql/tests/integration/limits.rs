//! The limits that protect a node: a statement timeout and a memory limit per query (session
//! options), and a maximum of running queries with a bounded queue behind it.

use crate::common;
use flotilla_flightsql::QueryAdmission;
use futures::TryStreamExt;
use std::time::Duration;

/// Long enough to outlast any limit here (ten billion rows), in small steps: a query is stopped
/// between the batches of its operators, as DataFusion cancels.
const ENDLESS: &str = "SELECT sum(value) FROM generate_series(1, 10000000000)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_past_its_statement_timeout_is_stopped_and_the_session_goes_on() {
    let server = common::start().await;
    let mut client = common::client(server.addr).await;
    common::query(&mut client, "SET flotilla.statement_timeout = '300ms'").await;
    let info = client.execute(ENDLESS.into(), None).await.unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let read = async { client.do_get(ticket).await?.try_collect::<Vec<_>>().await };
    let error = tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("stopped well before a minute")
        .unwrap_err();
    assert_eq!(
        common::code(&error),
        tonic::Code::DeadlineExceeded,
        "{error}"
    );
    assert!(
        common::message(&error).contains("flotilla.statement_timeout (300ms)"),
        "{error}"
    );
    // The session keeps its other work and its setting; 0 turns the limit off.
    let rows = common::rows(&common::query(&mut client, "SELECT count(*) FROM region").await);
    assert_eq!(rows, ["5"]);
    let shown = common::rows(&common::query(&mut client, "SHOW flotilla.statement_timeout").await);
    assert_eq!(shown, ["flotilla.statement_timeout|300ms"]);
    common::query(&mut client, "SET flotilla.statement_timeout = 0").await;
    let error = client
        .execute("SET flotilla.statement_timeout = 'soon'".into(), None)
        .await
        .unwrap_err();
    assert!(
        common::message(&error).contains("not a duration"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_over_its_memory_limit_fails_naming_it_and_runs_without_it() {
    let server = common::start().await;
    let mut client = common::client(server.addr).await;
    let join = "SELECT count(*) FROM lineitem a JOIN lineitem b ON a.l_comment = b.l_comment";
    common::query(&mut client, "SET flotilla.query_memory_limit = '1M'").await;
    let info = client.execute(join.into(), None).await.unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let error = async { client.do_get(ticket).await?.try_collect::<Vec<_>>().await }
        .await
        .unwrap_err();
    assert_eq!(
        common::code(&error),
        tonic::Code::ResourceExhausted,
        "{error}"
    );
    assert!(
        common::message(&error).contains("flotilla.query_memory_limit (1048576 bytes)"),
        "{error}"
    );
    common::query(&mut client, "SET flotilla.query_memory_limit = 0").await;
    let rows = common::rows(&common::query(&mut client, join).await);
    assert_eq!(rows.len(), 1);
    assert_ne!(rows, ["0"]);
}

/// One query runs, one waits, the next is refused at once; when the first ends, the waiting
/// one runs to its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_beyond_the_running_and_queued_limits_are_refused_and_the_queue_moves_on() {
    let server = common::start_admitting(QueryAdmission {
        max_running: 1,
        max_queued: 1,
    })
    .await;
    let mut first = common::client(server.addr).await;
    let info = first
        .execute("SELECT * FROM lineitem".into(), None)
        .await
        .unwrap();
    // DoGet answers once the query has its turn: it holds it while its rows go unread.
    let running = first
        .do_get(info.endpoint[0].ticket.clone().unwrap())
        .await
        .unwrap();
    let mut waiters = Vec::new();
    for _ in 0..2 {
        let mut client = common::client(server.addr).await;
        let info = client
            .execute("SELECT count(*) FROM orders".into(), None)
            .await
            .unwrap();
        let ticket = info.endpoint[0].ticket.clone().unwrap();
        waiters.push(tokio::spawn(async move {
            let stream = client.do_get(ticket).await?;
            stream.try_collect::<Vec<_>>().await
        }));
    }
    // Whichever came second is refused; the other waits.
    let (refused, _, waiting) = futures::future::select_all(waiters).await;
    let error = refused.unwrap().unwrap_err();
    assert_eq!(
        common::code(&error),
        tonic::Code::ResourceExhausted,
        "{error}"
    );
    assert!(
        common::message(&error).contains("maximum of 1 queries and 1 more wait"),
        "{error}"
    );
    assert!(!waiting[0].is_finished());
    drop(running);
    let waiting = waiting.into_iter().next().unwrap();
    let batches = tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("the waiting query runs once the first ends")
        .unwrap()
        .unwrap();
    assert_eq!(common::rows(&batches), ["15000"]);
    // With the turn free again, a query runs at once.
    let rows = common::rows(&common::query(&mut first, "SELECT count(*) FROM region").await);
    assert_eq!(rows, ["5"]);
}
