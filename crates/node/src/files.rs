//! `kind = "parquet"` and `kind = "csv"` in flotilla.toml: files DataFusion reads itself, one
//! table per file or sub-directory of the source's path, in the schema [`FILE_SCHEMA`].

use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider, Session,
};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use flotilla_common::source_kind::{KeyError, SourceKind, existing_path};
use flotilla_common::{Error, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The schema name under which file sources (Parquet, CSV) list their tables.
pub const FILE_SCHEMA: &str = "public";

/// The keys of a `[sources.<name>]` table of kind `parquet`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetConfig {
    /// A file (one table) or a directory (one table per file or sub-directory).
    pub path: PathBuf,
}

impl SourceKind for ParquetConfig {
    const KIND: &'static str = "parquet";

    fn check(&mut self, base: &Path) -> std::result::Result<(), KeyError> {
        existing_path(base, &mut self.path, "path")
    }

    async fn open(&self, _: &str, session: &dyn Session) -> Result<Arc<dyn CatalogProvider>> {
        let format = Arc::new(ParquetFormat::default());
        file_catalog(session, &self.path, format, ".parquet").await
    }
}

/// The keys of a `[sources.<name>]` table of kind `csv`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvConfig {
    /// A file (one table) or a directory (one table per file or sub-directory).
    pub path: PathBuf,
    /// One ASCII character (default `,`).
    #[serde(default = "comma")]
    pub delimiter: String,
    /// Whether the first line names the columns (default true).
    #[serde(default = "yes")]
    pub has_header: bool,
}

fn comma() -> String {
    ",".into()
}

fn yes() -> bool {
    true
}

impl SourceKind for CsvConfig {
    const KIND: &'static str = "csv";

    fn check(&mut self, base: &Path) -> std::result::Result<(), KeyError> {
        if !(self.delimiter.len() == 1 && self.delimiter.is_ascii()) {
            return Err(KeyError::new(
                "delimiter",
                format!("must be a single ASCII character, got '{}'", self.delimiter),
            ));
        }
        existing_path(base, &mut self.path, "path")
    }

    async fn open(&self, _: &str, session: &dyn Session) -> Result<Arc<dyn CatalogProvider>> {
        let format = Arc::new(
            CsvFormat::default()
                .with_delimiter(self.delimiter.as_bytes()[0])
                .with_has_header(self.has_header),
        );
        file_catalog(session, &self.path, format, ".csv").await
    }
}

/// A catalog with one schema, [`FILE_SCHEMA`], holding a listing table per data file or
/// sub-directory of `path` (or the one file `path` names).
async fn file_catalog(
    session: &dyn Session,
    path: &Path,
    format: Arc<dyn FileFormat>,
    extension: &str,
) -> Result<Arc<dyn CatalogProvider>> {
    let schema = MemorySchemaProvider::new();
    for (table, location) in table_locations(path, extension)? {
        let provider = listing_table(session, &location, Arc::clone(&format), extension).await?;
        schema.register_table(table, provider)?;
    }
    let catalog = MemoryCatalogProvider::new();
    catalog.register_schema(FILE_SCHEMA, Arc::new(schema))?;
    Ok(Arc::new(catalog))
}
/// Table names and their file or directory, sorted by name.
fn table_locations(path: &Path, extension: &str) -> Result<Vec<(String, PathBuf)>> {
    let table_name = |p: &Path| -> Option<String> {
        let name = p.file_name()?.to_str()?;
        Some(name.strip_suffix(extension).unwrap_or(name).to_string())
    };
    if path.is_file() {
        let name = table_name(path)
            .ok_or_else(|| Error::invalid(format!("{} has no usable file name", path.display())))?;
        return Ok(vec![(name, path.to_path_buf())]);
    }
    let mut tables = Vec::new();
    let entries = std::fs::read_dir(path)
        .map_err(|e| Error::from(e).with_source(path.display().to_string()))?;
    for entry in entries {
        let entry_path = entry?.path();
        let holds_data = if entry_path.is_dir() {
            std::fs::read_dir(&entry_path)?
                .filter_map(|e| e.ok())
                .any(|e| e.path().to_string_lossy().ends_with(extension))
        } else {
            entry_path.to_string_lossy().ends_with(extension)
        };
        if holds_data && let Some(name) = table_name(&entry_path) {
            tables.push((name, entry_path));
        }
    }
    tables.sort();
    Ok(tables)
}

async fn listing_table(
    session: &dyn Session,
    location: &Path,
    format: Arc<dyn FileFormat>,
    extension: &str,
) -> Result<Arc<ListingTable>> {
    let absolute = std::path::absolute(location)?;
    let mut url = absolute.to_string_lossy().to_string();
    if location.is_dir() && !url.ends_with('/') {
        url.push('/');
    }
    let url = ListingTableUrl::parse(&url)?;
    let options = ListingOptions::new(format).with_file_extension(extension);
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .infer_schema(session)
        .await
        .map_err(|e| Error::invalid(format!("reading {}: {e}", location.display())))?;
    Ok(Arc::new(ListingTable::try_new(config)?))
}
