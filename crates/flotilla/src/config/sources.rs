//! `[sources.<name>]`: each kind of source and its keys, checked where they are written.

use super::ConfigError;
use super::located::Located;
use super::raw::{KINDS, RawSource};
use flotilla_connectors_mysql::{Flavor, ZeroDates};
use flotilla_connectors_postgres::{NumericMapping, UnsupportedTypes};
use flotilla_federation::config::Pushdown;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

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

/// The source `name` as written, checked: its configuration and its connection limit
/// (`max_connections`, kept apart from the kinds: every database source takes it).
pub(super) fn source(
    name: &str,
    raw_source: Spanned<RawSource>,
    at: &Located<'_>,
    base: &Path,
) -> Result<(SourceConfig, Option<usize>), ConfigError> {
    let r = Reading {
        name,
        span: raw_source.span(),
        at,
        base,
    };
    let error = |span, key, message| at.error(span, key, message);
    let key = |k: &str| r.key(k);
    let mut max_connections = None;
    let raw_source = raw_source.into_inner();
    let kind_text = raw_source.kind.get_ref().clone();
    let kind = kind_text.as_str();
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
        max_connections = Some(n);
    }
    let source = match kind {
        "influxdb" => influxdb(&r, raw_source)?,
        "flightsql" => flightsql(&r, raw_source, pushdown)?,
        "postgres" | "mysql" => database(&r, kind, raw_source, pushdown)?,
        _ => files(&r, kind, raw_source, pushdown)?,
    };
    Ok((source, max_connections))
}

/// A source being read: its name, where it is written, and the file's directory.
struct Reading<'a> {
    name: &'a str,
    span: Range<usize>,
    at: &'a Located<'a>,
    base: &'a Path,
}

impl Reading<'_> {
    /// An error about the source as a whole (a key it lacks, keys that exclude each other).
    fn whole(&self, message: impl Into<String>) -> ConfigError {
        self.at.error(
            Some(self.span.clone()),
            format!("sources.{}", self.name),
            message.into(),
        )
    }

    /// The path of key `k` of this source.
    fn key(&self, k: &str) -> String {
        format!("sources.{}.{k}", self.name)
    }

    /// A file the source reads (`tls_root_cert`), relative to the configuration file; it must
    /// exist.
    fn existing_file(
        &self,
        file: &Option<Spanned<String>>,
    ) -> Result<Option<PathBuf>, ConfigError> {
        let Some(file) = file else {
            return Ok(None);
        };
        let path = self.base.join(file.get_ref());
        if path.is_file() {
            Ok(Some(path))
        } else {
            Err(self.at.error(
                Some(file.span()),
                self.key("tls_root_cert"),
                format!("{} does not exist", path.display()),
            ))
        }
    }
}

/// `kind = "influxdb"`.
fn influxdb(r: &Reading<'_>, raw_source: RawSource) -> Result<SourceConfig, ConfigError> {
    let missing = |what: &str| {
        r.whole(format!(
            "missing key '{what}' (e.g. {what} = {})",
            match what {
                "url" => "\"http://localhost:8086\"",
                _ => "\"telegraf\"",
            }
        ))
    };
    let url = raw_source.url.ok_or_else(|| missing("url"))?;
    let database = raw_source.database.ok_or_else(|| missing("database"))?;
    if !url.get_ref().starts_with("http://") {
        return Err(r.at.error(
            Some(url.span()),
            r.key("url"),
            "an InfluxDB source is reached over http:// (https is not supported yet)".into(),
        ));
    }
    if raw_source.token_env.is_some() && raw_source.password_env.is_some() {
        return Err(r.whole("give a user with password_env, or token_env, not both"));
    }
    let source = SourceConfig::Influxdb {
        url: url.into_inner(),
        database: database.into_inner(),
        user: raw_source.user.map(|v| v.into_inner()),
        password_env: raw_source.password_env.map(|v| v.into_inner()),
        token_env: raw_source.token_env.map(|v| v.into_inner()),
    };
    Ok(source)
}

/// `kind = "flightsql"`.
fn flightsql(
    r: &Reading<'_>,
    raw_source: RawSource,
    pushdown: Option<Pushdown>,
) -> Result<SourceConfig, ConfigError> {
    let Some(url) = raw_source.url else {
        return Err(r.whole("missing key 'url' (e.g. url = \"grpc://other-node:50051\")"));
    };
    if let Err(e) = flotilla_connectors_flightsql::check_url(url.get_ref()) {
        return Err(r.at.error(Some(url.span()), r.key("url"), e.to_string()));
    }
    let tls_root_cert = r.existing_file(&raw_source.tls_root_cert)?;
    let source = SourceConfig::FlightSql {
        tls_root_cert,
        url: url.into_inner(),
        catalog: raw_source.catalog.map(|v| v.into_inner()),
        user: raw_source.user.map(|v| v.into_inner()),
        password_env: raw_source.password_env.map(|v| v.into_inner()),
        pushdown,
    };
    Ok(source)
}

/// `kind = "postgres"` or `"mysql"`.
fn database(
    r: &Reading<'_>,
    kind: &str,
    raw_source: RawSource,
    pushdown: Option<Pushdown>,
) -> Result<SourceConfig, ConfigError> {
    let example = match kind {
        "postgres" => "postgresql://user@host:5432/database",
        _ => "mysql://user@host:3306/database",
    };
    let Some(url) = raw_source.url else {
        return Err(r.whole(format!("missing key 'url' (e.g. url = \"{example}\")")));
    };
    let checked = match kind {
        "postgres" => flotilla_connectors_postgres::check_url(url.get_ref()),
        _ => flotilla_connectors_mysql::check_url(url.get_ref()),
    };
    if let Err(e) = checked {
        return Err(r.at.error(
            Some(url.span()),
            r.key("url"),
            format!("not a connection URL like {example}: {e}"),
        ));
    }
    let choice = |field: &str, value: &Option<Spanned<String>>, allowed: &[&str]| match value {
        Some(v) if !allowed.contains(&v.get_ref().as_str()) => Err(r.at.error(
            Some(v.span()),
            r.key(field),
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
    let tls_root_cert = r.existing_file(&raw_source.tls_root_cert)?;
    let source = if kind == "postgres" {
        let numeric = match &raw_source.numeric {
            None => NumericMapping::default(),
            Some(v) => parse_numeric(v.get_ref()).ok_or_else(|| {
                r.at.error(
                    Some(v.span()),
                    r.key("numeric"),
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
            match choice("flavor", &raw_source.flavor, &["mysql", "mariadb", "tidb"])?.as_deref() {
                Some("mysql") => Some(Flavor::MySql),
                Some("mariadb") => Some(Flavor::MariaDb),
                Some("tidb") => Some(Flavor::TiDb),
                _ => None,
            };
        let zero_dates =
            match choice("zero_dates", &raw_source.zero_dates, &["error", "null"])?.as_deref() {
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
    Ok(source)
}

/// `kind = "sqlite"`, `"parquet"` or `"csv"`: files.
fn files(
    r: &Reading<'_>,
    kind: &str,
    raw_source: RawSource,
    pushdown: Option<Pushdown>,
) -> Result<SourceConfig, ConfigError> {
    let Some(raw_path) = raw_source.path else {
        return Err(r.whole("missing key 'path'"));
    };
    let path = r.base.join(raw_path.get_ref());
    if !path.exists() {
        return Err(r.at.error(
            Some(raw_path.span()),
            r.key("path"),
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
                let file_path = r.base.join(file.get_ref());
                if !file_path.is_file() {
                    return Err(r.at.error(
                        Some(file.span()),
                        r.key(&format!("attach.{schema}")),
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
                    return Err(r.at.error(
                        Some(d.span()),
                        r.key("delimiter"),
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
    Ok(source)
}

/// `float` or `decimal(P,S)`.
pub(super) fn parse_numeric(text: &str) -> Option<NumericMapping> {
    let text = text.trim().to_ascii_lowercase();
    if text == "float" {
        return Some(NumericMapping::Float);
    }
    let inner = text.strip_prefix("decimal(")?.strip_suffix(')')?;
    let (p, s) = inner.split_once(',')?;
    let (p, s): (u8, i8) = (p.trim().parse().ok()?, s.trim().parse().ok()?);
    ((1..=38).contains(&p) && s >= 0 && s as u8 <= p).then_some(NumericMapping::Decimal(p, s))
}
