//! `kind = "sqlite"` in flotilla.toml: a database file, with further files attached as
//! schemas.

use crate::SqliteSource;
use datafusion::catalog::{CatalogProvider, Session};
use flotilla_common::Result;
use flotilla_common::source_kind::{KeyError, SourceKind, existing_path};
use flotilla_federation::{MaxConnections, Pushdown};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The keys of a `[sources.<name>]` table of kind `sqlite`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteConfig {
    /// The database file (relative to the configuration file).
    pub path: PathBuf,
    /// `attach = { archive = "archive.db" }`: further files, each as a schema of that name.
    #[serde(default)]
    pub attach: BTreeMap<String, PathBuf>,
    /// How much of a query this source takes when the session's pushdown is `cost` (`None`:
    /// the cost model chooses).
    pub pushdown: Option<Pushdown>,
    /// How many statements run at once on a node (`None`: no limit).
    pub max_connections: Option<MaxConnections>,
}

impl SqliteConfig {
    /// The file at `path`, nothing attached, no hints.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            attach: BTreeMap::new(),
            pushdown: None,
            max_connections: None,
        }
    }
}

impl SourceKind for SqliteConfig {
    const KIND: &'static str = "sqlite";

    fn check(&mut self, base: &Path) -> std::result::Result<(), KeyError> {
        existing_path(base, &mut self.path, "path")?;
        for (schema, file) in &mut self.attach {
            existing_path(base, file, &format!("attach.{schema}"))?;
        }
        Ok(())
    }

    async fn open(&self, name: &str, _: &dyn Session) -> Result<Arc<dyn CatalogProvider>> {
        let attach: Vec<_> = self.attach.clone().into_iter().collect();
        let source = SqliteSource::open_attached(name, &self.path, &attach)?;
        flotilla_federation::configured_catalog(
            Arc::new(source),
            self.pushdown,
            self.max_connections,
        )
        .await
    }
}
