//! The catalog of a source: names listed up front, tables described on first use, both cached
//! until [`SourceCatalog::refresh`].
//!
//! Opening a catalog asks the source for the names of its schemas and tables only (one cheap
//! catalog query); a table's columns, types and row estimate are fetched when a query first names
//! it, and kept. A name the cached listing does not know triggers one new listing, so a table
//! created after startup is found without a refresh. A table dropped remotely is noticed when it
//! is described (it is then unknown) or, if it was described before, when a query reads it (an
//! error naming the source and the table).

use crate::config::{MaxConnections, Pushdown};
use crate::source::{
    CONNECTION_WAIT, Source, TableName, with_connection_limit, with_learning, with_pushdown,
};
use crate::table::FederatedTable;
use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::common::Result as DfResult;
use datafusion::datasource::TableType;
use flotilla_common::{Error, Result};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// A source's tables as DataFusion catalog → schemas → tables. Clones share one listing.
#[derive(Debug, Clone)]
pub struct SourceCatalog {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    source: Arc<dyn Source>,
    listing: RwLock<Listing>,
}

/// What is known of the source: schema → table → entry.
#[derive(Debug, Default)]
struct Listing {
    schemas: BTreeMap<String, BTreeMap<String, Entry>>,
}

#[derive(Debug, Clone)]
struct Entry {
    table_type: TableType,
    /// Set once the table has been described.
    table: Option<Arc<FederatedTable>>,
}

impl SourceCatalog {
    /// Lists `source`'s schemas and tables (names only).
    ///
    /// # Errors
    /// When the source cannot be reached; the error names it.
    pub async fn open(source: Arc<dyn Source>) -> Result<Self> {
        let listing = list(source.as_ref()).await?;
        Ok(Self {
            shared: Arc::new(Shared {
                source,
                listing: RwLock::new(listing),
            }),
        })
    }

    /// The source behind the catalog.
    pub fn source(&self) -> &Arc<dyn Source> {
        &self.shared.source
    }

    /// Lists the source again and forgets every description, so the next query sees tables,
    /// columns and row counts as they are now. Plans already made keep what they read.
    ///
    /// # Errors
    /// When the source cannot be reached; the cached listing is then kept.
    pub async fn refresh(&self) -> Result<()> {
        let listing = list(self.shared.source.as_ref()).await?;
        *self.shared.write() = listing;
        Ok(())
    }

    /// The table `schema.name`, described (from the cache or the source); `None` when the
    /// source has no such table.
    ///
    /// # Errors
    /// When the source cannot be reached or the table cannot be described.
    pub async fn table_in(&self, schema: &str, name: &str) -> Result<Option<Arc<FederatedTable>>> {
        self.shared.table(schema, name).await
    }

    /// Whether the source has the schema `name` (as last listed).
    pub fn has_schema(&self, name: &str) -> bool {
        self.shared.read().schemas.contains_key(name)
    }

    /// The names of the source's schemas, comma-separated (for messages).
    pub fn schema_names_joined(&self) -> String {
        let listing = self.shared.read();
        let names: Vec<&str> = listing.schemas.keys().map(String::as_str).collect();
        names.join(", ")
    }

    /// How many tables have been described (and cached) so far.
    pub fn described_count(&self) -> usize {
        let listing = self.shared.read();
        listing
            .schemas
            .values()
            .flat_map(|tables| tables.values())
            .filter(|entry| entry.table.is_some())
            .count()
    }
}

async fn list(source: &dyn Source) -> Result<Listing> {
    let with_name = |e: Error| match e.source_name() {
        Some(_) => e,
        None => e.with_source(source.name()),
    };
    let mut listing = Listing::default();
    for schema in source.schemas().await.map_err(with_name)? {
        listing.schemas.entry(schema).or_default();
    }
    for TableName {
        schema,
        name,
        table_type,
    } in source.tables().await.map_err(with_name)?
    {
        let entry = Entry {
            table_type,
            table: None,
        };
        listing
            .schemas
            .entry(schema)
            .or_default()
            .insert(name, entry);
    }
    Ok(listing)
}

impl Shared {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Listing> {
        // A panic while holding the lock cannot leave the listing half-written (every write
        // replaces whole values), so a poisoned lock is still usable.
        self.listing.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Listing> {
        self.listing.write().unwrap_or_else(|e| e.into_inner())
    }

    fn entry(&self, schema: &str, table: &str) -> Option<Entry> {
        self.read().schemas.get(schema)?.get(table).cloned()
    }

    /// Lists the source again, keeping the descriptions of tables still there.
    async fn relist(&self) -> Result<()> {
        let mut fresh = list(self.source.as_ref()).await?;
        let mut listing = self.write();
        for (schema, tables) in &mut fresh.schemas {
            for (name, entry) in tables.iter_mut() {
                if let Some(old) = listing.schemas.get(schema).and_then(|t| t.get(name)) {
                    entry.table.clone_from(&old.table);
                }
            }
        }
        *listing = fresh;
        Ok(())
    }

    async fn table(&self, schema: &str, name: &str) -> Result<Option<Arc<FederatedTable>>> {
        let entry = match self.entry(schema, name) {
            Some(entry) => entry,
            None => {
                self.relist().await?;
                match self.entry(schema, name) {
                    Some(entry) => entry,
                    None => return Ok(None),
                }
            }
        };
        if let Some(table) = entry.table {
            return Ok(Some(table));
        }
        let described =
            self.source
                .describe(schema, name)
                .await
                .map_err(|e| match e.source_name() {
                    Some(_) => e,
                    None => e.with_source(self.source.name()),
                })?;
        let mut listing = self.write();
        let Some(remote) = described else {
            // Dropped since it was listed.
            if let Some(tables) = listing.schemas.get_mut(schema) {
                tables.remove(name);
            }
            return Ok(None);
        };
        let table = Arc::new(FederatedTable::new(Arc::clone(&self.source), remote));
        listing
            .schemas
            .entry(schema.to_string())
            .or_default()
            .insert(
                name.to_string(),
                Entry {
                    table_type: entry.table_type,
                    table: Some(Arc::clone(&table)),
                },
            );
        Ok(Some(table))
    }
}

impl CatalogProvider for SourceCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.shared.read().schemas.keys().cloned().collect()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if !self.shared.read().schemas.contains_key(name) {
            return None;
        }
        Some(Arc::new(SourceSchema {
            shared: Arc::clone(&self.shared),
            schema: name.to_string(),
        }))
    }
}

/// One schema of a [`SourceCatalog`].
#[derive(Debug)]
struct SourceSchema {
    shared: Arc<Shared>,
    schema: String,
}

#[async_trait]
impl SchemaProvider for SourceSchema {
    fn table_names(&self) -> Vec<String> {
        self.shared
            .read()
            .schemas
            .get(&self.schema)
            .map(|tables| tables.keys().cloned().collect())
            .unwrap_or_default()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let table = self
            .shared
            .table(&self.schema, name)
            .await
            .map_err(Error::into_datafusion)?;
        Ok(table.map(|t| t as Arc<dyn TableProvider>))
    }

    async fn table_type(&self, name: &str) -> DfResult<Option<TableType>> {
        Ok(self
            .shared
            .entry(&self.schema, name)
            .map(|entry| entry.table_type))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.shared.entry(&self.schema, name).is_some()
    }
}

/// Opens the catalog of `source` (see [`SourceCatalog`]).
///
/// # Errors
/// When the source cannot be reached; the error names it.
pub async fn catalog_of(source: Arc<dyn Source>) -> Result<Arc<SourceCatalog>> {
    Ok(Arc::new(SourceCatalog::open(source).await?))
}

/// Opens the catalog of a configured `source`: with the pushdown and the connection limit its
/// table in flotilla.toml gives it (if any), learning its speed from the statements this node
/// runs there.
///
/// # Errors
/// When the source cannot be reached; the error names it.
pub async fn configured_catalog(
    source: Arc<dyn Source>,
    pushdown: Option<Pushdown>,
    max_connections: Option<MaxConnections>,
) -> Result<Arc<dyn CatalogProvider>> {
    let source = with_learning(source);
    let source = match pushdown {
        Some(pushdown) => with_pushdown(source, pushdown),
        None => source,
    };
    let source = match max_connections {
        Some(MaxConnections(max)) => with_connection_limit(source, max, CONNECTION_WAIT),
        None => source,
    };
    let catalog: Arc<dyn CatalogProvider> = catalog_of(source).await?;
    Ok(catalog)
}
