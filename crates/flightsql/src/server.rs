//! Running the service: a tonic server with the session layer, on a TCP listener, until a
//! shutdown signal.

use crate::clean::CleanErrors;
use crate::fallback::FlightFallback;
use crate::layer::SessionLayer;
use crate::limits::{Admission, QueryAdmission};
use crate::registry::{Registry, RegistryLimits};
use crate::service::FlotillaFlightSql;
use crate::session::{SessionLimits, SessionProvider, Sessions, User};
use arrow_flight::flight_service_server::FlightServiceServer;
use flotilla_common::{Error, Result};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tonic::transport::{Identity, ServerTlsConfig};

use flotilla_common::grpc::MAX_MESSAGE_BYTES;

/// A Flight SQL server over the sessions of a [`SessionProvider`].
///
/// ```no_run
/// # async fn example(ctx: datafusion::prelude::SessionContext) -> flotilla_common::Result<()> {
/// use flotilla_flightsql::{FlightSqlServer, SharedCatalogs};
/// use std::sync::Arc;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:50051").await?;
/// FlightSqlServer::new(Arc::new(SharedCatalogs::new(&ctx)))
///     .serve(listener, std::future::pending()) // or a shutdown signal
///     .await
/// # }
/// ```
pub struct FlightSqlServer {
    provider: Arc<dyn SessionProvider>,
    users: Vec<User>,
    session_limits: SessionLimits,
    registry_limits: RegistryLimits,
    admission: Arc<Admission>,
    drain_timeout: Duration,
    /// PEM certificate chain and private key: serve TLS.
    tls: Option<(Vec<u8>, Vec<u8>)>,
    fallback: Option<Arc<dyn FlightFallback>>,
    cluster_secret: Option<Arc<str>>,
}

impl FlightSqlServer {
    /// An open server (no users) with default limits.
    pub fn new(provider: Arc<dyn SessionProvider>) -> Self {
        Self {
            provider,
            users: Vec::new(),
            session_limits: SessionLimits::default(),
            registry_limits: RegistryLimits::default(),
            admission: Arc::new(Admission::new(QueryAdmission::default())),
            drain_timeout: Duration::from_secs(30),
            tls: None,
            fallback: None,
            cluster_secret: None,
        }
    }

    /// Calls of other nodes of the cluster carry `secret` (in
    /// [`flotilla_common::grpc::CLUSTER_SECRET_HEADER`]); they reach the fallback without a
    /// user session, and the fallback takes no calls without it.
    pub fn with_cluster_secret(mut self, secret: impl Into<Arc<str>>) -> Self {
        self.cluster_secret = Some(secret.into());
        self
    }

    /// Hands tickets and actions that are not Flight SQL's to `fallback` (another Flight
    /// service on the same port, e.g. a distributed worker). Its calls pass the same session
    /// layer: with users configured, callers authenticate like any client — or, with a
    /// cluster secret ([`Self::with_cluster_secret`]), must carry that secret instead.
    pub fn with_fallback(mut self, fallback: Arc<dyn FlightFallback>) -> Self {
        self.fallback = Some(fallback);
        self
    }

    /// Serve TLS with this certificate chain and private key (both PEM).
    pub fn with_tls(mut self, cert_pem: Vec<u8>, key_pem: Vec<u8>) -> Self {
        self.tls = Some((cert_pem, key_pem));
        self
    }

    /// Only these users may connect (Basic credentials, then the bearer token returned).
    pub fn with_users(mut self, users: Vec<User>) -> Self {
        self.users = users;
        self
    }

    /// How many sessions to keep and for how long.
    pub fn with_session_limits(mut self, limits: SessionLimits) -> Self {
        self.session_limits = limits;
        self
    }

    /// How long tickets and prepared statements live.
    pub fn with_registry_limits(mut self, limits: RegistryLimits) -> Self {
        self.registry_limits = limits;
        self
    }

    /// How many queries run at once and how many may wait (default: no limit).
    pub fn with_query_admission(mut self, admission: QueryAdmission) -> Self {
        self.admission = Arc::new(Admission::new(admission));
        self
    }

    /// The node's turns for queries, for other ports to share (see [`Admission`]).
    pub fn admission(&self) -> Arc<Admission> {
        Arc::clone(&self.admission)
    }

    /// How long running calls may go on after the shutdown signal before they are dropped.
    pub fn with_drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// Serves Flight SQL on `listener` until `shutdown` completes; then stops accepting
    /// connections and lets running calls finish for up to the drain timeout.
    ///
    /// # Errors
    /// When the server cannot run (the listener fails).
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let sessions = Arc::new(Sessions::new(
            self.provider,
            self.users,
            self.session_limits,
        ));
        let service = FlotillaFlightSql::new(
            Arc::new(Registry::new(self.registry_limits)),
            self.admission,
            Arc::clone(&sessions),
            self.fallback,
            self.cluster_secret.is_some(),
        )?;
        let service = FlightServiceServer::new(CleanErrors(Arc::new(service)))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let signalled = Arc::new(Notify::new());
        let notify = Arc::clone(&signalled);
        let signal = async move {
            shutdown.await;
            notify.notify_one();
        };
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let mut builder = tonic::transport::Server::builder()
            .initial_stream_window_size(flotilla_common::grpc::STREAM_WINDOW)
            .initial_connection_window_size(flotilla_common::grpc::CONNECTION_WINDOW);
        if let Some((cert, key)) = self.tls {
            let tls = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
            builder = builder.tls_config(tls).map_err(|e| {
                Error::invalid(format!("the TLS certificate or key is unusable: {e}"))
            })?;
        }
        let server = builder
            .layer(SessionLayer {
                sessions,
                cluster_secret: self.cluster_secret,
            })
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, signal);
        tokio::pin!(server);
        let drain = self.drain_timeout;
        tokio::select! {
            served = &mut server => served.map_err(|e| Error::unavailable(format!("the Flight SQL server stopped: {e}"))),
            () = async { signalled.notified().await; tokio::time::sleep(drain).await; } => Ok(()),
        }
    }
}
