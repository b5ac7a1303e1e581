//! `kind = "influxdb"` in flotilla.toml: one database of an InfluxDB server, over its v1 HTTP
//! API.

use crate::{Credentials, InfluxCatalog, InfluxClient};
use datafusion::catalog::{CatalogProvider, Session};
use flotilla_common::Result;
use flotilla_common::source_kind::{KeyError, SourceKind, from_env};
use serde::Deserialize;
use std::path::Path;
use std::sync::Arc;

/// The keys of a `[sources.<name>]` table of kind `influxdb`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfluxConfig {
    /// `http://host:8086`.
    pub url: String,
    /// The database whose measurements are the tables.
    pub database: String,
    /// An InfluxDB 1.x user (with `password_env`).
    pub user: Option<String>,
    pub password_env: Option<String>,
    /// An environment variable holding an InfluxDB 2.x/3 token.
    pub token_env: Option<String>,
}

impl SourceKind for InfluxConfig {
    const KIND: &'static str = "influxdb";

    fn check(&mut self, _: &Path) -> std::result::Result<(), KeyError> {
        if !self.url.starts_with("http://") {
            return Err(KeyError::new(
                "url",
                "an InfluxDB source is reached over http:// (https is not supported yet)",
            ));
        }
        if self.token_env.is_some() && self.password_env.is_some() {
            return Err(KeyError::new(
                "",
                "give a user with password_env, or token_env, not both",
            ));
        }
        Ok(())
    }

    async fn open(&self, name: &str, _: &dyn Session) -> Result<Arc<dyn CatalogProvider>> {
        let credentials = match (&self.user, &self.token_env) {
            (_, Some(_)) => {
                let token = from_env("token_env", self.token_env.as_deref())?;
                Credentials::Token(token.unwrap_or_default())
            }
            (Some(user), None) => Credentials::User {
                name: user.clone(),
                password: from_env("password_env", self.password_env.as_deref())?
                    .unwrap_or_default(),
            },
            (None, None) => Credentials::None,
        };
        let client = InfluxClient::new(name, &self.url, &self.database, &credentials)?;
        Ok(Arc::new(InfluxCatalog::connect(client).await?))
    }
}
