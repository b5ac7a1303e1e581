//! The raw shape of `flotilla.toml`, as serde reads it. Values that later checks report on keep
//! their spans.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) sources: BTreeMap<String, Spanned<RawSource>>,
    #[serde(default)]
    pub(super) session: RawSession,
    #[serde(default)]
    pub(super) federation: RawFederation,
    #[serde(default)]
    pub(super) server: RawServer,
    pub(super) cluster: Option<Spanned<RawCluster>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    pub(super) peers: Option<Vec<Spanned<String>>>,
    pub(super) peers_dns: Option<Spanned<String>>,
    pub(super) peers_file: Option<Spanned<String>>,
    pub(super) tls_root_cert: Option<Spanned<String>>,
    pub(super) secret_env: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) listen: Option<String>,
    pub(super) http_listen: Option<String>,
    pub(super) pg_listen: Option<String>,
    pub(super) memory_limit: Option<Spanned<String>>,
    pub(super) max_concurrent_queries: Option<usize>,
    pub(super) max_queued_queries: Option<Spanned<usize>>,
    #[serde(default)]
    pub(super) users: Vec<RawUser>,
    pub(super) session_idle_timeout: Option<u64>,
    pub(super) tls_cert: Option<Spanned<String>>,
    pub(super) tls_key: Option<Spanned<String>>,
    pub(super) otlp_endpoint: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUser {
    pub(super) name: String,
    pub(super) password_env: Option<String>,
    pub(super) password_hash: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFederation {
    pub(super) pushdown: Option<Spanned<RawPushdown>>,
}

/// `pushdown = "cost"`, or the boolean the key took before it had three values.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawPushdown {
    Flag(bool),
    Mode(String),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSession {
    pub(super) default_catalog: Option<String>,
    pub(super) default_schema: Option<String>,
    #[serde(default)]
    pub(super) options: BTreeMap<String, Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    pub(super) kind: Spanned<String>,
    pub(super) path: Option<Spanned<String>>,
    pub(super) delimiter: Option<Spanned<String>>,
    pub(super) has_header: Option<Spanned<bool>>,
    pub(super) attach: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    pub(super) url: Option<Spanned<String>>,
    pub(super) password_env: Option<Spanned<String>>,
    pub(super) numeric: Option<Spanned<String>>,
    pub(super) unsupported_types: Option<Spanned<String>>,
    pub(super) flavor: Option<Spanned<String>>,
    pub(super) zero_dates: Option<Spanned<String>>,
    pub(super) catalog: Option<Spanned<String>>,
    pub(super) user: Option<Spanned<String>>,
    pub(super) tls_root_cert: Option<Spanned<String>>,
    pub(super) database: Option<Spanned<String>>,
    pub(super) token_env: Option<Spanned<String>>,
    pub(super) pushdown: Option<Spanned<String>>,
    pub(super) max_connections: Option<Spanned<i64>>,
}

/// The kinds of source and the keys each accepts (besides `kind`).
pub(super) const KINDS: &[(&str, &[&str])] = &[
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
