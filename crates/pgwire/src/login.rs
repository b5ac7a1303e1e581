//! The startup of a connection: the protocol version, the user's password when the node has
//! users, and the connection's session.
//!
//! ```text
//!  Startup{user, database, …} ──▶ no users configured: AuthenticationOk … ReadyForQuery
//!                                 users: AuthenticationCleartextPassword
//!  PasswordMessage ──▶ checked against [[server.users]] (PBKDF2 hashes are checked on a blocking
//!                      thread) ──▶ AuthenticationOk, parameters, BackendKeyData, ReadyForQuery
//!                                  or FATAL 28P01 and the connection closes
//! ```

use crate::catalog::PgSessions;
use crate::errors::user_error;
use crate::limits::{Canceller, Cancels, Registration};
use async_trait::async_trait;
use datafusion::prelude::SessionContext;
use flotilla_flightsql::{SessionProvider, User};
use futures::{Sink, SinkExt};
use pgwire::api::auth::{
    DefaultServerParameterProvider, LoginInfo, StartupHandler, finish_authentication,
    protocol_negotiation, save_startup_parameters_to_metadata,
};
use pgwire::api::{
    ClientInfo, PgWireConnectionState, PidSecretKeyGenerator, RandomPidSecretKeyGenerator,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use std::fmt::Debug;
use std::sync::Arc;

/// A connection's session, kept in its extensions from login to close.
pub(crate) struct Connection {
    pub ctx: SessionContext,
    /// Cancel requests naming this connection.
    pub canceller: Canceller,
    /// Keeps the connection known to cancel requests until it closes.
    _registration: Registration,
}

/// The session of `client`'s connection.
pub(crate) fn session_of<C: ClientInfo + ?Sized>(client: &C) -> PgWireResult<Arc<Connection>> {
    client
        .session_extensions()
        .get::<Connection>()
        .ok_or_else(|| user_error("08P01", "the connection has not logged in"))
}

pub(crate) struct Login {
    sessions: PgSessions,
    cancels: Arc<Cancels>,
    users: Arc<Vec<User>>,
    keys: RandomPidSecretKeyGenerator,
    parameters: DefaultServerParameterProvider,
}

impl Login {
    pub fn new(
        sessions: Arc<dyn SessionProvider>,
        users: Vec<User>,
        cancels: Arc<Cancels>,
    ) -> Self {
        let mut parameters = DefaultServerParameterProvider::default();
        parameters.server_version = format!("16.0 (Flotilla {})", env!("CARGO_PKG_VERSION"));
        Self {
            sessions: PgSessions::new(sessions),
            cancels,
            users: Arc::new(users),
            keys: RandomPidSecretKeyGenerator::default(),
            parameters,
        }
    }

    /// Opens the connection's session and tells the client it may send queries.
    async fn admit<C>(&self, client: &mut C) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let ctx = self
            .sessions
            .new_session()
            .map_err(|e| user_error("53000", &format!("cannot open a session: {e}")))?;
        let (pid, secret_key) = self.keys.generate(client);
        let (canceller, registration) = self.cancels.register(pid, secret_key.clone());
        client.session_extensions().insert(Connection {
            ctx,
            canceller,
            _registration: registration,
        });
        client.set_pid_and_secret_key(pid, secret_key);
        finish_authentication(client, &self.parameters).await
    }

    /// Whether `password` is that of the user `name`.
    async fn check(&self, name: &str, password: String) -> bool {
        let users = Arc::clone(&self.users);
        let name = name.to_string();
        // A PBKDF2 hash takes a moment to check: not on the connection's runtime thread.
        tokio::task::spawn_blocking(move || {
            users
                .iter()
                .any(|user| user.name == name && user.password.matches(&password))
        })
        .await
        .unwrap_or(false)
    }
}

#[async_trait]
impl StartupHandler for Login {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                if self.users.is_empty() {
                    return self.admit(client).await;
                }
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::CleartextPassword,
                    ))
                    .await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(password) => {
                let password = password.into_password()?;
                let user = LoginInfo::from_client_info(client)
                    .user()
                    .unwrap_or_default()
                    .to_string();
                if self.check(&user, password.password).await {
                    self.admit(client).await?;
                } else {
                    return Err(PgWireError::InvalidPassword(user));
                }
            }
            _ => {}
        }
        Ok(())
    }
}
