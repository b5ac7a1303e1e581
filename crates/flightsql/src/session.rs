//! Client sessions: who a request comes from and the DataFusion session it runs in.
//!
//! Every client gets a session the first time it calls: its own [`SessionContext`] (so `SET`
//! options and temporary tables are its own), its prepared statements, and a token. The token
//! is returned in the `authorization: Bearer …` response header, which Flight SQL clients (ADBC,
//! JDBC, the Rust client after a handshake) send back on every later call, so a client stays in
//! its session across calls. Sessions idle for longer than [`SessionLimits::idle_timeout`] are
//! dropped.
//!
//! Credentials: with users configured, a call must carry either `Basic` credentials of one of
//! them (which opens a session) or the bearer token of a live session; anything else is
//! `Unauthenticated` and nothing runs. With no users the server is open: a call without a token,
//! or with the token of a session that expired, simply gets a new session.

use crate::password::Password;
use base64::Engine;
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
    MemorySchemaProvider, SchemaProvider, TableProvider,
};
use datafusion::config::ConfigOptions;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::context::SessionContext;
use datafusion::execution::session_state::SessionState;
use datafusion::execution::{SessionStateBuilder, TaskContext};
use flotilla_common::{Error, ErrorKind, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The catalog that holds a session's own tables (`CREATE TABLE t …` without a catalog).
pub const SESSION_CATALOG: &str = "datafusion";

/// Makes the DataFusion session of each new client.
pub trait SessionProvider: Send + Sync + 'static {
    /// A new session for a client that just connected.
    ///
    /// # Errors
    /// When the session cannot be built; the client sees the error.
    fn new_session(&self) -> Result<SessionContext>;
}

/// Sessions over one node's catalogs: every session sees the same sources (shared, not copied),
/// and has its own configuration and its own [`SESSION_CATALOG`] for temporary tables.
///
/// Shared in-memory catalogs (file sources, tables registered on the base context) are
/// read-only to sessions: a `CREATE TABLE` there would otherwise appear in every other client's
/// session. Database catalogs are shared as they are (what they allow is theirs to decide).
pub struct SharedCatalogs {
    base: SessionState,
}

impl SharedCatalogs {
    /// Sessions like `base` (its catalogs, options, functions and planner), with the options
    /// the service acts on added unless `base` has them ([`crate::with_service_options`]).
    pub fn new(base: &SessionContext) -> Self {
        let mut base = base.state();
        let config = std::mem::take(base.config_mut());
        *base.config_mut() = crate::serving::with_service_options(config);
        Self { base }
    }
}

impl SessionProvider for SharedCatalogs {
    fn new_session(&self) -> Result<SessionContext> {
        let catalogs = MemoryCatalogProviderList::new();
        let base = self.base.catalog_list();
        for name in base.catalog_names() {
            if name != SESSION_CATALOG
                && let Some(catalog) = base.catalog(&name)
            {
                let catalog: Arc<dyn CatalogProvider> =
                    if catalog.downcast_ref::<MemoryCatalogProvider>().is_some() {
                        Arc::new(ReadOnlyCatalog {
                            name: name.clone(),
                            inner: catalog,
                        })
                    } else {
                        catalog
                    };
                catalogs.register_catalog(name, catalog);
            }
        }
        let own = MemoryCatalogProvider::new();
        own.register_schema("public", Arc::new(MemorySchemaProvider::new()))?;
        catalogs.register_catalog(SESSION_CATALOG.to_string(), Arc::new(own));
        let state = SessionStateBuilder::new_from_existing(self.base.clone())
            .with_catalog_list(Arc::new(catalogs))
            .build();
        Ok(SessionContext::new_with_state(state))
    }
}

/// A shared in-memory catalog as sessions see it: readable, not changeable.
#[derive(Debug)]
struct ReadOnlyCatalog {
    name: String,
    inner: Arc<dyn CatalogProvider>,
}

/// The error for a change to a shared catalog.
fn shared(catalog: &str) -> DataFusionError {
    DataFusionError::Plan(format!(
        "catalog '{catalog}' is shared by every session and cannot be changed from one; create \
         session tables in {SESSION_CATALOG}.public (e.g. CREATE TABLE {SESSION_CATALOG}.public.t \
         AS …)"
    ))
}

impl CatalogProvider for ReadOnlyCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.inner.schema_names()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        let inner = self.inner.schema(name)?;
        Some(Arc::new(ReadOnlySchema {
            catalog: self.name.clone(),
            inner,
        }))
    }

    fn register_schema(
        &self,
        _name: &str,
        _schema: Arc<dyn SchemaProvider>,
    ) -> DfResult<Option<Arc<dyn SchemaProvider>>> {
        Err(shared(&self.name))
    }

    fn deregister_schema(
        &self,
        _name: &str,
        _cascade: bool,
    ) -> DfResult<Option<Arc<dyn SchemaProvider>>> {
        Err(shared(&self.name))
    }
}

/// A schema of a [`ReadOnlyCatalog`].
#[derive(Debug)]
struct ReadOnlySchema {
    catalog: String,
    inner: Arc<dyn SchemaProvider>,
}

#[async_trait::async_trait]
impl SchemaProvider for ReadOnlySchema {
    fn owner_name(&self) -> Option<&str> {
        self.inner.owner_name()
    }

    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        self.inner.table(name).await
    }

    async fn table_type(&self, name: &str) -> DfResult<Option<TableType>> {
        self.inner.table_type(name).await
    }

    fn register_table(
        &self,
        _name: String,
        _table: Arc<dyn TableProvider>,
    ) -> DfResult<Option<Arc<dyn TableProvider>>> {
        Err(shared(&self.catalog))
    }

    fn deregister_table(&self, _name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        Err(shared(&self.catalog))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

/// A client's session.
pub struct Session {
    /// The bearer token that names the session.
    token: String,
    /// The authenticated user, if the server has users.
    user: Option<String>,
    ctx: SessionContext,
    last_used: Mutex<Instant>,
}

impl Session {
    /// The DataFusion session the client's statements run in.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The session's options as they are now (without copying its state).
    pub fn options(&self) -> Arc<ConfigOptions> {
        Arc::clone(self.ctx.state_ref().read().config().options())
    }

    /// The context one query of the session executes in: with its own memory pool under
    /// `flotilla.query_memory_limit` (without copying the session's state).
    pub fn query_task_context(&self, id: &str) -> Arc<TaskContext> {
        flotilla_common::memory::query_task_context(&self.ctx.state_ref().read(), id)
    }

    /// The user the session belongs to (`None` on an open server).
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The token that names the session.
    pub fn token(&self) -> &str {
        &self.token
    }

    fn touch(&self) {
        *lock(&self.last_used) = Instant::now();
    }

    fn idle_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(*lock(&self.last_used))
    }
}

/// Locks a mutex, ignoring poisoning: the data behind our mutexes (maps of handles) stays
/// consistent even if a holder panicked.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How many sessions a node keeps and for how long.
#[derive(Debug, Clone)]
pub struct SessionLimits {
    /// A session unused for this long is dropped (with its prepared statements and tables).
    pub idle_timeout: Duration,
    /// At most this many live sessions; beyond it, a new session replaces the least recently
    /// used one.
    pub max_sessions: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30 * 60),
            max_sessions: 10_000,
        }
    }
}

/// A user allowed to connect, with the password to check.
#[derive(Clone)]
pub struct User {
    /// The user name clients send.
    pub name: String,
    /// The password to check.
    pub password: Password,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User").field("name", &self.name).finish()
    }
}

/// The outcome of admitting a call: its session, and the token to return if it is new.
pub(crate) struct Admitted {
    pub session: Arc<Session>,
    pub new_token: Option<String>,
}

/// The live sessions of a node.
pub(crate) struct Sessions {
    provider: Arc<dyn SessionProvider>,
    users: Vec<User>,
    limits: SessionLimits,
    live: Mutex<HashMap<String, Arc<Session>>>,
    last_sweep: Mutex<Instant>,
}

impl Sessions {
    pub fn new(
        provider: Arc<dyn SessionProvider>,
        users: Vec<User>,
        limits: SessionLimits,
    ) -> Self {
        Self {
            provider,
            users,
            limits,
            live: Mutex::new(HashMap::new()),
            last_sweep: Mutex::new(Instant::now()),
        }
    }

    /// The session of a call with these headers, or why it may not run.
    ///
    /// A session opened for a call that does not `keep` it (a `DoGet`, which must not hand
    /// out a token: see the layer) is the call's alone — not remembered, no token returned.
    pub fn admit(&self, headers: &http::HeaderMap, keep: bool) -> Result<Admitted> {
        self.sweep();
        let authorization = headers
            .get(http::header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or_default().trim());
        let (scheme, credentials) = match authorization {
            Some(value) => value.split_once(' ').unwrap_or((value, "")),
            None => ("", ""),
        };
        if scheme.eq_ignore_ascii_case("bearer") {
            if let Some(session) = lock(&self.live).get(credentials.trim()).cloned() {
                session.touch();
                return Ok(Admitted {
                    session,
                    new_token: None,
                });
            }
            if !self.users.is_empty() {
                return Err(unauthenticated(
                    "the session token is unknown or expired: sign in again with user name and \
                     password",
                ));
            }
            return self.open(None, keep);
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let user = self.check_basic(credentials.trim())?;
            return self.open(user, keep);
        }
        if authorization.is_some_and(|v| !v.is_empty()) {
            return Err(unauthenticated(format!(
                "unsupported authorization scheme '{scheme}': use Basic (user name and password) \
                 or the Bearer token the server returned"
            )));
        }
        if !self.users.is_empty() {
            return Err(unauthenticated(
                "this server needs a user name and password",
            ));
        }
        self.open(None, keep)
    }

    /// The user named by `Basic` credentials, checked against the configured users (`None` on
    /// an open server, which takes any credentials).
    fn check_basic(&self, encoded: &str) -> Result<Option<String>> {
        let bad = || unauthenticated("malformed Basic credentials");
        // Padded or not: Go's Flight client (under ADBC) sends unpadded base64.
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let decoded = engine.decode(encoded).map_err(|_| bad())?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
        let (name, password) = decoded.split_once(':').ok_or_else(bad)?;
        if self.users.is_empty() {
            return Ok(None);
        }
        let known = self
            .users
            .iter()
            .find(|u| u.name == name)
            .is_some_and(|u| u.password.matches(password));
        if known {
            Ok(Some(name.to_string()))
        } else {
            Err(unauthenticated("wrong user name or password"))
        }
    }

    fn open(&self, user: Option<String>, keep: bool) -> Result<Admitted> {
        if keep && lock(&self.live).len() >= self.limits.max_sessions {
            self.sweep_now();
            // Still full: the least recently used session makes room. Refusing instead would
            // let clients that never keep their token (every call a new session) lock everyone
            // out of an open server until sessions expire.
            let mut live = lock(&self.live);
            while live.len() >= self.limits.max_sessions.max(1) {
                let now = Instant::now();
                let oldest = live
                    .iter()
                    .max_by_key(|(_, s)| s.idle_for(now))
                    .map(|(token, _)| token.clone());
                match oldest {
                    Some(token) => live.remove(&token),
                    None => break,
                };
            }
            count_sessions(&live);
        }
        let ctx = self.provider.new_session()?;
        let token = new_token();
        let session = Arc::new(Session {
            token: token.clone(),
            user,
            ctx,
            last_used: Mutex::new(Instant::now()),
        });
        if !keep {
            return Ok(Admitted {
                session,
                new_token: None,
            });
        }
        let mut live = lock(&self.live);
        live.insert(token.clone(), Arc::clone(&session));
        count_sessions(&live);
        drop(live);
        Ok(Admitted {
            session,
            new_token: Some(token),
        })
    }

    /// Ends the session named by `token` (its options, tables and token are forgotten).
    pub fn close(&self, token: &str) {
        let mut live = lock(&self.live);
        live.remove(token);
        count_sessions(&live);
    }

    fn sweep(&self) {
        let due = {
            let mut last = lock(&self.last_sweep);
            let due = last.elapsed() >= Duration::from_secs(10);
            if due {
                *last = Instant::now();
            }
            due
        };
        if due {
            self.sweep_now();
        }
    }

    fn sweep_now(&self) {
        let now = Instant::now();
        let idle = self.limits.idle_timeout;
        let mut live = lock(&self.live);
        live.retain(|_, s| s.idle_for(now) < idle);
        count_sessions(&live);
    }
}

/// A new unguessable token (244 random bits).
pub(crate) fn new_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The error for a session that must exist but does not (a handler called outside the layer).
pub(crate) fn no_session() -> Error {
    Error::new(
        ErrorKind::Internal,
        "the call reached the Flight SQL service without a session",
    )
}

/// Credentials missing, unknown or wrong.
fn unauthenticated(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Unauthenticated, message)
}

/// Sets the node's `sessions_active` metric to the sessions kept.
fn count_sessions(live: &HashMap<String, Arc<Session>>) {
    let open = i64::try_from(live.len()).unwrap_or(i64::MAX);
    flotilla_common::metrics::metrics()
        .sessions_active
        .set(open);
}
