//! The node's HTTP port (`[server] http_listen`, off unless configured): what operators'
//! tools ask of a running node.
//!
//! ```text
//!  GET /healthz  ──▶ 200 "ok" while the process serves
//!  GET /readyz   ──▶ 200 once its sources are open and, with a [cluster], a node is up;
//!                    503 with the reason otherwise
//!  GET /metrics  ──▶ flotilla_common::metrics in the OpenMetrics text format (Prometheus)
//!  GET /, /api/… ──▶ the web console (crate::console)
//! ```
//!
//! Plain HTTP. With `[[server.users]]`, the console and its API ask for one of the node's users
//! (HTTP Basic: the browser asks for the name and password); the probes and `/metrics` stay
//! open to the tools that read them. Bind it to loopback or a network only operators reach.

use crate::console;
use axum::Router;
use axum::extract::{FromRef, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use datafusion::arrow::array::{Array, StringArray};
use datafusion::execution::memory_pool::MemoryLimit;
use datafusion::prelude::SessionContext;
use flotilla_common::metrics::label;
use flotilla_common::{Error, Result};
use flotilla_flightsql::User;
use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// What the handlers read: the node's session context (its sources and cluster table).
#[derive(Clone)]
struct Node {
    ctx: SessionContext,
    users: Arc<Users>,
    /// The node has a `[cluster]` (and so a `flotilla.cluster.nodes` table).
    cluster: bool,
}

/// The console's handlers read the session context alone.
impl FromRef<Node> for SessionContext {
    fn from_ref(node: &Node) -> Self {
        node.ctx.clone()
    }
}

/// Binds `address`.
///
/// # Errors
/// When the address cannot be bound.
pub async fn bind(address: &str) -> Result<TcpListener> {
    TcpListener::bind(address).await.map_err(|e| {
        Error::unavailable(format!(
            "server.http_listen: cannot listen on {address}: {e}"
        ))
    })
}

/// Serves the HTTP port on `listener` until `shutdown` completes.
///
/// # Errors
/// When the listener fails.
pub async fn serve(
    listener: TcpListener,
    ctx: SessionContext,
    cluster: bool,
    users: Vec<User>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    flotilla_common::activity::describe_ended_with(console::describe);
    let node = Node {
        ctx,
        cluster,
        users: Arc::new(Users::new(users)),
    };
    let console = Router::new()
        .route("/", get(console::page))
        .route("/api/queries", get(console::queries))
        .route("/api/queries/{id}", get(console::query))
        .route("/api/queries/{id}/cancel", post(console::cancel))
        .route("/api/nodes", get(console::nodes))
        .route("/api/sources", get(console::sources))
        .route_layer(middleware::from_fn_with_state(node.clone(), signed_in));
    let router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .merge(console)
        .with_state(node);
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::unavailable(format!("the HTTP port stopped: {e}")))
}

/// The node's users, and the `Authorization` headers already checked (a hashed password takes
/// a key derivation to check, and the console asks several times a second).
struct Users {
    users: Vec<User>,
    accepted: Mutex<HashSet<String>>,
}

/// Headers remembered at most; then the set starts again.
const ACCEPTED: usize = 1024;

impl Users {
    fn new(users: Vec<User>) -> Self {
        Self {
            users,
            accepted: Mutex::default(),
        }
    }

    /// Whether `header` (`Basic base64(name:password)`) names a user with their password; true
    /// when the node has no users.
    fn admit(&self, header: Option<&str>) -> bool {
        if self.users.is_empty() {
            return true;
        }
        let Some(header) = header else {
            return false;
        };
        let mut accepted = self.accepted.lock().unwrap_or_else(|e| e.into_inner());
        if accepted.contains(header) {
            return true;
        }
        let Some((name, password)) = header
            .strip_prefix("Basic ")
            .and_then(|encoded| BASE64_STANDARD.decode(encoded.trim()).ok())
            .and_then(|decoded| String::from_utf8(decoded).ok())
            .and_then(|text| {
                text.split_once(':')
                    .map(|(n, p)| (n.to_string(), p.to_string()))
            })
        else {
            return false;
        };
        let known = self
            .users
            .iter()
            .any(|user| user.name == name && user.password.matches(&password));
        if known {
            if accepted.len() >= ACCEPTED {
                accepted.clear();
            }
            accepted.insert(header.to_string());
        }
        known
    }
}

/// Lets a request through to the console when it carries one of the node's users.
async fn signed_in(State(node): State<Node>, request: Request, next: Next) -> Response {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    if node.users.admit(header) {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            "Basic realm=\"flotilla\", charset=\"UTF-8\"",
        )],
        "sign in with a user of [[server.users]]\n",
    )
        .into_response()
}

async fn metrics(State(node): State<Node>) -> Response {
    // What the node knows now rather than counts as it goes: read when scraped.
    let m = flotilla_common::metrics::metrics();
    let pool = &node.ctx.runtime_env().memory_pool;
    m.memory_reserved_bytes.set(gauge(pool.reserved()));
    m.memory_limit_bytes.set(match pool.memory_limit() {
        MemoryLimit::Finite(bytes) => gauge(bytes),
        _ => 0,
    });
    if node.cluster
        && let Ok((up, known)) = cluster_states(&node).await
    {
        m.cluster_nodes
            .get_or_create(&label("state", "up"))
            .set(gauge(up));
        m.cluster_nodes
            .get_or_create(&label("state", "down"))
            .set(gauge(known - up));
    }
    let text = m.encode();
    (
        [(header::CONTENT_TYPE, flotilla_common::metrics::CONTENT_TYPE)],
        text,
    )
        .into_response()
}

async fn ready(State(node): State<Node>) -> Response {
    match readiness(&node).await {
        Ok(what) => (StatusCode::OK, format!("ready: {what}\n")).into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

/// Why the node is ready, or why not. Its sources were opened before the ports were bound;
/// with a cluster, at least one node must be up (this one counts once discovery finds it).
async fn readiness(node: &Node) -> std::result::Result<String, String> {
    let catalogs = node.ctx.catalog_names().len();
    if !node.cluster {
        return Ok(format!("{catalogs} catalog(s)"));
    }
    let (up, known) = cluster_states(node).await?;
    if up == 0 {
        return Err(format!("no node of the cluster is up ({known} known)"));
    }
    Ok(format!("{catalogs} catalog(s), {up} of {known} node(s) up"))
}

fn gauge(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// How many nodes of `flotilla.cluster.nodes` are up, and how many it lists.
async fn cluster_states(node: &Node) -> std::result::Result<(usize, usize), String> {
    let states = node
        .ctx
        .sql("SELECT state FROM flotilla.cluster.nodes")
        .await
        .map_err(|e| format!("the cluster's nodes cannot be listed: {e}"))?
        .collect()
        .await
        .map_err(|e| format!("the cluster's nodes cannot be listed: {e}"))?;
    let mut up = 0;
    let mut known = 0;
    for batch in &states {
        if let Some(state) = batch.column(0).as_any().downcast_ref::<StringArray>() {
            known += state.len();
            up += state.iter().filter(|s| *s == Some("up")).count();
        }
    }
    Ok((up, known))
}
