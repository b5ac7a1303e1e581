//! `flotilla serve`: the node's Arrow Flight SQL server over its configured sources.
//!
//! Sessions share the sources (one connection pool per database for the whole node); each
//! client session has its own options and temporary tables (see `flotilla_flightsql::session`).
//! The node's distributed worker answers on the same port: task tickets and the end-of-query
//! action of queries coordinated by any node of the `[cluster]` reach it through the Flight SQL
//! service's fallback.

use crate::config::{ClusterConfig, Config, DEFAULT_LISTEN, Peers, UserPassword};
use crate::context;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{Action, FlightData, FlightEndpoint, Ticket};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use flotilla_common::{Error, Result};
use flotilla_distributed::Worker;
use flotilla_distributed::protocol::{END_QUERY_ACTION, STATUS_ACTION};
use flotilla_flightsql::{FlightFallback, FlightSqlServer, SessionLimits, SharedCatalogs, User};
use flotilla_pgwire::PgServer;
use futures::FutureExt;
use futures::stream::BoxStream;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

/// Serves Flight SQL until ctrl-c or SIGTERM. `listen` overrides the configured address;
/// `ready` is told the URI clients connect to (port 0 picks a free port) and notes on access.
///
/// # Errors
/// When a source cannot be opened, a user's password variable is not set, or the address
/// cannot be bound.
pub async fn serve(
    config: &Config,
    listen: Option<&str>,
    ready: impl FnOnce(&str, &[String]),
) -> Result<()> {
    let address = listen
        .or(config.server.listen.as_deref())
        .unwrap_or(DEFAULT_LISTEN);
    let users = users(config)?;
    let ctx = context::build_context(config).await?;
    let listener = TcpListener::bind(address)
        .await
        .map_err(|e| Error::unavailable(format!("cannot listen on {address}: {e}")))?;
    let bound = listener.local_addr()?;
    let http = bind_http(config).await?;
    let pg = bind_pg(config).await?;
    let mut notes = Vec::new();
    if let Some(http) = &http {
        notes.push(format!(
            "console on http://{}/, metrics and health at /metrics, /healthz, /readyz",
            http.local_addr()?
        ));
    }
    if let Some(endpoint) = &config.server.otlp_endpoint {
        notes.push(format!("spans to {endpoint} (OpenTelemetry)"));
    }
    if let Some(pg) = &pg {
        let address = pg.local_addr()?;
        notes.push(format!(
            "PostgreSQL protocol on {address} (psql -h {} -p {})",
            address.ip(),
            address.port()
        ));
    }
    if users.is_empty() {
        notes.push("open: no [[server.users]] configured".to_string());
        if !bound.ip().is_loopback() {
            notes.push(format!(
                "WARNING: listening on {} without users lets anyone who can reach it query every \
                 source",
                bound.ip()
            ));
        }
    } else {
        notes.push(format!("{} user(s)", users.len()));
    }
    let scheme = if config.server.tls.is_some() {
        "grpc+tls"
    } else {
        "grpc"
    };
    let shutdown = shutdown_signal();
    ready(&format!("{scheme}://{bound}"), &notes);
    run(config, &ctx, (listener, http, pg), users, shutdown).await
}

/// Serves `config`'s node on `listener` until `shutdown` completes: `flotilla serve` without
/// its address, signals and messages (benchmarks run several nodes in one process with it).
///
/// # Errors
/// As [`serve`].
pub async fn serve_on(
    config: &Config,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let users = users(config)?;
    let ctx = context::build_context(config).await?;
    let http = bind_http(config).await?;
    let pg = bind_pg(config).await?;
    run(config, &ctx, (listener, http, pg), users, shutdown).await
}

/// The listener of `[server] http_listen`, if configured.
async fn bind_http(config: &Config) -> Result<Option<TcpListener>> {
    match &config.server.http_listen {
        Some(address) => Ok(Some(crate::http::bind(address).await?)),
        None => Ok(None),
    }
}

/// The listener of `[server] pg_listen`, if configured.
async fn bind_pg(config: &Config) -> Result<Option<TcpListener>> {
    let Some(address) = &config.server.pg_listen else {
        return Ok(None);
    };
    let listener = TcpListener::bind(address).await.map_err(|e| {
        Error::unavailable(format!("server.pg_listen: cannot listen on {address}: {e}"))
    })?;
    Ok(Some(listener))
}

/// The users of `[[server.users]]`, their passwords read.
fn users(config: &Config) -> Result<Vec<User>> {
    config
        .server
        .users
        .iter()
        .map(|u| {
            let password = match &u.password {
                UserPassword::Hash(hash) => hash.clone(),
                UserPassword::Env(variable) => std::env::var(variable)
                    .map_err(|_| {
                        Error::invalid(format!(
                            "server.users: the password of user '{}' is read from the \
                             environment variable {variable}, which is not set",
                            u.name
                        ))
                    })?
                    .into(),
            };
            Ok(User {
                name: u.name.clone(),
                password,
            })
        })
        .collect()
}

/// Serves the node: Flight SQL on the first listener, the HTTP port on the second, the
/// PostgreSQL protocol on the third.
async fn run(
    config: &Config,
    ctx: &SessionContext,
    (listener, http, pg): (TcpListener, Option<TcpListener>, Option<TcpListener>),
    users: Vec<User>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let bound = listener.local_addr()?;
    let mut limits = SessionLimits::default();
    if let Some(seconds) = config.server.session_idle_timeout {
        limits.idle_timeout = Duration::from_secs(seconds);
    }
    let mut worker = context::worker(ctx, config)?;
    // Listed among the peers by its own address, the node's tasks read each other's partitions
    // in memory.
    if let Some(ClusterConfig {
        peers: Peers::Static(peers),
        ..
    }) = &config.cluster
        && let Some(me) = peers
            .iter()
            .find(|peer| [format!("grpc://{bound}"), format!("grpc+tls://{bound}")].contains(peer))
    {
        worker = worker.with_address(me.clone());
        // Its coordinator, too, reads the partitions of the node's own tasks in memory.
        worker.attach(&mut ctx.state_ref().write());
    }
    let sessions = Arc::new(SharedCatalogs::new(ctx));
    let read = |path: &std::path::PathBuf| {
        std::fs::read(path).map_err(|e| Error::from(e).with_source(path.display().to_string()))
    };
    let mut server = FlightSqlServer::new(Arc::clone(&sessions) as _)
        .with_users(users.clone())
        .with_session_limits(limits)
        .with_query_admission(config.server.admission)
        .with_fallback(Arc::new(WorkerFallback(worker)));
    let pg = match pg {
        Some(listener) => {
            let mut pg = PgServer::new(sessions, users.clone()).with_admission(server.admission());
            if let Some((cert, key)) = &config.server.tls {
                pg = pg.with_tls(&read(cert)?, &read(key)?)?;
            }
            Some((listener, pg))
        }
        None => None,
    };
    if let Some(secret) = context::cluster_secret(config.cluster.as_ref())? {
        server = server.with_cluster_secret(secret);
    }
    if let Some((cert, key)) = &config.server.tls {
        server = server.with_tls(read(cert)?, read(key)?);
    }
    // Every port stops on the same signal.
    let shutdown = shutdown.shared();
    let http = async {
        match http {
            Some(http) => {
                crate::http::serve(
                    http,
                    ctx.clone(),
                    config.cluster.is_some(),
                    users.clone(),
                    shutdown.clone(),
                )
                .await
            }
            None => Ok(()),
        }
    };
    let pg = async {
        match pg {
            Some((listener, pg)) => pg.serve(listener, shutdown.clone()).await,
            None => Ok(()),
        }
    };
    let (flight, http, pg) = tokio::join!(server.serve(listener, shutdown.clone()), http, pg);
    flight.and(http).and(pg)
}

/// The node's worker behind its Flight SQL service: task tickets and the end-of-query action
/// of distributed queries, from any node of the cluster.
#[derive(Debug)]
struct WorkerFallback(Worker);

#[tonic::async_trait]
impl FlightFallback for WorkerFallback {
    async fn do_get(
        &self,
        ticket: Ticket,
    ) -> std::result::Result<BoxStream<'static, std::result::Result<FlightData, Status>>, Status>
    {
        Ok(FlightService::do_get(&self.0, Request::new(ticket))
            .await?
            .into_inner())
    }

    async fn do_action(
        &self,
        action: Action,
    ) -> Option<
        std::result::Result<
            BoxStream<'static, std::result::Result<arrow_flight::Result, Status>>,
            Status,
        >,
    > {
        if action.r#type != END_QUERY_ACTION && action.r#type != STATUS_ACTION {
            return None;
        }
        Some(
            FlightService::do_action(&self.0, Request::new(action))
                .await
                .map(Response::into_inner),
        )
    }

    fn carries_authorization(&self, ticket: &Ticket) -> bool {
        flotilla_distributed::is_result_ticket(&ticket.ticket)
    }

    fn result_endpoints(
        &self,
        plan: &Arc<dyn ExecutionPlan>,
        context: &TaskContext,
    ) -> std::result::Result<Option<Vec<FlightEndpoint>>, Status> {
        let Some(endpoints) = flotilla_distributed::result_endpoints(plan, context)
            .map_err(|e| Status::from(Error::from(e)))?
        else {
            return Ok(None);
        };
        let endpoints = endpoints.into_iter().map(|endpoint| {
            let here = FlightEndpoint::new().with_ticket(Ticket::new(endpoint.ticket));
            // No location: read on this node, over the client's own connection.
            if self.0.address() == Some(endpoint.location.as_str()) {
                here
            } else {
                here.with_location(endpoint.location)
            }
        });
        Ok(Some(endpoints.collect()))
    }

    async fn cancel(&self, ticket: &Ticket) -> std::result::Result<bool, Status> {
        Ok(self.0.cancel_result(&ticket.ticket)?)
    }
}

/// Completes on ctrl-c or SIGTERM.
/// Completes on SIGTERM or Ctrl-C. The handlers are installed when this is called (not when
/// first polled), so a signal arriving right after the server says it is ready still stops it
/// cleanly instead of killing it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let (terminate, interrupt) = signals;
            let wait = |stream: Option<tokio::signal::unix::Signal>| async move {
                match stream {
                    Some(mut stream) => {
                        stream.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(terminate) => {}
                () = wait(interrupt) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!(
            target: "flotilla::serve",
            "shutting down; running queries have 30 s to finish"
        );
    }
}
