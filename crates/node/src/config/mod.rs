//! `flotilla.toml`: the sources a node serves, session defaults, and how `flotilla serve` serves.
//!
//! Every key is documented in `docs/configuration.md`. Reading is strict: an unknown key, a
//! missing file or a bad value is an error that names the file, the line and the key's path,
//! e.g. `flotilla.toml:7:1: sources.shop.pth: unknown key (expected one of: kind, path)`.
//! Relative paths are resolved against the directory of the configuration file.
//!
//! ```text
//!  text ──serde──▶ raw.rs (RawConfig: the file's shape, values with their spans)
//!        ──▶ mod.rs Config::parse: [server], [cluster], [session], [federation]
//!        ──▶ sources.rs: each [sources.<name>] by kind ──▶ SourceConfig (one variant per
//!            kind: the options type of its connector crate, read and checked there)
//!  located.rs: ConfigError (file:line:column: key: message) and the Located that builds it
//! ```

mod located;
mod raw;
mod sources;
#[cfg(test)]
mod tests;

pub use located::ConfigError;
pub use sources::SourceConfig;

use flotilla_federation::config::Pushdown;
use flotilla_flightsql::QueryAdmission;
use located::{Located, explain, first_line, key_path};
use raw::{RawConfig, RawPushdown};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// A validated configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Sources by name; each becomes a catalog of that name.
    pub sources: BTreeMap<String, SourceConfig>,
    pub session: SessionDefaults,
    /// `[federation] pushdown`: `"cost"` (the default), `"all"` or `"none"`; `true` and
    /// `false` mean all and none.
    pub pushdown: Pushdown,
    /// `[server]`: how `flotilla serve` listens and whom it lets in.
    pub server: ServerConfig,
    /// `[cluster]`: the nodes queries are distributed over; none: every query runs here.
    pub cluster: Option<ClusterConfig>,
}

/// `[cluster]`: where the nodes are (this one included) — exactly one of the three.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    pub peers: Peers,
    /// A CA certificate (PEM) to check `grpc+tls://` peers against.
    pub tls_root_cert: Option<PathBuf>,
    /// `secret_env = "VARIABLE"`: the environment variable holding the secret every node of
    /// the cluster shares; nodes then take each other's calls only with it.
    pub secret_env: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Peers {
    /// `peers = ["grpc://host:port", …]`
    Static(Vec<String>),
    /// `peers_dns = "name:port"`: every address of the name (a Kubernetes headless service).
    Dns { name: String, port: u16 },
    /// `peers_file = "path"`: one URL per line, re-read when it changes.
    File(PathBuf),
}

/// The default address of `flotilla serve`: loopback only, so an open server (no users) is not
/// reachable from other machines unless someone asks for it.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";

/// How many queries may wait for a turn when `max_concurrent_queries` is set and
/// `max_queued_queries` is not.
pub const DEFAULT_MAX_QUEUED: usize = 100;

/// `[server]`: the Flight SQL server of `flotilla serve`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerConfig {
    /// `listen = "host:port"` (default [`DEFAULT_LISTEN`]; `--listen` overrides it).
    pub listen: Option<String>,
    /// `http_listen = "host:port"`: serve `/metrics`, `/healthz` and `/readyz` there (off
    /// unless set).
    pub http_listen: Option<String>,
    /// `pg_listen = "host:port"`: serve the PostgreSQL wire protocol there (off unless set),
    /// with the same sessions and users as Flight SQL.
    pub pg_listen: Option<String>,
    /// `memory_limit = "8G"`: bytes every query of the node shares (DataFusion's memory pool:
    /// sorts, aggregates and joins that can spill do, others fail the query). None: no limit.
    pub memory_limit: Option<usize>,
    /// `max_concurrent_queries` (0 or absent: no limit) and `max_queued_queries` (default
    /// [`DEFAULT_MAX_QUEUED`]): queries beyond the first wait for a turn, beyond both fail.
    pub admission: QueryAdmission,
    /// `[[server.users]]`: who may connect. None: the server is open.
    pub users: Vec<UserConfig>,
    /// `session_idle_timeout = seconds`: idle sessions are dropped after this (default 1800).
    pub session_idle_timeout: Option<u64>,
    /// `tls_cert` and `tls_key`: serve TLS with this certificate chain and key (PEM files).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `otlp_endpoint = "http://collector:4317"`: export the node's spans over OTLP/gRPC
    /// (OpenTelemetry) there (off unless set).
    pub otlp_endpoint: Option<String>,
}

/// `[[server.users]] name = "…"` with `password_env = "VARIABLE"` or `password_hash = "…"`.
#[derive(Debug, Clone, PartialEq)]
pub struct UserConfig {
    pub name: String,
    pub password: UserPassword,
}

/// Where a user's password comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum UserPassword {
    /// The environment variable that holds it (never the password itself in the file).
    Env(String),
    /// A hash from `flotilla hash-password`.
    Hash(flotilla_flightsql::Password),
}

/// Defaults applied to every session.
#[derive(Debug, Clone, Default)]
pub struct SessionDefaults {
    /// The catalog unqualified table names resolve in.
    pub default_catalog: Option<String>,
    /// The schema unqualified table names resolve in.
    pub default_schema: Option<String>,
    /// `[session.options]`: session options every session starts with, as `SET` takes them
    /// (`"distributed.results_from_workers" = false`, `"datafusion.execution.batch_size" = 4096`).
    pub options: BTreeMap<String, String>,
}

impl Config {
    /// Reads and validates the configuration file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            position: None,
            key: String::new(),
            message: format!("cannot read the configuration file: {e}"),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, &path.display().to_string(), base)
    }

    /// Parses configuration `text`; `file` names it in errors and `base` anchors relative paths.
    pub fn parse(text: &str, file: &str, base: &Path) -> Result<Config, ConfigError> {
        let at = Located { text, file };
        let error = |span, key, message| at.error(span, key, message);
        let mut document = toml::de::DeTable::parse(text)
            .map_err(|e| error(e.span(), String::new(), first_line(e.message())))?;
        // Each source's table is read by its kind (sources.rs); the rest by RawConfig.
        let raw_sources = document.get_mut().remove("sources");
        let raw: RawConfig = serde_path_to_error::deserialize(toml::de::Deserializer::from(
            document,
        ))
        .map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            error(inner.span(), key_path(&key), explain(inner.message()))
        })?;

        let mut sources = BTreeMap::new();
        if let Some(raw_sources) = raw_sources {
            let span = raw_sources.span();
            let toml::de::DeValue::Table(raw_sources) = raw_sources.into_inner() else {
                return Err(error(
                    Some(span),
                    "sources".into(),
                    "expected tables, one per source ([sources.<name>])".into(),
                ));
            };
            for (name, table) in raw_sources {
                let name = name.into_inner().into_owned();
                let source = sources::source(&name, table, &at, base)?;
                sources.insert(name, source);
            }
        }
        let mut users = Vec::new();
        for (i, user) in raw.server.users.into_iter().enumerate() {
            let key = format!("server.users[{i}]");
            let password = match (user.password_env, user.password_hash) {
                (Some(variable), None) => UserPassword::Env(variable),
                (None, Some(hash)) => UserPassword::Hash(
                    flotilla_flightsql::Password::parse_hash(hash.get_ref()).map_err(
                        |message| error(Some(hash.span()), format!("{key}.password_hash"), message),
                    )?,
                ),
                _ => {
                    return Err(error(
                        None,
                        key,
                        format!(
                            "user '{}' needs exactly one of password_env or password_hash",
                            user.name
                        ),
                    ));
                }
            };
            users.push(UserConfig {
                name: user.name,
                password,
            });
        }
        let otlp_endpoint = match raw.server.otlp_endpoint {
            Some(endpoint)
                if !["http://", "https://"]
                    .iter()
                    .any(|scheme| endpoint.get_ref().starts_with(scheme)) =>
            {
                return Err(error(
                    Some(endpoint.span()),
                    "server.otlp_endpoint".into(),
                    format!(
                        "'{}' is not an OTLP/gRPC URL (http://host:4317 or https://…)",
                        endpoint.get_ref()
                    ),
                ));
            }
            endpoint => endpoint.map(Spanned::into_inner),
        };
        let memory_limit = match raw.server.memory_limit {
            Some(limit) => Some(flotilla_common::options::size(limit.get_ref()).map_err(
                |message| error(Some(limit.span()), "server.memory_limit".into(), message),
            )?),
            None => None,
        };
        let max_running = raw.server.max_concurrent_queries.unwrap_or(0);
        if max_running == 0
            && let Some(queued) = &raw.server.max_queued_queries
        {
            return Err(error(
                Some(queued.span()),
                "server.max_queued_queries".into(),
                "queries only wait with a limit on running ones: set max_concurrent_queries too"
                    .into(),
            ));
        }
        let admission = QueryAdmission {
            max_running,
            max_queued: raw
                .server
                .max_queued_queries
                .map_or(DEFAULT_MAX_QUEUED, |q| q.into_inner()),
        };
        let tls = match (raw.server.tls_cert, raw.server.tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                let mut paths = Vec::new();
                for (name, file) in [("tls_cert", cert), ("tls_key", key)] {
                    let path = base.join(file.get_ref());
                    if !path.is_file() {
                        return Err(error(
                            Some(file.span()),
                            format!("server.{name}"),
                            format!("{} does not exist", path.display()),
                        ));
                    }
                    paths.push(path);
                }
                let key = paths.pop();
                let cert = paths.pop();
                cert.zip(key)
            }
            (Some(only), None) | (None, Some(only)) => {
                return Err(error(
                    Some(only.span()),
                    "server".into(),
                    "TLS needs both tls_cert and tls_key".into(),
                ));
            }
        };
        let cluster = match raw.cluster {
            None => None,
            Some(cluster) => {
                let span = cluster.span();
                let cluster = cluster.into_inner();
                let peers = match (cluster.peers, cluster.peers_dns, cluster.peers_file) {
                    (Some(peers), None, None) => {
                        for peer in &peers {
                            if let Err(e) = flotilla_distributed::check_worker_url(peer.get_ref()) {
                                return Err(error(
                                    Some(peer.span()),
                                    "cluster.peers".into(),
                                    e.message().to_string(),
                                ));
                            }
                        }
                        Peers::Static(peers.into_iter().map(Spanned::into_inner).collect())
                    }
                    (None, Some(dns), None) => {
                        let parsed = dns
                            .get_ref()
                            .rsplit_once(':')
                            .and_then(|(name, port)| Some((name, port.parse::<u16>().ok()?)))
                            .filter(|(name, port)| !name.is_empty() && *port > 0);
                        let Some((name, port)) = parsed else {
                            return Err(error(
                                Some(dns.span()),
                                "cluster.peers_dns".into(),
                                format!(
                                    "'{}' is not name:port (e.g. \"flotilla.default.svc:50051\")",
                                    dns.get_ref()
                                ),
                            ));
                        };
                        Peers::Dns {
                            name: name.to_string(),
                            port,
                        }
                    }
                    (None, None, Some(file)) => Peers::File(base.join(file.get_ref())),
                    _ => {
                        return Err(error(
                            Some(span),
                            "cluster".into(),
                            "give exactly one of peers, peers_dns or peers_file".into(),
                        ));
                    }
                };
                let tls_root_cert = match cluster.tls_root_cert {
                    None => None,
                    Some(file) => {
                        let path = base.join(file.get_ref());
                        if !path.is_file() {
                            return Err(error(
                                Some(file.span()),
                                "cluster.tls_root_cert".into(),
                                format!("{} does not exist", path.display()),
                            ));
                        }
                        Some(path)
                    }
                };
                let secret_env = match cluster.secret_env {
                    Some(name) if name.get_ref().trim().is_empty() => {
                        return Err(error(
                            Some(name.span()),
                            "cluster.secret_env".into(),
                            "name the environment variable holding the cluster secret".into(),
                        ));
                    }
                    other => other.map(Spanned::into_inner),
                };
                Some(ClusterConfig {
                    peers,
                    tls_root_cert,
                    secret_env,
                })
            }
        };
        let mut session_options = BTreeMap::new();
        for (key, value) in &raw.session.options {
            let text = match value.get_ref() {
                toml::Value::String(text) => text.clone(),
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Float(x) => x.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                _ => {
                    return Err(error(
                        Some(value.span()),
                        format!("session.options.{key}"),
                        "an option's value is a string, number or boolean".into(),
                    ));
                }
            };
            session_options.insert(key.clone(), text);
        }
        if !users.is_empty()
            && let Some(cluster) = &cluster
            && cluster.secret_env.is_none()
        {
            return Err(error(
                None,
                "cluster".into(),
                "with [[server.users]], nodes take each other's calls only with a shared secret: \
                 set secret_env = \"VARIABLE\" (the same secret on every node)"
                    .into(),
            ));
        }
        Ok(Config {
            cluster,
            sources,
            session: SessionDefaults {
                default_catalog: raw.session.default_catalog,
                default_schema: raw.session.default_schema,
                options: session_options,
            },
            pushdown: match raw.federation.pushdown {
                None => Pushdown::default(),
                Some(pushdown) => {
                    let span = pushdown.span();
                    match pushdown.into_inner() {
                        RawPushdown::Flag(true) => Pushdown::All,
                        RawPushdown::Flag(false) => Pushdown::None,
                        RawPushdown::Mode(mode) => mode.parse().map_err(|e: String| {
                            error(Some(span), "federation.pushdown".into(), e.to_string())
                        })?,
                    }
                }
            },
            server: ServerConfig {
                listen: raw.server.listen,
                http_listen: raw.server.http_listen,
                pg_listen: raw.server.pg_listen,
                memory_limit,
                admission,
                users,
                session_idle_timeout: raw.server.session_idle_timeout,
                tls,
                otlp_endpoint,
            },
        })
    }
}
