//! `pg_catalog` for the tools that read it: psql's `\d`, `\dt`, `\l`, and the metadata
//! queries of drivers and GUI tools, answered from the session's catalogs by
//! `datafusion-pg-catalog` (its tables — `pg_class`, `pg_namespace`, `pg_attribute`, … —
//! list every source's tables; its functions — `pg_table_is_visible`, `format_type`, … — and
//! its rewrites of PostgreSQL-only syntax such as `OPERATOR(pg_catalog.~)` and `::regclass`).
//!
//! A query names `pg_catalog.pg_class` without a catalog, so the schema must be in the
//! session's default catalog — which may be a source's, shared by every session and read-only
//! (a Parquet directory) or a remote database's. The connection's session sees its default
//! catalog through [`WithPgCatalog`], which adds the schema for this session only.

use datafusion::catalog::{CatalogProvider, SchemaProvider};
use datafusion::common::Result;
use datafusion::prelude::SessionContext;
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::setup_pg_catalog;
use std::any::Any;
use std::sync::{Arc, OnceLock};

const PG_CATALOG: &str = "pg_catalog";

/// `ctx` with `pg_catalog` in its default catalog and PostgreSQL's catalog functions.
pub(crate) fn add_pg_catalog(ctx: &SessionContext) -> Result<()> {
    let name = ctx.state().config().options().catalog.default_catalog.clone();
    let inner = ctx.catalog(&name).ok_or_else(|| {
        datafusion::error::DataFusionError::Plan(format!(
            "the default catalog '{name}' does not exist"
        ))
    })?;
    ctx.register_catalog(
        &name,
        Arc::new(WithPgCatalog {
            inner,
            pg_catalog: OnceLock::new(),
        }),
    );
    setup_pg_catalog(ctx, &name, EmptyContextProvider).map_err(|e| *e)
}

/// A catalog as it is, with a `pg_catalog` schema of one session's own.
#[derive(Debug)]
struct WithPgCatalog {
    inner: Arc<dyn CatalogProvider>,
    pg_catalog: OnceLock<Arc<dyn SchemaProvider>>,
}

impl CatalogProvider for WithPgCatalog {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema_names(&self) -> Vec<String> {
        let mut names = self.inner.schema_names();
        if self.pg_catalog.get().is_some() && !names.iter().any(|n| n == PG_CATALOG) {
            names.push(PG_CATALOG.to_string());
        }
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        match (name, self.pg_catalog.get()) {
            (PG_CATALOG, Some(schema)) => Some(Arc::clone(schema)),
            _ => self.inner.schema(name),
        }
    }

    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        if name != PG_CATALOG {
            return self.inner.register_schema(name, schema);
        }
        let _ = self.pg_catalog.set(schema);
        Ok(None)
    }

    fn deregister_schema(
        &self,
        name: &str,
        cascade: bool,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        self.inner.deregister_schema(name, cascade)
    }
}
