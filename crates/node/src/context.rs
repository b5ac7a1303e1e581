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

use crate::config::{ClusterConfig, Config, Peers};
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
    MemorySchemaProvider, SchemaProvider,
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
use flotilla_connectors_influxdb::{InfluxAggregatePushdown, InfluxCodec};
use flotilla_distributed::{
    ChannelCache, ClusterNodes, DefaultChannels, DistributedSessionStateBuilder, Distribution,
    DnsWorkers, FileWorkers, NetworkContext, StaticWorkers, Worker, WorkerDiscovery,
};
use flotilla_federation::{FederationCodec, SourceCatalog};
use std::sync::Arc;

pub use crate::files::FILE_SCHEMA;

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
        let catalog = source
            .open(name, &ctx.state())
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
    flotilla_common::source_kind::from_env(
        "cluster.secret_env",
        cluster.and_then(|c| c.secret_env.as_deref()),
    )
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
