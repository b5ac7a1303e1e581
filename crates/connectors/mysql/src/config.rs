//! `kind = "mysql"` in flotilla.toml: a MySQL, MariaDB or TiDB server.

use crate::{Flavor, MysqlOptions, MysqlSource, UnsupportedTypes, ZeroDates, check_url};
use datafusion::catalog::{CatalogProvider, Session};
use flotilla_common::Result;
use flotilla_common::source_kind::{KeyError, SourceKind, existing_optional_path, from_env};
use flotilla_federation::{MaxConnections, Pushdown};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The keys of a `[sources.<name>]` table of kind `mysql`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlConfig {
    /// `mysql://user@host:3306/database` (every database of the server without one).
    pub url: String,
    /// An environment variable holding the password (kept out of the file).
    pub password_env: Option<String>,
    /// The server kind; detected from `VERSION()` when `None`.
    pub flavor: Option<Flavor>,
    #[serde(default)]
    pub zero_dates: ZeroDates,
    #[serde(default)]
    pub unsupported_types: UnsupportedTypes,
    /// A CA certificate file to check the server's certificate against (turns TLS on).
    pub tls_root_cert: Option<PathBuf>,
    /// How much of a query this source takes when the session's pushdown is `cost`.
    pub pushdown: Option<Pushdown>,
    /// How many statements run at once on a node (`None`: no limit).
    pub max_connections: Option<MaxConnections>,
}

impl MysqlConfig {
    /// The server at `url`, with the default options.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            password_env: None,
            flavor: None,
            zero_dates: ZeroDates::default(),
            unsupported_types: UnsupportedTypes::default(),
            tls_root_cert: None,
            pushdown: None,
            max_connections: None,
        }
    }
}

impl SourceKind for MysqlConfig {
    const KIND: &'static str = "mysql";

    fn check(&mut self, base: &Path) -> std::result::Result<(), KeyError> {
        check_url(&self.url).map_err(|e| {
            KeyError::new(
                "url",
                format!("not a connection URL like mysql://user@host:3306/database: {e}"),
            )
        })?;
        existing_optional_path(base, &mut self.tls_root_cert, "tls_root_cert")
    }

    async fn open(&self, name: &str, _: &dyn Session) -> Result<Arc<dyn CatalogProvider>> {
        let password = from_env("password_env", self.password_env.as_deref())?;
        let options = MysqlOptions {
            flavor: self.flavor,
            zero_dates: self.zero_dates,
            unsupported_types: self.unsupported_types,
            tls_root_cert: self.tls_root_cert.clone(),
        };
        let source = MysqlSource::new(name, &self.url, password.as_deref(), options)?;
        flotilla_federation::configured_catalog(
            Arc::new(source),
            self.pushdown,
            self.max_connections,
        )
        .await
    }
}
