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
//! Plain HTTP without users: bind it to loopback or a network only operators reach (the
//! console lists every user's SQL and can cancel any query).

use crate::console;
use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use datafusion::arrow::array::{Array, StringArray};
use datafusion::execution::memory_pool::MemoryLimit;
use datafusion::prelude::SessionContext;
use flotilla_common::metrics::label;
use flotilla_common::{Error, Result};
use std::future::Future;
use tokio::net::TcpListener;

/// What the handlers read: the node's session context (its sources and cluster table).
#[derive(Clone)]
struct Node {
    ctx: SessionContext,
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
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/", get(console::page))
        .route("/api/queries", get(console::queries))
        .route("/api/queries/{id}", get(console::query))
        .route("/api/queries/{id}/cancel", post(console::cancel))
        .route("/api/nodes", get(console::nodes))
        .route("/api/sources", get(console::sources))
        .with_state(Node { ctx, cluster });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::unavailable(format!("the HTTP port stopped: {e}")))
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
