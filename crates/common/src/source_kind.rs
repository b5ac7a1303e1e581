//! A kind of source as `flotilla.toml` names it (`kind = "postgres"`): the keys of its
//! `[sources.<name>]` table and how a source of that kind opens as a catalog.
//!
//! Each connector crate owns its kind: a struct serde reads the table into (an unknown key or a
//! value of the wrong type is an error the node's configuration reports at its line), a check
//! of what the types cannot say, and the opening. The node wires a kind in with one line.

use crate::Result;
use datafusion::catalog::{CatalogProvider, Session};
use serde::de::DeserializeOwned;
use std::fmt::{self, Debug};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One kind of source: the options of its `[sources.<name>]` table (every key but `kind`).
pub trait SourceKind: DeserializeOwned + Clone + Debug + PartialEq + Send + Sync + 'static {
    /// The `kind = "…"` that selects these options.
    const KIND: &'static str;

    /// Checks what the table's types cannot say (a file exists, a URL parses) and makes the
    /// relative paths absolute against `base`, the configuration file's directory.
    ///
    /// # Errors
    /// A [`KeyError`] naming the key at fault.
    fn check(&mut self, base: &Path) -> std::result::Result<(), KeyError>;

    /// Opens the source, whose catalog is named `name`, in the runtime of `session`.
    ///
    /// # Errors
    /// When the source cannot be reached or its tables cannot be listed.
    fn open(
        &self,
        name: &str,
        session: &dyn Session,
    ) -> impl Future<Output = Result<Arc<dyn CatalogProvider>>> + Send;
}

/// A value of a source's table that its kind refuses: the key (relative to the table, e.g.
/// `url` or `attach.archive`; empty for the table as a whole) and why.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyError {
    pub key: String,
    pub message: String,
}

impl KeyError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.key.as_str() {
            "" => f.write_str(&self.message),
            key => write!(f, "{key}: {}", self.message),
        }
    }
}

impl std::error::Error for KeyError {}

/// Makes `path` (the value of `key`) absolute against `base`; it must exist.
///
/// # Errors
/// When nothing is at the resolved path.
pub fn existing_path(
    base: &Path,
    path: &mut PathBuf,
    key: &str,
) -> std::result::Result<(), KeyError> {
    *path = base.join(&*path);
    if path.exists() {
        Ok(())
    } else {
        Err(KeyError::new(
            key,
            format!("{} does not exist", path.display()),
        ))
    }
}

/// [`existing_path`] for a key that may be absent.
///
/// # Errors
/// When the key is given and nothing is at the resolved path.
pub fn existing_optional_path(
    base: &Path,
    path: &mut Option<PathBuf>,
    key: &str,
) -> std::result::Result<(), KeyError> {
    match path {
        Some(path) => existing_path(base, path, key),
        None => Ok(()),
    }
}

/// The value of the environment variable a `…_env` key names (`key`), if one is named.
///
/// # Errors
/// When the variable is not set.
pub fn from_env(key: &str, variable: Option<&str>) -> Result<Option<String>> {
    let Some(variable) = variable else {
        return Ok(None);
    };
    std::env::var(variable).map(Some).map_err(|_| {
        crate::Error::invalid(format!(
            "{key}: the environment variable {variable} is not set"
        ))
    })
}
