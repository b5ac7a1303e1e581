//! The tower layer in front of the Flight service: admits each call into a session (or refuses
//! it before any handler runs) and returns the token of a new session in the response's
//! `authorization` header.
//!
//! It is a layer rather than code in each handler because several Flight SQL handlers (updates,
//! prepared statement actions) return plain values, not responses with headers, and because a
//! refused call must not reach any handler at all.

use crate::session::Sessions;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The gRPC path prefix of the Flight service; other services on the same port (the
/// distributed worker service) are passed through untouched.
const FLIGHT_PATH: &str = "/arrow.flight.protocol.FlightService/";

/// Wraps a service in [`SessionService`].
#[derive(Clone)]
pub(crate) struct SessionLayer {
    pub sessions: Arc<Sessions>,
    /// The cluster's shared secret: calls carrying it are another node's (see [`Peer`]).
    pub cluster_secret: Option<Arc<str>>,
}

impl<S> tower_layer::Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            sessions: Arc::clone(&self.sessions),
            cluster_secret: self.cluster_secret.clone(),
        }
    }
}

/// The path of `DoGet`.
const DO_GET_PATH: &str = "/arrow.flight.protocol.FlightService/DoGet";

/// A `DoGet` whose caller could not be admitted, with the refusal. It still reaches the
/// service, because a ticket may carry its own authorization (a result ticket another node
/// of the cluster signed, presented with the token of that node's session); every other
/// ticket is refused with this status.
#[derive(Debug, Clone)]
pub(crate) struct Unadmitted(pub tonic::Status);

/// Marks a call made by another node of the cluster (it carried the cluster secret). Such a
/// call has no client session: only the fallback service (the node's worker) answers it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer;

/// See the module documentation.
#[derive(Clone)]
pub(crate) struct SessionService<S> {
    inner: S,
    sessions: Arc<Sessions>,
    cluster_secret: Option<Arc<str>>,
}

/// Whether `given` is `secret`, in time independent of where they differ.
fn same_secret(given: &[u8], secret: &[u8]) -> bool {
    given.len() == secret.len()
        && given
            .iter()
            .zip(secret)
            .fold(0u8, |differ, (a, b)| differ | (a ^ b))
            == 0
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B, R> tower_service::Service<http::Request<B>> for SessionService<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // The ready service handles this call; a clone waits for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let Some(method) = request.uri().path().strip_prefix(FLIGHT_PATH) else {
            return Box::pin(inner.call(request));
        };
        let method = method.to_string();
        let call = self.admit(inner, request);
        Box::pin(async move {
            let response = call.await?;
            record_call(method, &response);
            Ok(response)
        })
    }
}

/// Counts a call in the node's metrics, by method and the status it started with (a call
/// refused or failed at once carries `grpc-status` in its headers; a stream that started is
/// `OK`).
fn record_call<R>(method: String, response: &http::Response<R>) {
    let code = response
        .headers()
        .get("grpc-status")
        .and_then(|code| code.to_str().ok())
        .and_then(|code| code.parse::<i32>().ok())
        .map_or(tonic::Code::Ok, tonic::Code::from);
    let labels = vec![("method", method), ("code", format!("{code:?}"))];
    flotilla_common::metrics::metrics()
        .flight_calls
        .get_or_create(&labels)
        .inc();
}

impl<S> SessionService<S> {
    /// Admits a Flight call into its session (or refuses it) and passes it to `inner`.
    fn admit<B, R>(
        &self,
        mut inner: S,
        mut request: http::Request<B>,
    ) -> BoxFuture<http::Response<R>, S::Error>
    where
        S: tower_service::Service<http::Request<B>, Response = http::Response<R>> + Send + 'static,
        S::Future: Send + 'static,
        B: Send + 'static,
        R: Default + Send + 'static,
    {
        if let Some(given) = request
            .headers()
            .get(flotilla_common::grpc::CLUSTER_SECRET_HEADER)
        {
            let status = match &self.cluster_secret {
                Some(secret) if same_secret(given.as_bytes(), secret.as_bytes()) => None,
                Some(_) => Some(tonic::Status::unauthenticated(
                    "wrong cluster secret: every node of a cluster needs the same \
                     [cluster] secret_env",
                )),
                None => Some(tonic::Status::unauthenticated(
                    "this node has no cluster secret: give every node of the cluster the same \
                     [cluster] secret_env",
                )),
            };
            if let Some(status) = status {
                return Box::pin(async move { Ok(status.into_http()) });
            }
            request.extensions_mut().insert(Peer);
            return Box::pin(inner.call(request));
        }
        // A DoGet never opens a session that outlives it, nor hands out a token: clients
        // (ADBC) send the token of the node they asked to every node an endpoint names and
        // adopt any token they get back — one from another node would replace theirs.
        let do_get = request.uri().path() == DO_GET_PATH;
        let admitted = match self.sessions.admit(request.headers(), !do_get) {
            Ok(admitted) => admitted,
            Err(refused) if do_get => {
                request
                    .extensions_mut()
                    .insert(Unadmitted(tonic::Status::from(refused)));
                return Box::pin(inner.call(request));
            }
            Err(refused) => {
                let status = tonic::Status::from(refused);
                return Box::pin(async move { Ok(status.into_http()) });
            }
        };
        request.extensions_mut().insert(admitted.session);
        let new_token = admitted.new_token;
        Box::pin(async move {
            let mut response = inner.call(request).await?;
            if let Some(token) = new_token
                && let Ok(value) = http::HeaderValue::from_str(&format!("Bearer {token}"))
            {
                response
                    .headers_mut()
                    .insert(http::header::AUTHORIZATION, value);
            }
            Ok(response)
        })
    }
}
