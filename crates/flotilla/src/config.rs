//! `flotilla.toml`: the sources a node serves, session defaults, and how `flotilla serve` serves.
//!
//! Every key is documented in `docs/configuration.md`. Reading is strict: an unknown key, a
//! missing file or a bad value is an error that names the file, the line and the key's path,
//! e.g. `flotilla.toml:7:1: sources.shop.pth: unknown key (expected one of: kind, path)`.
//! Relative paths are resolved against the directory of the configuration file.

use flotilla_common::Error;
use flotilla_connectors_mysql::{Flavor, ZeroDates};
use flotilla_connectors_postgres::{NumericMapping, UnsupportedTypes};
use flotilla_federation::config::Pushdown;
use flotilla_flightsql::QueryAdmission;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// A validated configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Sources by name; each becomes a catalog of that name.
    pub sources: BTreeMap<String, SourceConfig>,
    /// `max_connections` of the database sources that set it (SQLite, PostgreSQL, MySQL,
    /// Flight SQL), by source name: how many of its statements run at once on a node.
    pub max_connections: BTreeMap<String, usize>,
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

/// One configured source.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceConfig {
    /// A SQLite database file, with further files attached as schemas.
    Sqlite {
        path: PathBuf,
        /// `attach = { archive = "archive.db" }`: (schema name, file).
        attach: Vec<(String, PathBuf)>,
        /// `pushdown = "all" | "cost" | "none"`: how much of a query this source takes when the
        /// session's pushdown is `cost` (`None`: the cost model chooses).
        pushdown: Option<Pushdown>,
    },
    /// Parquet files: a file (one table) or a directory (one table per file or sub-directory).
    Parquet { path: PathBuf },
    /// CSV files, laid out like Parquet sources.
    Csv {
        path: PathBuf,
        delimiter: u8,
        has_header: bool,
    },
    /// A MySQL, MariaDB or TiDB server (one database of it when the URL names one).
    Mysql {
        url: String,
        password_env: Option<String>,
        /// Detected from the server's version when `None`.
        flavor: Option<Flavor>,
        zero_dates: ZeroDates,
        unsupported_types: UnsupportedTypes,
        /// A CA certificate file to check the server's certificate against (turns TLS on).
        tls_root_cert: Option<PathBuf>,
        /// `pushdown = "all" | "cost" | "none"`: how much of a query this source takes when the
        /// session's pushdown is `cost` (`None`: the cost model chooses).
        pushdown: Option<Pushdown>,
    },
    /// A PostgreSQL database.
    Postgres {
        /// libpq URL or key-value connection string.
        url: String,
        /// An environment variable holding the password (kept out of the file).
        password_env: Option<String>,
        numeric: NumericMapping,
        unsupported_types: UnsupportedTypes,
        /// A CA certificate file to check the server's certificate against (turns TLS on
        /// unless the URL says `sslmode=disable`).
        tls_root_cert: Option<PathBuf>,
        /// `pushdown = "all" | "cost" | "none"`: how much of a query this source takes when the
        /// session's pushdown is `cost` (`None`: the cost model chooses).
        pushdown: Option<Pushdown>,
    },
    /// A remote Arrow Flight SQL endpoint (another Flotilla node, InfluxDB 3, Dremio, …).
    FlightSql {
        /// `grpc://host:port`.
        url: String,
        /// The remote catalog to expose (default: the endpoint's only one).
        catalog: Option<String>,
        /// The user to sign in as (none: no handshake).
        user: Option<String>,
        /// An environment variable holding the password.
        password_env: Option<String>,
        /// For `grpc+tls://`: a CA certificate file to trust instead of the system's.
        tls_root_cert: Option<PathBuf>,
        /// `pushdown = "all" | "cost" | "none"`: how much of a query this source takes when the
        /// session's pushdown is `cost` (`None`: the cost model chooses).
        pushdown: Option<Pushdown>,
    },
    /// One database of an InfluxDB server, over its v1 HTTP API (InfluxQL).
    Influxdb {
        /// `http://host:8086`.
        url: String,
        database: String,
        /// An InfluxDB 1.x user (with `password_env`).
        user: Option<String>,
        password_env: Option<String>,
        /// An environment variable holding an InfluxDB 2.x/3 token.
        token_env: Option<String>,
    },
}

impl SourceConfig {
    /// The `kind` value of this source.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::Sqlite { .. } => "sqlite",
            SourceConfig::Parquet { .. } => "parquet",
            SourceConfig::Csv { .. } => "csv",
            SourceConfig::Postgres { .. } => "postgres",
            SourceConfig::Mysql { .. } => "mysql",
            SourceConfig::FlightSql { .. } => "flightsql",
            SourceConfig::Influxdb { .. } => "influxdb",
        }
    }
}

/// An error in a configuration file, with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based line and column, when known.
    pub position: Option<(usize, usize)>,
    /// Dotted path of the key, e.g. `sources.shop.path`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        if self.key.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::invalid(e.to_string())
    }
}

// The raw shape of the file. Values that later checks report on keep their spans.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    sources: BTreeMap<String, Spanned<RawSource>>,
    #[serde(default)]
    session: RawSession,
    #[serde(default)]
    federation: RawFederation,
    #[serde(default)]
    server: RawServer,
    cluster: Option<Spanned<RawCluster>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    peers: Option<Vec<Spanned<String>>>,
    peers_dns: Option<Spanned<String>>,
    peers_file: Option<Spanned<String>>,
    tls_root_cert: Option<Spanned<String>>,
    secret_env: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    http_listen: Option<String>,
    pg_listen: Option<String>,
    memory_limit: Option<Spanned<String>>,
    max_concurrent_queries: Option<usize>,
    max_queued_queries: Option<Spanned<usize>>,
    #[serde(default)]
    users: Vec<RawUser>,
    session_idle_timeout: Option<u64>,
    tls_cert: Option<Spanned<String>>,
    tls_key: Option<Spanned<String>>,
    otlp_endpoint: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    name: String,
    password_env: Option<String>,
    password_hash: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFederation {
    pushdown: Option<Spanned<RawPushdown>>,
}

/// `pushdown = "cost"`, or the boolean the key took before it had three values.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawPushdown {
    Flag(bool),
    Mode(String),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSession {
    default_catalog: Option<String>,
    default_schema: Option<String>,
    #[serde(default)]
    options: BTreeMap<String, Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    kind: Spanned<String>,
    path: Option<Spanned<String>>,
    delimiter: Option<Spanned<String>>,
    has_header: Option<Spanned<bool>>,
    attach: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    url: Option<Spanned<String>>,
    password_env: Option<Spanned<String>>,
    numeric: Option<Spanned<String>>,
    unsupported_types: Option<Spanned<String>>,
    flavor: Option<Spanned<String>>,
    zero_dates: Option<Spanned<String>>,
    catalog: Option<Spanned<String>>,
    user: Option<Spanned<String>>,
    tls_root_cert: Option<Spanned<String>>,
    database: Option<Spanned<String>>,
    token_env: Option<Spanned<String>>,
    pushdown: Option<Spanned<String>>,
    max_connections: Option<Spanned<i64>>,
}

/// The kinds of source and the keys each accepts (besides `kind`).
const KINDS: &[(&str, &[&str])] = &[
    ("sqlite", &["path", "attach", "pushdown", "max_connections"]),
    ("parquet", &["path"]),
    ("csv", &["path", "delimiter", "has_header"]),
    (
        "postgres",
        &[
            "url",
            "password_env",
            "numeric",
            "unsupported_types",
            "tls_root_cert",
            "pushdown",
            "max_connections",
        ],
    ),
    (
        "mysql",
        &[
            "url",
            "password_env",
            "flavor",
            "zero_dates",
            "unsupported_types",
            "tls_root_cert",
            "pushdown",
            "max_connections",
        ],
    ),
    (
        "flightsql",
        &[
            "url",
            "catalog",
            "user",
            "password_env",
            "tls_root_cert",
            "pushdown",
            "max_connections",
        ],
    ),
    (
        "influxdb",
        &["url", "database", "user", "password_env", "token_env"],
    ),
];

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
        let error = |span: Option<Range<usize>>, key: String, message: String| ConfigError {
            file: file.to_string(),
            position: span.map(|s| line_and_column(text, s.start)),
            key,
            message,
        };
        let deserializer = toml::de::Deserializer::parse(text)
            .map_err(|e| error(e.span(), String::new(), first_line(e.message())))?;
        let raw: RawConfig = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            error(inner.span(), key_path(&key), explain(inner.message()))
        })?;

        let mut sources = BTreeMap::new();
        let mut max_connections = BTreeMap::new();
        for (name, raw_source) in raw.sources {
            let span = raw_source.span();
            let raw_source = raw_source.into_inner();
            let key = |k: &str| format!("sources.{name}.{k}");
            // A file the source reads (`tls_root_cert`), relative to the config file.
            let existing_file = |file: &Option<Spanned<String>>| match file {
                None => Ok(None),
                Some(file) => {
                    let path = base.join(file.get_ref());
                    if path.is_file() {
                        Ok(Some(path))
                    } else {
                        Err(error(
                            Some(file.span()),
                            key("tls_root_cert"),
                            format!("{} does not exist", path.display()),
                        ))
                    }
                }
            };
            let kind = raw_source.kind.get_ref().as_str();
            let Some((_, allowed)) = KINDS.iter().find(|(k, _)| *k == kind) else {
                let kinds: Vec<_> = KINDS.iter().map(|(k, _)| *k).collect();
                return Err(error(
                    Some(raw_source.kind.span()),
                    key("kind"),
                    format!(
                        "unknown source kind '{kind}' (expected one of: {})",
                        kinds.join(", ")
                    ),
                ));
            };
            let span_of = |v: &Option<Spanned<String>>| v.as_ref().map(|v| v.span());
            let present = [
                ("path", span_of(&raw_source.path)),
                ("delimiter", span_of(&raw_source.delimiter)),
                (
                    "has_header",
                    raw_source.has_header.as_ref().map(|v| v.span()),
                ),
                ("attach", raw_source.attach.as_ref().map(|v| v.span())),
                ("url", span_of(&raw_source.url)),
                ("password_env", span_of(&raw_source.password_env)),
                ("numeric", span_of(&raw_source.numeric)),
                ("unsupported_types", span_of(&raw_source.unsupported_types)),
                ("flavor", span_of(&raw_source.flavor)),
                ("zero_dates", span_of(&raw_source.zero_dates)),
                ("catalog", span_of(&raw_source.catalog)),
                ("user", span_of(&raw_source.user)),
                ("tls_root_cert", span_of(&raw_source.tls_root_cert)),
                ("database", span_of(&raw_source.database)),
                ("token_env", span_of(&raw_source.token_env)),
                ("pushdown", span_of(&raw_source.pushdown)),
                (
                    "max_connections",
                    raw_source.max_connections.as_ref().map(|v| v.span()),
                ),
            ];
            for (k, value_span) in present {
                if let Some(s) = value_span
                    && !allowed.contains(&k)
                {
                    return Err(error(
                        Some(s),
                        key(k),
                        format!(
                            "not a key of a '{kind}' source (it takes: kind, {})",
                            allowed.join(", ")
                        ),
                    ));
                }
            }
            let pushdown = match &raw_source.pushdown {
                None => None,
                Some(v) => Some(
                    v.get_ref()
                        .parse::<Pushdown>()
                        .map_err(|e| error(Some(v.span()), key("pushdown"), e))?,
                ),
            };
            if let Some(v) = &raw_source.max_connections {
                let n = usize::try_from(*v.get_ref())
                    .ok()
                    .filter(|n| (1..=10_000).contains(n))
                    .ok_or_else(|| {
                        error(
                            Some(v.span()),
                            key("max_connections"),
                            "expected a number of connections from 1 to 10000".into(),
                        )
                    })?;
                max_connections.insert(name.clone(), n);
            }
            if kind == "influxdb" {
                let missing = |what: &str| {
                    error(
                        Some(span.clone()),
                        format!("sources.{name}"),
                        format!(
                            "missing key '{what}' (e.g. {what} = {})",
                            match what {
                                "url" => "\"http://localhost:8086\"",
                                _ => "\"telegraf\"",
                            }
                        ),
                    )
                };
                let url = raw_source.url.ok_or_else(|| missing("url"))?;
                let database = raw_source.database.ok_or_else(|| missing("database"))?;
                if !url.get_ref().starts_with("http://") {
                    return Err(error(
                        Some(url.span()),
                        key("url"),
                        "an InfluxDB source is reached over http:// (https is not supported yet)"
                            .into(),
                    ));
                }
                if raw_source.token_env.is_some() && raw_source.password_env.is_some() {
                    return Err(error(
                        Some(span),
                        format!("sources.{name}"),
                        "give a user with password_env, or token_env, not both".into(),
                    ));
                }
                let source = SourceConfig::Influxdb {
                    url: url.into_inner(),
                    database: database.into_inner(),
                    user: raw_source.user.map(|v| v.into_inner()),
                    password_env: raw_source.password_env.map(|v| v.into_inner()),
                    token_env: raw_source.token_env.map(|v| v.into_inner()),
                };
                sources.insert(name, source);
                continue;
            }
            if kind == "flightsql" {
                let Some(url) = raw_source.url else {
                    return Err(error(
                        Some(span),
                        format!("sources.{name}"),
                        "missing key 'url' (e.g. url = \"grpc://other-node:50051\")".into(),
                    ));
                };
                if let Err(e) = flotilla_connectors_flightsql::check_url(url.get_ref()) {
                    return Err(error(Some(url.span()), key("url"), e.to_string()));
                }
                let tls_root_cert = existing_file(&raw_source.tls_root_cert)?;
                let source = SourceConfig::FlightSql {
                    tls_root_cert,
                    url: url.into_inner(),
                    catalog: raw_source.catalog.map(|v| v.into_inner()),
                    user: raw_source.user.map(|v| v.into_inner()),
                    password_env: raw_source.password_env.map(|v| v.into_inner()),
                    pushdown,
                };
                sources.insert(name, source);
                continue;
            }
            if kind == "postgres" || kind == "mysql" {
                let example = match kind {
                    "postgres" => "postgresql://user@host:5432/database",
                    _ => "mysql://user@host:3306/database",
                };
                let Some(url) = raw_source.url else {
                    return Err(error(
                        Some(span),
                        format!("sources.{name}"),
                        format!("missing key 'url' (e.g. url = \"{example}\")"),
                    ));
                };
                let checked = match kind {
                    "postgres" => flotilla_connectors_postgres::check_url(url.get_ref()),
                    _ => flotilla_connectors_mysql::check_url(url.get_ref()),
                };
                if let Err(e) = checked {
                    return Err(error(
                        Some(url.span()),
                        key("url"),
                        format!("not a connection URL like {example}: {e}"),
                    ));
                }
                let choice =
                    |field: &str, value: &Option<Spanned<String>>, allowed: &[&str]| match value {
                        Some(v) if !allowed.contains(&v.get_ref().as_str()) => Err(error(
                            Some(v.span()),
                            key(field),
                            format!(
                                "expected one of {}, got '{}'",
                                allowed.join(", "),
                                v.get_ref()
                            ),
                        )),
                        Some(v) => Ok(Some(v.get_ref().clone())),
                        None => Ok(None),
                    };
                let unsupported_types = match choice(
                    "unsupported_types",
                    &raw_source.unsupported_types,
                    &["error", "skip"],
                )?
                .as_deref()
                {
                    Some("skip") => UnsupportedTypes::Skip,
                    _ => UnsupportedTypes::Error,
                };
                let url_text = url.into_inner();
                let password_env = raw_source.password_env.map(|v| v.into_inner());
                let tls_root_cert = existing_file(&raw_source.tls_root_cert)?;
                let source = if kind == "postgres" {
                    let numeric = match &raw_source.numeric {
                        None => NumericMapping::default(),
                        Some(v) => parse_numeric(v.get_ref()).ok_or_else(|| {
                            error(
                                Some(v.span()),
                                key("numeric"),
                                format!(
                                    "expected \"float\" or \"decimal(P,S)\" with P ≤ 38, got '{}'",
                                    v.get_ref()
                                ),
                            )
                        })?,
                    };
                    SourceConfig::Postgres {
                        url: url_text,
                        password_env,
                        numeric,
                        unsupported_types,
                        tls_root_cert,
                        pushdown,
                    }
                } else {
                    let flavor =
                        match choice("flavor", &raw_source.flavor, &["mysql", "mariadb", "tidb"])?
                            .as_deref()
                        {
                            Some("mysql") => Some(Flavor::MySql),
                            Some("mariadb") => Some(Flavor::MariaDb),
                            Some("tidb") => Some(Flavor::TiDb),
                            _ => None,
                        };
                    let zero_dates =
                        match choice("zero_dates", &raw_source.zero_dates, &["error", "null"])?
                            .as_deref()
                        {
                            Some("null") => ZeroDates::Null,
                            _ => ZeroDates::Error,
                        };
                    SourceConfig::Mysql {
                        url: url_text,
                        password_env,
                        flavor,
                        zero_dates,
                        unsupported_types,
                        tls_root_cert,
                        pushdown,
                    }
                };
                sources.insert(name, source);
                continue;
            }
            let Some(raw_path) = raw_source.path else {
                return Err(error(
                    Some(span),
                    format!("sources.{name}"),
                    "missing key 'path'".into(),
                ));
            };
            let path = base.join(raw_path.get_ref());
            if !path.exists() {
                return Err(error(
                    Some(raw_path.span()),
                    key("path"),
                    format!("{} does not exist", path.display()),
                ));
            }
            let source = match kind {
                "sqlite" => {
                    let mut attach = Vec::new();
                    for (schema, file) in raw_source
                        .attach
                        .map(|a| a.into_inner())
                        .unwrap_or_default()
                    {
                        let file_path = base.join(file.get_ref());
                        if !file_path.is_file() {
                            return Err(error(
                                Some(file.span()),
                                key(&format!("attach.{schema}")),
                                format!("{} does not exist", file_path.display()),
                            ));
                        }
                        attach.push((schema, file_path));
                    }
                    SourceConfig::Sqlite {
                        path,
                        attach,
                        pushdown,
                    }
                }
                "parquet" => SourceConfig::Parquet { path },
                _ => {
                    let delimiter = match &raw_source.delimiter {
                        None => b',',
                        Some(d) if d.get_ref().len() == 1 => d.get_ref().as_bytes()[0],
                        Some(d) => {
                            return Err(error(
                                Some(d.span()),
                                key("delimiter"),
                                format!("must be a single ASCII character, got '{}'", d.get_ref()),
                            ));
                        }
                    };
                    let has_header = raw_source
                        .has_header
                        .map(|h| h.into_inner())
                        .unwrap_or(true);
                    SourceConfig::Csv {
                        path,
                        delimiter,
                        has_header,
                    }
                }
            };
            sources.insert(name, source);
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
            max_connections,
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

/// `float` or `decimal(P,S)`.
fn parse_numeric(text: &str) -> Option<NumericMapping> {
    let text = text.trim().to_ascii_lowercase();
    if text == "float" {
        return Some(NumericMapping::Float);
    }
    let inner = text.strip_prefix("decimal(")?.strip_suffix(')')?;
    let (p, s) = inner.split_once(',')?;
    let (p, s): (u8, i8) = (p.trim().parse().ok()?, s.trim().parse().ok()?);
    ((1..=38).contains(&p) && s >= 0 && s as u8 <= p).then_some(NumericMapping::Decimal(p, s))
}

/// The dotted key path of a `serde_path_to_error` path, without the internal segments that
/// `Spanned` values add, and empty for the root.
fn key_path(path: &str) -> String {
    path.split('.')
        .filter(|segment| !segment.is_empty() && !segment.starts_with("$__"))
        .collect::<Vec<_>>()
        .join(".")
}

/// Rewords serde's messages in the vocabulary of a configuration file.
fn explain(message: &str) -> String {
    let message = first_line(message);
    message
        .replace("unknown field", "unknown key")
        .replace("missing field", "missing key")
        .replace(", expected one of ", " (expected one of: ")
        .replace(", expected ", " (expected ")
        .replace('`', "'")
        + if message.contains(", expected") {
            ")"
        } else {
            ""
        }
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or("").trim().to_string()
}

fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let dir = std::env::temp_dir();
        Config::parse(text, "flotilla.toml", &dir)
    }

    #[test]
    fn a_valid_file_resolves_paths_against_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("shop.db"), b"").unwrap();
        let text = "[sources.shop]\nkind = \"sqlite\"\npath = \"shop.db\"\n";
        let config = Config::parse(text, "f.toml", dir.path()).unwrap();
        assert_eq!(
            config.sources["shop"],
            SourceConfig::Sqlite {
                path: dir.path().join("shop.db"),
                attach: vec![],
                pushdown: None,
            }
        );
    }

    #[test]
    fn unknown_keys_name_the_key_and_the_line() {
        let e = parse("[sources.shop]\nkind = \"sqlite\"\npth = \"x\"\n").unwrap_err();
        assert_eq!(e.position.map(|p| p.0), Some(3), "{e}");
        assert_eq!(e.key, "sources.shop.pth", "{e}");
        assert!(e.to_string().contains("unknown key 'pth'"), "{e}");
    }

    #[test]
    fn unknown_kinds_and_missing_files_are_reported_where_they_are() {
        let e = parse("\n[sources.x]\nkind = \"oracle\"\npath = \"x\"\n").unwrap_err();
        assert_eq!(e.position.map(|p| p.0), Some(3), "{e}");
        assert!(
            e.to_string().contains("unknown source kind 'oracle'"),
            "{e}"
        );
        let e =
            parse("[sources.x]\nkind = \"parquet\"\npath = \"/nonexistent/dir\"\n").unwrap_err();
        assert_eq!(e.position.map(|p| p.0), Some(3), "{e}");
        assert_eq!(e.key, "sources.x.path");
    }

    #[test]
    fn sqlite_sources_attach_further_files_as_schemas() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.db"), b"").unwrap();
        std::fs::write(dir.path().join("b.db"), b"").unwrap();
        let text = "[sources.s]\nkind = \"sqlite\"\npath = \"a.db\"\nattach = { old = \"b.db\" }\n";
        let config = Config::parse(text, "f.toml", dir.path()).unwrap();
        let SourceConfig::Sqlite { attach, .. } = &config.sources["s"] else {
            panic!()
        };
        assert_eq!(attach, &vec![("old".to_string(), dir.path().join("b.db"))]);
        let text =
            "[sources.s]\nkind = \"sqlite\"\npath = \"a.db\"\nattach = { old = \"zz.db\" }\n";
        let e = Config::parse(text, "f.toml", dir.path()).unwrap_err();
        assert_eq!(e.key, "sources.s.attach.old", "{e}");
        assert_eq!(e.position.map(|p| p.0), Some(4), "{e}");
    }

    #[test]
    fn the_server_section_lists_users_by_password_variable() {
        let config = parse(
            "[server]\nlisten = \"0.0.0.0:9000\"\n[[server.users]]\nname = \"ana\"\npassword_env = \"ANA_PW\"\n",
        )
        .unwrap();
        assert_eq!(config.server.listen.as_deref(), Some("0.0.0.0:9000"));
        assert_eq!(
            config.server.users,
            vec![UserConfig {
                name: "ana".into(),
                password: UserPassword::Env("ANA_PW".into())
            }]
        );
        let e = parse("[[server.users]]\nname = \"ana\"\npassword = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("password"), "{e}");
        let hash = flotilla_flightsql::password::hash("pw", 1000);
        let config = parse(&format!(
            "[[server.users]]\nname = \"bo\"\npassword_hash = \"{hash}\"\n"
        ))
        .unwrap();
        let UserPassword::Hash(password) = &config.server.users[0].password else {
            panic!("a hash");
        };
        assert!(password.matches("pw"));
        let e = parse("[[server.users]]\nname = \"bo\"\npassword_hash = \"sha1$x\"\n").unwrap_err();
        assert!(e.to_string().contains("password_hash"), "{e}");
        let e = parse("[[server.users]]\nname = \"bo\"\n").unwrap_err();
        assert!(e.to_string().contains("exactly one"), "{e}");
    }

    #[test]
    fn queries_wait_for_a_turn_only_with_a_limit_on_running_ones() {
        assert_eq!(parse("").unwrap().server.admission.max_running, 0);
        let config = parse("[server]\nmax_concurrent_queries = 4\n").unwrap();
        assert_eq!(
            config.server.admission,
            QueryAdmission {
                max_running: 4,
                max_queued: DEFAULT_MAX_QUEUED
            }
        );
        let config =
            parse("[server]\nmax_concurrent_queries = 4\nmax_queued_queries = 0\n").unwrap();
        assert_eq!(config.server.admission.max_queued, 0);
        let e = parse("[server]\nmax_queued_queries = 3\n").unwrap_err();
        assert_eq!(e.key, "server.max_queued_queries", "{e}");
        assert!(e.message.contains("max_concurrent_queries"), "{e}");
    }

    #[test]
    fn spans_are_exported_only_to_an_otlp_url() {
        assert_eq!(parse("").unwrap().server.otlp_endpoint, None);
        let config = parse("[server]\notlp_endpoint = \"http://collector:4317\"\n").unwrap();
        assert_eq!(
            config.server.otlp_endpoint.as_deref(),
            Some("http://collector:4317")
        );
        let e = parse("[server]\notlp_endpoint = \"collector:4317\"\n").unwrap_err();
        assert_eq!(e.key, "server.otlp_endpoint", "{e}");
        assert!(e.message.contains("http://host:4317"), "{e}");
        assert!(e.to_string().contains(":2"), "located: {e}");
    }

    #[test]
    fn pushdown_defaults_to_cost_and_takes_modes_or_booleans() {
        assert_eq!(parse("").unwrap().pushdown, Pushdown::Cost);
        assert_eq!(
            parse("[federation]\npushdown = \"cost\"\n")
                .unwrap()
                .pushdown,
            Pushdown::Cost
        );
        assert_eq!(
            parse("[federation]\npushdown = false\n").unwrap().pushdown,
            Pushdown::None
        );
        assert_eq!(
            parse("[federation]\npushdown = true\n").unwrap().pushdown,
            Pushdown::All
        );
        assert_eq!(
            parse("[federation]\npushdown = \"all\"\n")
                .unwrap()
                .pushdown,
            Pushdown::All
        );
        let e = parse("[federation]\npushdown = \"some\"\n").unwrap_err();
        assert_eq!(e.key, "federation.pushdown", "{e}");
        assert!(e.to_string().contains("all, cost or none"), "{e}");
        let e = parse("[federation]\npushdwn = false\n").unwrap_err();
        assert_eq!(e.key, "federation.pushdwn", "{e}");
    }

    #[test]
    fn keys_of_another_kind_and_bad_values_are_errors() {
        let e =
            parse("[sources.x]\nkind = \"sqlite\"\npath = \".\"\ndelimiter = \";\"\n").unwrap_err();
        assert_eq!(e.key, "sources.x.delimiter", "{e}");
        let e =
            parse("[sources.x]\nkind = \"csv\"\npath = \".\"\nhas_header = \"yes\"\n").unwrap_err();
        assert_eq!(e.position.map(|p| p.0), Some(4), "{e}");
    }

    #[test]
    fn database_sources_take_a_connection_limit_from_1_to_10000() {
        let text = "[sources.pg]\nkind = \"postgres\"\nurl = \"host=h\"\nmax_connections = 4\n\
                    [sources.lite]\nkind = \"sqlite\"\npath = \".\"\n";
        let config = parse(text).unwrap();
        assert_eq!(
            config.max_connections.into_iter().collect::<Vec<_>>(),
            [("pg".to_string(), 4)]
        );
        for bad in ["0", "-2", "10001"] {
            let e = parse(&format!(
                "[sources.pg]\nkind = \"postgres\"\nurl = \"host=h\"\nmax_connections = {bad}\n"
            ))
            .unwrap_err();
            assert_eq!(
                (e.key.as_str(), e.position.map(|p| p.0)),
                ("sources.pg.max_connections", Some(4)),
                "{e}"
            );
            assert!(e.message.contains("from 1 to 10000"), "{e}");
        }
        let e = parse("[sources.files]\nkind = \"parquet\"\npath = \".\"\nmax_connections = 2\n")
            .unwrap_err();
        assert_eq!(e.key, "sources.files.max_connections", "{e}");
    }

    #[test]
    fn postgres_sources_take_a_url_and_type_options() {
        let text = "[sources.pg]\nkind = \"postgres\"\nurl = \"postgresql://me@db:5433/shop\"\n\
                    password_env = \"PG_PASS\"\nnumeric = \"float\"\nunsupported_types = \"skip\"\n\
                    pushdown = \"all\"\n";
        let config = parse(text).unwrap();
        assert_eq!(
            config.sources["pg"],
            SourceConfig::Postgres {
                url: "postgresql://me@db:5433/shop".into(),
                password_env: Some("PG_PASS".into()),
                numeric: NumericMapping::Float,
                unsupported_types: UnsupportedTypes::Skip,
                tls_root_cert: None,
                pushdown: Some(Pushdown::All),
            }
        );
        let e = parse("[sources.pg]\nkind = \"postgres\"\nurl = \"host=h\"\npushdown = \"most\"\n")
            .unwrap_err();
        assert_eq!(
            (e.key.as_str(), e.position.map(|p| p.0)),
            ("sources.pg.pushdown", Some(4)),
            "{e}"
        );
        assert!(e.message.contains("all, cost or none"), "{e}");
        let e = parse(
            "[sources.pg]\nkind = \"postgres\"\nurl = \"host=h\"\ntls_root_cert = \"nowhere.pem\"\n",
        )
        .unwrap_err();
        assert_eq!(e.key, "sources.pg.tls_root_cert", "{e}");
        assert!(e.message.contains("does not exist"), "{e}");
        let e = parse("[sources.pg]\nkind = \"postgres\"\n").unwrap_err();
        assert!(e.message.contains("missing key 'url'"), "{e}");
        let e = parse("[sources.pg]\nkind = \"postgres\"\nurl = \"postgresql://h:port/d\"\n")
            .unwrap_err();
        assert_eq!(
            (e.key.as_str(), e.position.map(|p| p.0)),
            ("sources.pg.url", Some(3)),
            "{e}"
        );
        let e = parse(
            "[sources.pg]\nkind = \"postgres\"\nurl = \"host=h\"\nnumeric = \"decimal(40,2)\"\n",
        )
        .unwrap_err();
        assert_eq!(e.key, "sources.pg.numeric", "{e}");
        let e = parse("[sources.pg]\nkind = \"postgres\"\nurl = \"host=h\"\npath = \"x\"\n")
            .unwrap_err();
        assert!(
            e.message.contains("not a key of a 'postgres' source"),
            "{e}"
        );
        let text = "[sources.my]\nkind = \"mysql\"\nurl = \"mysql://u:p@h:3306/shop\"\n\
                    flavor = \"mariadb\"\nzero_dates = \"null\"\n";
        assert_eq!(
            parse(text).unwrap().sources["my"],
            SourceConfig::Mysql {
                url: "mysql://u:p@h:3306/shop".into(),
                password_env: None,
                flavor: Some(Flavor::MariaDb),
                zero_dates: ZeroDates::Null,
                unsupported_types: UnsupportedTypes::Error,
                tls_root_cert: None,
                pushdown: None,
            }
        );
        let e =
            parse("[sources.my]\nkind = \"mysql\"\nurl = \"mysql://h/d\"\nflavor = \"oracle\"\n")
                .unwrap_err();
        assert_eq!(e.key, "sources.my.flavor", "{e}");
        assert!(e.message.contains("mysql, mariadb, tidb"), "{e}");
        assert_eq!(
            parse_numeric("decimal(20, 4)"),
            Some(NumericMapping::Decimal(20, 4))
        );
    }

    #[test]
    fn session_options_are_kept_as_set_takes_them() {
        let text = "[session.options]\n\"distributed.results_from_workers\" = false\n\
                    \"datafusion.execution.batch_size\" = 4096\n\
                    \"distributed.compression\" = \"lz4\"\n";
        let options = parse(text).unwrap().session.options;
        assert_eq!(options["distributed.results_from_workers"], "false");
        assert_eq!(options["datafusion.execution.batch_size"], "4096");
        assert_eq!(options["distributed.compression"], "lz4");
        let e = parse("[session.options]\n\"x\" = [1]\n").unwrap_err();
        assert_eq!(e.key, "session.options.x", "{e}");
        assert_eq!(e.position.map(|(line, _)| line), Some(2), "{e}");
    }
}
