//! `kind = "flightsql"` in flotilla.toml: a remote Arrow Flight SQL endpoint.

use crate::{FlightSqlOptions, FlightSqlSource, check_url};
use datafusion::catalog::{CatalogProvider, Session};
use flotilla_common::source_kind::{KeyError, SourceKind, existing_optional_path, from_env};
use flotilla_common::{Error, Result};
use flotilla_federation::{MaxConnections, Pushdown};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The keys of a `[sources.<name>]` table of kind `flightsql`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlightSqlConfig {
    /// `grpc://host:port` or `grpc+tls://host:port`.
    pub url: String,
    /// The remote catalog to expose (default: the endpoint's only one).
    pub catalog: Option<String>,
    /// The user to sign in as (none: no handshake).
    pub user: Option<String>,
    /// An environment variable holding the password.
    pub password_env: Option<String>,
    /// For `grpc+tls://`: a CA certificate file to trust instead of the system's.
    pub tls_root_cert: Option<PathBuf>,
    /// How much of a query this source takes when the session's pushdown is `cost`.
    pub pushdown: Option<Pushdown>,
    /// How many statements run at once on a node (`None`: no limit).
    pub max_connections: Option<MaxConnections>,
}

impl SourceKind for FlightSqlConfig {
    const KIND: &'static str = "flightsql";

    fn check(&mut self, base: &Path) -> std::result::Result<(), KeyError> {
        check_url(&self.url).map_err(|e| KeyError::new("url", e.message()))?;
        existing_optional_path(base, &mut self.tls_root_cert, "tls_root_cert")
    }

    async fn open(&self, name: &str, _: &dyn Session) -> Result<Arc<dyn CatalogProvider>> {
        let tls_root_cert = match &self.tls_root_cert {
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|e| Error::from(e).with_source(path.display().to_string()))?,
            ),
            None => None,
        };
        let options = FlightSqlOptions {
            tls_root_cert,
            catalog: self.catalog.clone(),
            user: self.user.clone(),
            password: from_env("password_env", self.password_env.as_deref())?,
        };
        let source = FlightSqlSource::connect(name, &self.url, options).await?;
        flotilla_federation::configured_catalog(
            Arc::new(source),
            self.pushdown,
            self.max_connections,
        )
        .await
    }
}
