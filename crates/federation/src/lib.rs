//! Federation for Flotilla: the `Source` contract and the pushdown planner.
//!
//! ```text
//!  connector (flotilla-connectors-*) ── implements ──▶ Source + Dialect
//!                                                         │ schemas(), tables(): names
//!  catalog_of(source) ──▶ SourceCatalog ◀─────────────────┤ describe(): on first use, cached
//!                          └ FederatedTable per table ◀───┘
//!
//!  SQL ─▶ DataFusion optimizer ─▶ FederationPlanner (a QueryPlanner)
//!            filters, projections,   │ cut single-source sub-plans by cost     (planner, cost)
//!            limits pushed down      │ write each as SQL in its dialect       (sql)
//!                                    ▼
//!                       FederatedScan ─▶ FederatedScanExec ─▶ Source::execute(sql) (exec)
//! ```
//!
//! - [`source`]: what a connector provides: identity, dialect, discovery, execute(SQL) → stream.
//! - [`catalog`]: a source as a DataFusion catalog: names listed up front, tables described
//!   lazily, cached, refreshable.
//! - [`dialect`]: how a database writes SQL and what it can run; the capability model. A
//!   construct the dialect refuses is never sent: the cut moves below it.
//! - [`sql`]: SQL generation from logical plans, resolving columns by position so qualifiers
//!   and aliases of optimized plans cannot produce invalid SQL.
//! - [`planner`]: where the cut is made; [`cost`]: what each side of the cut is estimated to
//!   cost (rows from the sources' counts and samples, per-row costs from each dialect);
//!   [`learn`]: how much slower or faster than those figures a source has run here.
//! - [`table`]: the table provider for remote tables; filters are `Exact` only when the SQL the
//!   scan sends contains them.
//! - [`exec`]: the logical node and the physical operator; `EXPLAIN` shows the SQL.
//! - [`split`]: big scans of one table read as key ranges in parallel.
//! - [`keys`]: join-key pushdown: a hash join's built keys added to the other side's SQL as
//!   `key IN (…)` and a key range once the build side is done.
//! - [`config`]: `SET flotilla.federation.pushdown = 'all' | 'cost' | 'none'`.
//! - [`stream`]: the stream of a remote statement's batches, with a bounded channel and a stop
//!   action on drop, shared by the connectors.
//! - [`write`]: `INSERT INTO` and `CREATE TABLE … AS` into a source, through
//!   [`Source::write`]; [`execute_logical_plan`] runs statements with that.
//! - [`column`]: Arrow builders that connectors decode values into, converting to the type the
//!   plan asks for.
//!
//! Use it by giving the session a [`FederationPlanner`] and [`FederationConfig`], and registering
//! each source's catalog from [`catalog_of`].

pub mod catalog;
pub mod codec;
pub mod column;
pub mod config;
pub mod cost;
pub mod dialect;
pub mod exec;
mod explain;
pub mod keys;
pub mod learn;
mod names;
pub mod planner;
mod provider;
pub mod source;
pub mod split;
pub mod sql;
pub mod stats;
pub mod stream;
pub mod table;
pub mod write;

pub use catalog::{SourceCatalog, catalog_of, configured_catalog};
pub use codec::FederationCodec;
pub use config::{FederationConfig, MaxConnections, Pushdown};
pub use dialect::Dialect;
pub use exec::{FederatedScan, FederatedScanExec};
pub use planner::{FederationPlanner, federate};
pub use source::{
    CONNECTION_WAIT, ColumnEstimate, RemoteTable, Source, SourceIdentity, SplitKey, TableName,
    UnsupportedTypes, WriteTarget, with_connection_limit, with_costs, with_learning, with_pushdown,
};
pub use table::FederatedTable;
pub use write::{FederatedSink, execute_logical_plan, sql};

use datafusion::execution::context::SessionContext;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::SessionConfig;
use std::sync::Arc;

/// Adds federation to a session being built: the [`FederationPlanner`], the join-key pushdown
/// rule ([`exec::JoinKeyPushdown`]) and the `flotilla.federation.*` options. Everything else stays vanilla DataFusion.
/// It also guards DataFusion's filter pushdown against projections with two outputs of one
/// name ([`names`]).
pub fn with_federation(mut builder: SessionStateBuilder) -> SessionStateBuilder {
    let optimizer = builder
        .physical_optimizers()
        .get_or_insert_with(Default::default);
    names::DistinctNames::guard(&mut optimizer.rules);
    builder
        .with_query_planner(Arc::new(FederationPlanner))
        .with_physical_optimizer_rule(Arc::new(exec::JoinKeyPushdown))
}

/// A session context with federation, from `config` (with the default `flotilla.federation`
/// options unless `config` already has them).
pub fn federated_context(config: SessionConfig) -> SessionContext {
    let config = flotilla_common::options::with_section(config, FederationConfig::default());
    let state = with_federation(
        SessionStateBuilder::new()
            .with_config(config)
            .with_default_features(),
    )
    .build();
    SessionContext::new_with_state(state)
}
