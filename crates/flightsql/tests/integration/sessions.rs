//! Sessions: options and temporary tables belong to one client; users and tokens.

use crate::common;
use arrow_flight::sql::client::FlightSqlServiceClient;
use flotilla_flightsql::{RegistryLimits, User};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_client_sees_only_its_own_options_and_tables() {
    let server = common::start().await;
    let mut ana = common::client(server.addr).await;
    let mut bob = common::client(server.addr).await;
    common::query(&mut ana, "SET datafusion.execution.batch_size = 1111").await;
    common::query(&mut bob, "SET datafusion.execution.batch_size = 2222").await;
    let show = "SHOW datafusion.execution.batch_size";
    assert_eq!(
        common::rows(&common::query(&mut ana, show).await),
        ["datafusion.execution.batch_size|1111"]
    );
    assert_eq!(
        common::rows(&common::query(&mut bob, show).await),
        ["datafusion.execution.batch_size|2222"]
    );

    ana.execute_update("CREATE TABLE mine AS SELECT 1 AS a".into(), None)
        .await
        .expect_err("the default schema is the shared tpch one: no CREATE there");
    ana.execute_update(
        "CREATE TABLE datafusion.public.mine AS SELECT 1 AS a".into(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        common::rows(&common::query(&mut ana, "SELECT a FROM datafusion.public.mine").await),
        ["1"]
    );
    let error = bob
        .execute("SELECT a FROM datafusion.public.mine".into(), None)
        .await
        .unwrap_err();
    assert_eq!(common::code(&error), Code::NotFound, "{error}");
}

fn users() -> Vec<User> {
    vec![User {
        name: "ana".into(),
        password: "s3cret".into(),
    }]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_users_only_their_credentials_get_in() {
    let server = common::start_with(users(), RegistryLimits::default()).await;

    let mut nobody = FlightSqlServiceClient::new(common::channel(server.addr).await);
    let error = nobody.execute("SELECT 1".into(), None).await.unwrap_err();
    assert_eq!(common::code(&error), Code::Unauthenticated, "{error}");

    let mut wrong = FlightSqlServiceClient::new(common::channel(server.addr).await);
    for (user, password) in [("ana", "guess"), ("eve", "s3cret"), ("ana", "")] {
        let error = wrong
            .handshake(user, password)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("wrong user name or password"), "{error}");
    }

    let mut forged = FlightSqlServiceClient::new(common::channel(server.addr).await);
    forged.set_token("0123456789abcdef".into());
    let error = forged.execute("SELECT 1".into(), None).await.unwrap_err();
    assert_eq!(common::code(&error), Code::Unauthenticated, "{error}");

    let mut ana = FlightSqlServiceClient::new(common::channel(server.addr).await);
    ana.handshake("ana", "s3cret").await.unwrap();
    assert!(ana.token().is_some());
    let rows = common::rows(&common::query(&mut ana, "SELECT count(*) FROM region").await);
    assert_eq!(rows, ["5"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_server_gives_clients_without_tokens_a_session_per_call() {
    let server = common::start().await;
    // No handshake: the client never sends a token, so each call is its own session, and a
    // SET does not outlive its call.
    let mut client = FlightSqlServiceClient::new(common::channel(server.addr).await);
    common::query(&mut client, "SET datafusion.execution.batch_size = 1111").await;
    let rows =
        common::rows(&common::query(&mut client, "SHOW datafusion.execution.batch_size").await);
    assert_eq!(rows, ["datafusion.execution.batch_size|8192"]);
}

/// Runs a Flight action and returns its one result body.
async fn action(
    addr: std::net::SocketAddr,
    token: &str,
    kind: &str,
    body: Vec<u8>,
) -> prost::bytes::Bytes {
    let mut raw = common::raw(addr).await;
    let mut request = tonic::Request::new(arrow_flight::Action::new(kind, body));
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let mut results = raw.do_action(request).await.unwrap().into_inner();
    futures::StreamExt::next(&mut results)
        .await
        .unwrap()
        .unwrap()
        .body
}

/// `SessionOptionValue` with a string (field 1) or an sfixed64 (field 3), encoded by hand so
/// the test does not share the server's message definitions.
fn option_value(value: Result<&str, i64>) -> Vec<u8> {
    match value {
        Ok(text) => {
            let mut out = vec![0x0a, text.len() as u8];
            out.extend_from_slice(text.as_bytes());
            out
        }
        Err(number) => {
            let mut out = vec![0x19];
            out.extend_from_slice(&number.to_le_bytes());
            out
        }
    }
}

/// A `SetSessionOptionsRequest` with one map entry per option.
fn set_request(options: &[(&str, Result<&str, i64>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in options {
        let value = option_value(*value);
        let mut entry = vec![0x0a, name.len() as u8];
        entry.extend_from_slice(name.as_bytes());
        entry.push(0x12);
        entry.push(value.len() as u8);
        entry.extend_from_slice(&value);
        out.push(0x0a);
        out.push(entry.len() as u8);
        out.extend_from_slice(&entry);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_options_set_get_and_close() {
    let server = common::start().await;
    let mut client = common::client(server.addr).await;
    let token = client.token().unwrap().clone();
    let result = action(
        server.addr,
        &token,
        "SetSessionOptions",
        set_request(&[
            ("datafusion.execution.batch_size", Err(1234)),
            ("no.such.option", Ok("x")),
            ("datafusion.execution.target_partitions", Ok("many")),
        ]),
    )
    .await;
    // The errors map names the two bad options: 1 = invalid name, 2 = invalid value.
    let text = String::from_utf8_lossy(&result);
    assert!(text.contains("no.such.option"), "{text:?}");
    assert!(
        text.contains("datafusion.execution.target_partitions"),
        "{text:?}"
    );
    assert!(!text.contains("batch_size"), "{text:?}");
    let show = "SHOW datafusion.execution.batch_size";
    assert_eq!(
        common::rows(&common::query(&mut client, show).await),
        ["datafusion.execution.batch_size|1234"]
    );
    let options = action(server.addr, &token, "GetSessionOptions", vec![]).await;
    let text = String::from_utf8_lossy(&options);
    assert!(text.contains("datafusion.execution.batch_size"), "{text:?}");
    assert!(text.contains("1234"), "{text:?}");

    let closed = action(server.addr, &token, "CloseSession", vec![]).await;
    assert_eq!(
        closed.as_ref(),
        [0x08, 0x01],
        "CloseSessionResult{{status: CLOSED}}"
    );
    // The token no longer names a session: an open server starts a fresh one.
    assert_eq!(
        common::rows(&common::query(&mut client, show).await),
        ["datafusion.execution.batch_size|8192"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_clients_that_trust_the_ca_get_in_and_plain_text_does_not() {
    use tonic::transport::{Certificate, Channel, ClientTlsConfig};
    let pki = flotilla_testkit::tls::test_pki();
    let server = common::start_tls(
        std::fs::read(&pki.server_cert).unwrap(),
        std::fs::read(&pki.server_key).unwrap(),
    )
    .await;
    let ca = Certificate::from_pem(std::fs::read(&pki.ca_cert).unwrap());
    let channel = Channel::from_shared(format!("https://localhost:{}", server.addr.port()))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(ca)
                .domain_name("localhost"),
        )
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = FlightSqlServiceClient::new(channel);
    client.handshake("", "").await.unwrap();
    let rows = common::rows(&common::query(&mut client, "SELECT count(*) FROM region").await);
    assert_eq!(rows, ["5"]);

    // A client speaking plain HTTP/2 to the TLS port gets nowhere.
    let plain = Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect()
        .await;
    if let Ok(plain) = plain {
        let mut plain = FlightSqlServiceClient::new(plain);
        assert!(plain.execute("SELECT 1".into(), None).await.is_err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_node_makes_room_by_dropping_the_least_recently_used_session() {
    let limits = flotilla_flightsql::SessionLimits {
        max_sessions: 2,
        ..Default::default()
    };
    let server = common::start_limited(limits).await;
    let show = "SHOW datafusion.execution.batch_size";
    let mut first = common::client(server.addr).await;
    common::query(&mut first, "SET datafusion.execution.batch_size = 1111").await;
    let mut second = common::client(server.addr).await;
    common::query(&mut second, "SET datafusion.execution.batch_size = 2222").await;
    // A burst of clients that never keep a token: each call is a new session.
    for _ in 0..10 {
        let mut anonymous = FlightSqlServiceClient::new(common::channel(server.addr).await);
        common::query(&mut anonymous, "SELECT 1").await;
    }
    // Everyone is still served; the oldest sessions were replaced, so their options are gone.
    assert_eq!(
        common::rows(&common::query(&mut first, show).await),
        ["datafusion.execution.batch_size|8192"]
    );
    let rows = common::rows(&common::query(&mut first, "SELECT 2").await);
    assert_eq!(rows, ["2"]);
}
