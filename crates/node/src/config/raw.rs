//! The raw shape of `flotilla.toml` but its sources (each read by its kind, in sources.rs), as
//! serde reads it. Values that later checks report on keep their spans.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
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
