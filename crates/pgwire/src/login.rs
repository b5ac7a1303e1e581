//! The startup of a connection: the protocol version, the user's password when the node has
//! users, and the connection's session.
//!
//! ```text
//!  Startup{user, database, …} ──▶ no users configured: AuthenticationOk … ReadyForQuery
//!                                 users: AuthenticationSASL [SCRAM-SHA-256]
//!  SASLInitialResponse (client-first) ──▶ SASLContinue (server-first: salt, iterations, nonce)
//!  SASLResponse (client-final, proof) ──▶ proof checked against the user's salted password
//!                                         ──▶ SASLFinal, AuthenticationOk, parameters,
//!                                             BackendKeyData, ReadyForQuery
//!                                         or FATAL 28P01 and the connection closes
//! ```
//!
//! The password never crosses the network, and the server never computes a hash on a client's
//! behalf: SCRAM's salted password is PBKDF2-HMAC-SHA256, what `flotilla hash-password` stores,
//! so a hashed user's salt, iteration count and hash are sent to and checked against as they
//! are (a plain password from the environment is salted once, at start). pgwire's
//! `ScramServerAuth` runs the exchange (RFC 5802 / 7677).

use crate::catalog::{NodeRoles, PgSessions};
use crate::errors::user_error;
use crate::limits::{Canceller, Cancels, Registration};
use async_trait::async_trait;
use datafusion::prelude::SessionContext;
use flotilla_flightsql::{Admission, Password, QueryAdmission, SessionProvider, User};
use futures::{Sink, SinkExt};
use pgwire::api::auth::sasl::scram::{
    SCRAM_ITERATIONS, ScramServerAuth, ScramServerAuthWaitingForClientFinal, gen_salted_password,
};
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
use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

/// The SASL mechanism offered on every connection.
const SCRAM_SHA_256: &str = "SCRAM-SHA-256";
/// SCRAM bound to the TLS channel (the server certificate's hash in the proof), offered on TLS
/// connections: a man in the middle holding another certificate cannot relay the login.
const SCRAM_SHA_256_PLUS: &str = "SCRAM-SHA-256-PLUS";

/// A connection's session, kept in its extensions from login to close.
pub(crate) struct Connection {
    pub ctx: SessionContext,
    /// The user who logged in (`None` when the node has no users).
    pub user: Option<String>,
    /// The node's turns for queries.
    pub admission: Arc<Admission>,
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
    /// What SCRAM checks a user's proof against, by name; empty: no login asked.
    secrets: HashMap<String, Secret>,
    /// Keys the salts of users that do not exist.
    mock: RandomState,
    /// The node's turns for queries, given to each connection.
    pub admission: Arc<Admission>,
    /// The server certificate's chain (PEM), when the port serves TLS: SCRAM-SHA-256-PLUS.
    certificate: Option<Vec<u8>>,
    keys: RandomPidSecretKeyGenerator,
    parameters: DefaultServerParameterProvider,
}

/// A user's SCRAM secret: `SaltedPassword = PBKDF2-HMAC-SHA256(password, salt, iterations)`.
#[derive(Clone)]
struct Secret {
    salt: Vec<u8>,
    iterations: usize,
    salted: Vec<u8>,
}

impl Secret {
    fn of(password: &Password) -> Self {
        match password {
            Password::Pbkdf2 {
                iterations,
                salt,
                hash,
            } => Secret {
                salt: salt.clone(),
                iterations: *iterations as usize,
                salted: hash.clone(),
            },
            Password::Plain(plain) => {
                let salt = random_bytes();
                Secret {
                    salted: gen_salted_password(plain, &salt, SCRAM_ITERATIONS),
                    salt,
                    iterations: SCRAM_ITERATIONS,
                }
            }
        }
    }

    /// A secret no password matches, for user `name` that does not exist: the exchange runs to
    /// its end as for a wrong password, with a salt that is the same at each attempt (keyed by
    /// `mock`, random per node), so a client cannot tell the two apart.
    fn of_nobody(name: &str, mock: &RandomState) -> Self {
        let salt = [0u8, 1]
            .iter()
            .flat_map(|half| mock.hash_one((half, name)).to_be_bytes())
            .collect();
        Secret {
            salt,
            iterations: SCRAM_ITERATIONS,
            salted: random_bytes(),
        }
    }
}

/// Random bytes (a base64 SCRAM nonce's).
fn random_bytes() -> Vec<u8> {
    pgwire::api::auth::sasl::scram::random_nonce().into_bytes()
}

/// Where a connection is in its SCRAM exchange (kept in its extensions).
#[derive(Default)]
struct ScramState(Mutex<Option<ScramServerAuthWaitingForClientFinal>>);

impl Login {
    pub fn new(
        sessions: Arc<dyn SessionProvider>,
        users: Vec<User>,
        cancels: Arc<Cancels>,
    ) -> Self {
        let mut parameters = DefaultServerParameterProvider::default();
        parameters.server_version = format!(
            "{} (Flotilla {})",
            crate::settings::SERVER_VERSION,
            env!("CARGO_PKG_VERSION")
        );
        let secrets = users
            .iter()
            .map(|user| (user.name.clone(), Secret::of(&user.password)))
            .collect();
        Self {
            sessions: PgSessions::new(
                sessions,
                NodeRoles::new(users.iter().map(|user| user.name.clone())),
            ),
            cancels,
            secrets,
            mock: RandomState::new(),
            admission: Arc::new(Admission::new(QueryAdmission::default())),
            certificate: None,
            keys: RandomPidSecretKeyGenerator::default(),
            parameters,
        }
    }

    /// Offers SCRAM-SHA-256-PLUS on TLS connections, bound to this certificate chain (PEM).
    pub fn set_certificate(&mut self, chain: Vec<u8>) {
        self.certificate = Some(chain);
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
        let user = (!self.secrets.is_empty())
            .then(|| {
                LoginInfo::from_client_info(client)
                    .user()
                    .map(str::to_string)
            })
            .flatten();
        client.session_extensions().insert(Connection {
            ctx,
            user,
            admission: Arc::clone(&self.admission),
            canceller,
            _registration: registration,
        });
        client.set_pid_and_secret_key(pid, secret_key);
        finish_authentication(client, &self.parameters).await
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
                if self.secrets.is_empty() {
                    return self.admit(client).await;
                }
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                let mut mechanisms = vec![SCRAM_SHA_256.to_string()];
                if client.is_secure() && self.certificate.is_some() {
                    mechanisms.insert(0, SCRAM_SHA_256_PLUS.to_string());
                }
                client
                    .send(PgWireBackendMessage::Authentication(Authentication::SASL(
                        mechanisms,
                    )))
                    .await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(message) => {
                let user = LoginInfo::from_client_info(client)
                    .user()
                    .unwrap_or_default()
                    .to_string();
                let state = client
                    .session_extensions()
                    .get_or_insert_with(ScramState::default);
                let waiting = state.0.lock().ok().and_then(|mut s| s.take());
                match waiting {
                    None => {
                        // client-first: answer with the user's salt and iteration count.
                        let first = message.into_sasl_initial_response()?;
                        let mut scram = ScramServerAuth::new();
                        match (first.auth_method.as_str(), &self.certificate) {
                            (SCRAM_SHA_256, _) => {}
                            (SCRAM_SHA_256_PLUS, Some(chain)) if client.is_secure() => {
                                scram.configure_certificate(chain)?;
                            }
                            _ => {
                                return Err(PgWireError::UnsupportedSASLAuthMethod(
                                    first.auth_method,
                                ));
                            }
                        }
                        let data = first.data.ok_or_else(|| {
                            PgWireError::InvalidScramMessage("empty client-first".into())
                        })?;
                        let secret = self
                            .secrets
                            .get(&user)
                            .cloned()
                            .unwrap_or_else(|| Secret::of_nobody(&user, &self.mock));
                        scram.set_iterations(secret.iterations);
                        let (server_first, next) = scram.on_client_first_message(
                            &data,
                            pgwire::api::auth::Password::new(Some(secret.salt), secret.salted),
                        )?;
                        if let Ok(mut s) = state.0.lock() {
                            *s = Some(next);
                        }
                        client
                            .send(PgWireBackendMessage::Authentication(
                                Authentication::SASLContinue(server_first.into()),
                            ))
                            .await?;
                    }
                    Some(waiting) => {
                        // client-final: the proof.
                        let last = message.into_sasl_response()?;
                        let server_final = waiting
                            .on_client_final_message(&last.data)
                            .map_err(|_| PgWireError::InvalidPassword(user))?;
                        client
                            .send(PgWireBackendMessage::Authentication(
                                Authentication::SASLFinal(server_final.into()),
                            ))
                            .await?;
                        self.admit(client).await?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}
