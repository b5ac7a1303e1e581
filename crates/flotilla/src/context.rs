//! Building a DataFusion session over the configured sources.
//!
//! Each source becomes a catalog named after it:
//!
//! | kind      | schemas                                      | tables                          |
//! | --------- | -------------------------------------------- | ------------------------------- |
//! | `sqlite`  | SQLite's own: `main`, plus attached databases | every table and view            |
//! | `parquet` | `public`                                     | one per file or sub-directory   |
//! | `csv`     | `public`                                     | one per file or sub-directory   |
//! | `postgres`| the database's schemas (`public`, …)         | tables, views, materialized views, partitioned and foreign tables |
//! | `mysql`   | the URL's database (or every database)       | tables and views                |
//! | `flightsql` | the remote catalog's schemas               | the remote tables and views     |
//!
//! so a query names `shop.main.orders` or `lake.public.lineitem`. With `[session]
//! default_catalog` / `default_schema` set, unqualified names resolve there.

use crate::config::{ClusterConfig, Config, Peers, SourceConfig};
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
    MemorySchemaProvider, SchemaProvider,
};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::context::SessionContext;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::SessionConfig;
use datafusion_proto::physical_plan::{
    ComposedPhysicalExtensionCodec, DefaultPhysicalExtensionCodec, PhysicalExtensionCodec,
};
use flotilla_common::{Error, Result};
use flotilla_connectors_flightsql::{FlightSqlOptions, FlightSqlSource};
use flotilla_connectors_influxdb::{
    Credentials as InfluxCredentials, InfluxAggregatePushdown, InfluxCatalog, InfluxClient,
    InfluxCodec,
};
use flotilla_connectors_mysql::{MysqlOptions, MysqlSource};
use flotilla_connectors_postgres::{PostgresOptions, PostgresSource};
use flotilla_connectors_sqlite::SqliteSource;
use flotilla_distributed::{
    ChannelCache, ClusterNodes, DefaultChannels, DistributedSessionStateBuilder, Distribution,
    DnsWorkers, FileWorkers, NetworkContext, StaticWorkers, Worker, WorkerDiscovery,
};
use flotilla_federation::FederationCodec;
use flotilla_federation::{CONNECTION_WAIT, Pushdown, Source, SourceCatalog};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The schema name under which file sources (Parquet, CSV) list their tables.
pub const FILE_SCHEMA: &str = "public";

/// A session with every configured source registered as a catalog.
///
/// # Errors
/// When a source cannot be opened or its tables cannot be discovered; the error names the
/// source.
pub async fn build_context(config: &Config) -> Result<SessionContext> {
    let mut session_config = SessionConfig::new().with_information_schema(true);
    if let Some(catalog) = &config.session.default_catalog {
        let schema = config
            .session
            .default_schema
            .as_deref()
            .unwrap_or(FILE_SCHEMA);
        session_config = session_config.with_default_catalog_and_schema(catalog, schema);
    } else if let Some(schema) = &config.session.default_schema {
        session_config = session_config.with_default_catalog_and_schema("datafusion", schema);
    }
    let federation = flotilla_federation::FederationConfig {
        pushdown: config.pushdown,
        ..Default::default()
    };
    let catalogs: Arc<dyn CatalogProviderList> = Arc::new(MemoryCatalogProviderList::new());
    // One pool for every session and task of the node: what `[server] memory_limit` bounds.
    let mut runtime = RuntimeEnvBuilder::new();
    if let Some(bytes) = config.server.memory_limit {
        runtime = runtime.with_memory_pool(Arc::new(FairSpillPool::new(bytes)));
    }
    let builder = flotilla_federation::with_federation(
        SessionStateBuilder::new()
            .with_runtime_env(runtime.build_arc()?)
            .with_config(flotilla_flightsql::with_service_options(
                federation.add_to(session_config),
            ))
            .with_catalog_list(Arc::clone(&catalogs))
            .with_default_features(),
    )
    // Aggregates over InfluxDB measurements become InfluxQL (after filter pushdown).
    .with_optimizer_rule(Arc::new(InfluxAggregatePushdown));
    let mut nodes = None;
    let builder = match &config.cluster {
        // Distribution's rule comes last, after federation's.
        Some(cluster) => {
            let distribution = distribution(cluster, &catalogs)?;
            nodes = Some(ClusterNodes::new(
                Arc::clone(distribution.discovery()),
                Arc::clone(distribution.channels()),
            ));
            builder.with_distribution(distribution)
        }
        None => builder,
    };
    let mut state = builder.build();
    for (key, value) in &config.session.options {
        state
            .config_mut()
            .options_mut()
            .set(key, value)
            .map_err(|e| {
                if key.starts_with("distributed.") && config.cluster.is_none() {
                    Error::invalid(format!(
                        "session.options: {key} is an option of distributed queries, which \
                         need a [cluster]"
                    ))
                } else {
                    Error::invalid(format!("session.options: {key} = '{value}': {e}"))
                }
            })?;
    }
    let ctx = SessionContext::new_with_state(state);
    for (name, source) in &config.sources {
        let catalog = open_source(
            &ctx,
            name,
            source,
            config.max_connections.get(name).copied(),
        )
        .await
        .map_err(|e| match e.source_name() {
            Some(_) => e,
            None => e.with_source(name),
        })?;
        ctx.register_catalog(name, catalog);
    }
    if let Some(nodes) = nodes {
        register_system_tables(&ctx, nodes)?;
    }
    Ok(ctx)
}

/// The catalog of the node's own tables, `flotilla` (unless a source has that name).
pub const SYSTEM_CATALOG: &str = "flotilla";

/// Registers `flotilla.cluster.nodes`.
fn register_system_tables(ctx: &SessionContext, nodes: ClusterNodes) -> Result<()> {
    if ctx.catalog(SYSTEM_CATALOG).is_some() {
        return Ok(());
    }
    let schema = Arc::new(MemorySchemaProvider::new());
    schema.register_table("nodes".into(), Arc::new(nodes))?;
    let catalog = Arc::new(MemoryCatalogProvider::new());
    catalog.register_schema("cluster", schema)?;
    ctx.register_catalog(SYSTEM_CATALOG, catalog);
    Ok(())
}

/// The codec plans travel between nodes with: federated and InfluxDB scans by source name
/// (DataFusion tries each codec in turn and notes which one wrote a node; DataFusion's own,
/// last, refuses what none knows as it always has).
fn codec(catalogs: &Arc<dyn CatalogProviderList>) -> Arc<dyn PhysicalExtensionCodec> {
    Arc::new(ComposedPhysicalExtensionCodec::new(vec![
        Arc::new(FederationCodec::new(Arc::clone(catalogs))),
        Arc::new(InfluxCodec::new(Arc::clone(catalogs))),
        Arc::new(DefaultPhysicalExtensionCodec {}),
    ]))
}

fn channels(cluster: Option<&ClusterConfig>) -> Result<DefaultChannels> {
    let tls_root_cert = match cluster.and_then(|c| c.tls_root_cert.as_ref()) {
        None => None,
        Some(path) => Some(
            std::fs::read(path)
                .map_err(|e| Error::from(e).with_source(path.display().to_string()))?,
        ),
    };
    Ok(DefaultChannels { tls_root_cert })
}

/// The channels to the cluster's nodes, sending the cluster secret if there is one.
fn channel_cache(cluster: Option<&ClusterConfig>) -> Result<Arc<ChannelCache>> {
    let cache = ChannelCache::new(Arc::new(channels(cluster)?));
    Ok(Arc::new(match cluster_secret(cluster)? {
        Some(secret) => cache
            .with_secret(&secret)
            .map_err(|e| Error::invalid(format!("cluster.secret_env: {}", e.message())))?,
        None => cache,
    }))
}

/// The secret the nodes of the cluster share (`[cluster] secret_env`), if configured.
///
/// # Errors
/// When the environment variable named is not set.
pub fn cluster_secret(cluster: Option<&ClusterConfig>) -> Result<Option<String>> {
    let Some(variable) = cluster.and_then(|c| c.secret_env.as_deref()) else {
        return Ok(None);
    };
    std::env::var(variable).map(Some).map_err(|_| {
        Error::invalid(format!(
            "cluster.secret_env: the environment variable {variable} is not set"
        ))
    })
}

/// Distribution over the configured peers.
fn distribution(
    cluster: &ClusterConfig,
    catalogs: &Arc<dyn CatalogProviderList>,
) -> Result<Distribution> {
    let discovery: Arc<dyn WorkerDiscovery> = match &cluster.peers {
        Peers::Static(urls) => Arc::new(StaticWorkers::new(urls.iter().cloned())?),
        Peers::Dns { name, port } => Arc::new(DnsWorkers::new(
            name.clone(),
            *port,
            cluster.tls_root_cert.is_some(),
        )),
        Peers::File(path) => Arc::new(FileWorkers::new(path)),
    };
    Ok(Distribution::new(discovery)
        .with_channels(channel_cache(Some(cluster))?)
        .with_codec(codec(catalogs)))
}

/// The worker of this node: runs stages of queries planned on any node of the cluster, over
/// the sources of `ctx` (every node has the same).
///
/// # Errors
/// When the cluster's CA certificate cannot be read.
pub fn worker(ctx: &SessionContext, config: &Config) -> Result<Worker> {
    let state = ctx.state();
    // The node's coordinator and worker share their connections to the peers.
    let channels = match state.config().get_extension::<NetworkContext>() {
        Some(network) => Arc::clone(&network.channels),
        None => channel_cache(config.cluster.as_ref())?,
    };
    Ok(Worker::new(state.clone())
        .with_codec(codec(state.catalog_list()))
        .with_channels(channels))
}

/// Re-reads the tables and columns of the database source `only` (every database source when
/// `None`), and returns the names of the sources refreshed. File sources are listed when
/// queried and need no refresh.
///
/// # Errors
/// When a source cannot be reached; the error names it.
pub async fn refresh(ctx: &SessionContext, only: Option<&str>) -> Result<Vec<String>> {
    let mut refreshed = Vec::new();
    for name in ctx.catalog_names() {
        if only.is_some_and(|only| only != name) {
            continue;
        }
        let Some(catalog) = ctx.catalog(&name) else {
            continue;
        };
        if let Some(catalog) = catalog.downcast_ref::<SourceCatalog>() {
            catalog.refresh().await?;
            refreshed.push(name);
        }
    }
    Ok(refreshed)
}

/// `source`, with the pushdown and the connection limit its configuration gives it (if any),
/// learning its speed from the statements this node runs there.
fn hinted(
    source: Arc<dyn Source>,
    pushdown: Option<Pushdown>,
    max_connections: Option<usize>,
) -> Arc<dyn Source> {
    let source = flotilla_federation::with_learning(source);
    let source = match pushdown {
        Some(pushdown) => flotilla_federation::with_pushdown(source, pushdown),
        None => source,
    };
    match max_connections {
        Some(max) => flotilla_federation::with_connection_limit(source, max, CONNECTION_WAIT),
        None => source,
    }
}

async fn open_source(
    ctx: &SessionContext,
    name: &str,
    source: &SourceConfig,
    max_connections: Option<usize>,
) -> Result<Arc<dyn CatalogProvider>> {
    match source {
        SourceConfig::Sqlite {
            path,
            attach,
            pushdown,
        } => {
            let source = hinted(
                Arc::new(SqliteSource::open_attached(name, path, attach)?),
                *pushdown,
                max_connections,
            );
            let catalog: Arc<dyn CatalogProvider> = flotilla_federation::catalog_of(source).await?;
            Ok(catalog)
        }
        SourceConfig::Mysql {
            url,
            password_env,
            flavor,
            zero_dates,
            unsupported_types,
            tls_root_cert,
            pushdown,
        } => {
            let options = MysqlOptions {
                flavor: *flavor,
                zero_dates: *zero_dates,
                unsupported_types: *unsupported_types,
                tls_root_cert: tls_root_cert.clone(),
            };
            let password = password_from(password_env.as_deref())?;
            let source = hinted(
                Arc::new(MysqlSource::new(name, url, password.as_deref(), options)?),
                *pushdown,
                max_connections,
            );
            let catalog: Arc<dyn CatalogProvider> = flotilla_federation::catalog_of(source).await?;
            Ok(catalog)
        }
        SourceConfig::Postgres {
            url,
            password_env,
            numeric,
            unsupported_types,
            tls_root_cert,
            pushdown,
        } => {
            let password = password_from(password_env.as_deref())?;
            let options = PostgresOptions {
                numeric: *numeric,
                unsupported_types: *unsupported_types,
                tls_root_cert: tls_root_cert.clone(),
            };
            let source = hinted(
                Arc::new(PostgresSource::with_password(
                    name,
                    url,
                    password.as_deref(),
                    options,
                )?),
                *pushdown,
                max_connections,
            );
            let catalog: Arc<dyn CatalogProvider> = flotilla_federation::catalog_of(source).await?;
            Ok(catalog)
        }
        SourceConfig::FlightSql {
            url,
            catalog,
            user,
            password_env,
            tls_root_cert,
            pushdown,
        } => {
            let tls_root_cert = match tls_root_cert {
                Some(path) => Some(
                    std::fs::read(path)
                        .map_err(|e| Error::from(e).with_source(path.display().to_string()))?,
                ),
                None => None,
            };
            let options = FlightSqlOptions {
                tls_root_cert,
                catalog: catalog.clone(),
                user: user.clone(),
                password: password_from(password_env.as_deref())?,
            };
            let source = hinted(
                Arc::new(FlightSqlSource::connect(name, url, options).await?),
                *pushdown,
                max_connections,
            );
            let catalog: Arc<dyn CatalogProvider> = flotilla_federation::catalog_of(source).await?;
            Ok(catalog)
        }
        SourceConfig::Influxdb {
            url,
            database,
            user,
            password_env,
            token_env,
        } => {
            let credentials = match (user, token_env) {
                (_, Some(variable)) => {
                    let token = std::env::var(variable).map_err(|_| {
                        Error::invalid(format!(
                            "token_env: the environment variable {variable} is not set"
                        ))
                        .with_source(name)
                    })?;
                    InfluxCredentials::Token(token)
                }
                (Some(user), None) => InfluxCredentials::User {
                    name: user.clone(),
                    password: password_from(password_env.as_deref())?.unwrap_or_default(),
                },
                (None, None) => InfluxCredentials::None,
            };
            let client = InfluxClient::new(name, url, database, &credentials)?;
            let catalog: Arc<dyn CatalogProvider> = Arc::new(InfluxCatalog::connect(client).await?);
            Ok(catalog)
        }
        SourceConfig::Parquet { path } => {
            let format = Arc::new(ParquetFormat::default());
            file_catalog(ctx, path, format, ".parquet").await
        }
        SourceConfig::Csv {
            path,
            delimiter,
            has_header,
        } => {
            let format = Arc::new(
                CsvFormat::default()
                    .with_delimiter(*delimiter)
                    .with_has_header(*has_header),
            );
            file_catalog(ctx, path, format, ".csv").await
        }
    }
}

/// The password in the environment variable `variable`, if one is named.
fn password_from(variable: Option<&str>) -> Result<Option<String>> {
    let Some(variable) = variable else {
        return Ok(None);
    };
    std::env::var(variable).map(Some).map_err(|_| {
        Error::invalid(format!(
            "password_env: the environment variable {variable} is not set"
        ))
    })
}

/// A catalog with one schema, [`FILE_SCHEMA`], holding a listing table per data file or
/// sub-directory of `path` (or the one file `path` names).
async fn file_catalog(
    ctx: &SessionContext,
    path: &Path,
    format: Arc<dyn FileFormat>,
    extension: &str,
) -> Result<Arc<dyn CatalogProvider>> {
    let schema = MemorySchemaProvider::new();
    for (table, location) in table_locations(path, extension)? {
        let provider = listing_table(ctx, &location, Arc::clone(&format), extension).await?;
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
    ctx: &SessionContext,
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
        .infer_schema(&ctx.state())
        .await
        .map_err(|e| Error::invalid(format!("reading {}: {e}", location.display())))?;
    Ok(Arc::new(ListingTable::try_new(config)?))
}
