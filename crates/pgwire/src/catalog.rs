//! `pg_catalog` for the tools that read it: psql's `\d`, `\dt`, `\l`, and the metadata
//! queries of drivers and GUI tools, answered from the node's catalogs by
//! `datafusion-pg-catalog` (its tables — `pg_class`, `pg_namespace`, `pg_attribute`, … —
//! list every source's tables; its functions — `pg_table_is_visible`, `format_type`, … — and
//! its rewrites of PostgreSQL-only syntax such as `OPERATOR(pg_catalog.~)` and `::regclass`).
//!
//! ```text
//!  first connection: a session from the node ──▶ + pg_catalog schema, functions, type planner
//!                    = the template (kept; built again if building it failed)
//!  every connection: a session from the node (its own catalog list and session catalog)
//!                    ──▶ the template's state over that catalog list, the default catalog
//!                        seen through WithPgCatalog (the template's pg_catalog schema)
//! ```
//!
//! A query names `pg_catalog.pg_class` without a catalog, so the schema must be in the
//! session's default catalog — which may be a source's, shared by every session and read-only
//! (a Parquet directory) or a remote database's. Each session sees its default catalog through
//! [`WithPgCatalog`], which adds the schema without changing the catalog.
//!
//! The schema and its tables (decoded from PostgreSQL's own catalog contents, a few MB) are
//! built once per node, not per connection: the schema refers to the catalogs it lists, and
//! one per session would tie every session to itself and outlive it. It lists the sources'
//! tables; a session's own tables (catalog `datafusion`) are not in it.

use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::{CatalogProvider, SchemaProvider};
use datafusion::common::ScalarValue;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::prelude::SessionContext;
use datafusion_pg_catalog::pg_catalog::context::{PgCatalogContextProvider, Role};
use datafusion_pg_catalog::setup_pg_catalog;
use flotilla_common::{Error, Result};
use flotilla_flightsql::SessionProvider;
use std::sync::{Arc, Mutex, OnceLock};

const PG_CATALOG: &str = "pg_catalog";

/// The node's sessions, each with `pg_catalog` and PostgreSQL's catalog functions.
pub(crate) struct PgSessions {
    sessions: Arc<dyn SessionProvider>,
    template: Mutex<Option<Template>>,
    roles: NodeRoles,
}

/// The node's users as `pg_roles` lists them (psql's `\du`): each may log in; none is a
/// superuser or may create roles or databases (users are configured in flotilla.toml, not
/// with SQL). A node without users lists none.
#[derive(Debug, Clone)]
pub(crate) struct NodeRoles(Arc<Vec<String>>);

impl NodeRoles {
    pub fn new(names: impl IntoIterator<Item = String>) -> Self {
        let mut names: Vec<String> = names.into_iter().collect();
        names.sort();
        names.dedup();
        Self(Arc::new(names))
    }
}

#[async_trait::async_trait]
impl PgCatalogContextProvider for NodeRoles {
    async fn roles(&self) -> Vec<String> {
        self.0.as_ref().clone()
    }

    async fn role(&self, name: &str) -> Option<Role> {
        self.0.iter().any(|n| n == name).then(|| Role {
            name: name.to_string(),
            is_superuser: false,
            can_login: true,
            can_create_db: false,
            can_create_role: false,
            can_create_user: false,
            can_replication: false,
            grants: Vec::new(),
            inherited_roles: Vec::new(),
        })
    }
}

/// A session set up once with `pg_catalog`, whose state new sessions start from.
#[derive(Clone)]
struct Template {
    state: SessionState,
    pg_catalog: Arc<dyn SchemaProvider>,
}

impl PgSessions {
    pub fn new(sessions: Arc<dyn SessionProvider>, roles: NodeRoles) -> Self {
        Self {
            sessions,
            template: Mutex::new(None),
            roles,
        }
    }

    /// The template, built on first use.
    fn template(&self) -> Result<Template> {
        let mut template = self.template.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(template) = template.as_ref() {
            return Ok(template.clone());
        }
        let ctx = self.sessions.new_session()?;
        let default = default_catalog(&ctx);
        let catalog = with_pg_catalog(&ctx, &default, None)?;
        setup_pg_catalog(&ctx, &default, self.roles.clone()).map_err(|e| Error::from(*e))?;
        for function in missing_functions()
            .into_iter()
            .chain(crate::settings::functions())
            .chain(crate::information_schema::functions())
        {
            ctx.register_udf(function);
        }
        let pg_catalog = catalog
            .pg_catalog
            .get()
            .cloned()
            .ok_or_else(|| Error::internal("pg_catalog was not registered"))?;
        let built = Template {
            state: ctx.state(),
            pg_catalog,
        };
        *template = Some(built.clone());
        Ok(built)
    }
}

impl SessionProvider for PgSessions {
    fn new_session(&self) -> Result<SessionContext> {
        let template = self.template()?;
        let ctx = self.sessions.new_session()?;
        with_pg_catalog(&ctx, &default_catalog(&ctx), Some(template.pg_catalog))?;
        let state = SessionStateBuilder::new_from_existing(template.state)
            .with_session_id(ctx.session_id())
            .with_catalog_list(Arc::clone(ctx.state().catalog_list()))
            .build();
        Ok(SessionContext::new_with_state(state))
    }
}

fn default_catalog(ctx: &SessionContext) -> String {
    ctx.state()
        .config()
        .options()
        .catalog
        .default_catalog
        .clone()
}

/// Registers `ctx`'s catalog `name` again, seen through a [`WithPgCatalog`] that holds
/// `pg_catalog` (or takes the one registered later).
fn with_pg_catalog(
    ctx: &SessionContext,
    name: &str,
    pg_catalog: Option<Arc<dyn SchemaProvider>>,
) -> Result<Arc<WithPgCatalog>> {
    let inner = ctx
        .catalog(name)
        .ok_or_else(|| Error::invalid(format!("the default catalog '{name}' does not exist")))?;
    let schema = OnceLock::new();
    if let Some(pg_catalog) = pg_catalog {
        let _ = schema.set(pg_catalog);
    }
    let catalog = Arc::new(WithPgCatalog {
        inner,
        pg_catalog: schema,
    });
    ctx.register_catalog(name, Arc::clone(&catalog) as Arc<dyn CatalogProvider>);
    Ok(catalog)
}

/// A catalog as it is, with a `pg_catalog` schema besides.
#[derive(Debug)]
struct WithPgCatalog {
    inner: Arc<dyn CatalogProvider>,
    pg_catalog: OnceLock<Arc<dyn SchemaProvider>>,
}

impl CatalogProvider for WithPgCatalog {
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
    ) -> datafusion::common::Result<Option<Arc<dyn SchemaProvider>>> {
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
    ) -> datafusion::common::Result<Option<Arc<dyn SchemaProvider>>> {
        self.inner.deregister_schema(name, cascade)
    }
}

/// Catalog functions psql's `\df` calls that `datafusion-pg-catalog` lacks. Every function
/// `pg_proc` lists is PostgreSQL's own, in `pg_catalog` (Flotilla has no user functions), so
/// each is visible, and its argument and result types are not described.
fn missing_functions() -> Vec<ScalarUDF> {
    let of_oid = |name: &str, result: ScalarValue| {
        let value = result.clone();
        create_udf(
            name,
            vec![DataType::Int32],
            result.data_type(),
            Volatility::Stable,
            Arc::new(move |args: &[ColumnarValue]| {
                let rows = match args.first() {
                    Some(ColumnarValue::Array(oids)) => oids.len(),
                    _ => 1,
                };
                Ok(ColumnarValue::Array(value.to_array_of_size(rows)?))
            }),
        )
    };
    vec![
        of_oid("pg_function_is_visible", ScalarValue::Boolean(Some(true))),
        of_oid(
            "pg_get_function_arguments",
            ScalarValue::Utf8(Some(String::new())),
        ),
        of_oid(
            "pg_get_function_result",
            ScalarValue::Utf8(Some(String::new())),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_flightsql::SharedCatalogs;

    fn sessions() -> PgSessions {
        let base = SessionContext::new();
        PgSessions::new(
            Arc::new(SharedCatalogs::new(&base)),
            NodeRoles::new(["reader".to_string(), "analyst".to_string()]),
        )
    }

    #[tokio::test]
    async fn sessions_share_pg_catalog_and_each_is_freed_when_it_ends() {
        let sessions = sessions();
        let first = sessions.new_session().unwrap();
        let second = sessions.new_session().unwrap();
        let schema = |ctx: &SessionContext| ctx.catalog("datafusion")?.schema(PG_CATALOG);
        let (a, b) = (schema(&first).unwrap(), schema(&second).unwrap());
        assert!(Arc::ptr_eq(&a, &b), "each session built its own pg_catalog");
        assert_ne!(first.session_id(), second.session_id());

        let rows = first
            .sql("SELECT relname FROM pg_catalog.pg_class WHERE relname = 'pg_class'")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
        // The node's users are its roles.
        let roles = first
            .sql("SELECT rolname, rolcanlogin, rolsuper FROM pg_catalog.pg_roles ORDER BY 1")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&roles)
            .unwrap()
            .to_string();
        assert!(
            text.contains("| analyst | true        | false    |")
                && text.contains("| reader  | true        | false    |"),
            "{text}"
        );

        // pg_catalog refers to the catalogs it lists: a schema of each session's own would hold
        // that session's catalogs for ever.
        let catalogs = Arc::downgrade(second.state().catalog_list());
        drop(second);
        assert!(
            catalogs.upgrade().is_none(),
            "an ended session is still held"
        );
    }
}
