//! Distributed execution for Flotilla: stages across nodes over Arrow Flight.
//!
//! A DataFusion session becomes distributed with one builder call
//! ([`DistributedSessionStateBuilder::with_distribution`]); nodes run a [`Worker`], a tonic
//! Flight service. Its place in the dependency graph (it may use `flotilla-common`, never
//! federation or connectors) is checked by `scripts/check-deps.py`. See `docs/distributed.md`.
//!
//! The modules, from the bottom up (no two import each other; `scripts/check-deps.py` checks):
//!
//! - [`options`]: the `distributed.*` session options; [`stats`]: per-stage figures for
//!   `EXPLAIN ANALYZE`.
//! - [`protocol`]: what travels between nodes — task tickets in their envelopes, the session
//!   configuration as entries, stage reports, action names, the message limit.
//! - [`filters`]: dynamic filters in a decoded stage plan — those whose operator runs in
//!   another stage are released, so scans do not wait for them.
//! - [`discovery`]: where the workers are — a static list, every address of a DNS name
//!   (Kubernetes headless services), or a file re-read when it changes.
//! - [`channels`]: one cached tonic channel per worker, made by a [`ChannelFactory`] (the hook
//!   for custom TLS and interceptors); who is alive — workers found unreachable are left out of
//!   plans at once and probed until they answer again.
//! - [`client`]: asking a worker for a task's rows (a quiet stream checks its worker is still
//!   reachable), ending a query on its workers; [`execute_remote`] for one-off plans.
//! - [`exec`]: the operators, one per file — [`NetworkShuffleExec`], [`NetworkCoalesceExec`],
//!   [`PartitionIsolatorExec`], and [`DistributedExec`], the root that ends a query on its
//!   workers and runs it again on the live nodes when a worker dies under it.
//! - [`codec`]: the codec for Flotilla's operators, wrapping the user's.
//! - [`planner`]: the stage planner, the last physical optimizer rule: boundaries placed by
//!   what each operator requires of its inputs (`planner/stages.rs`), every plan proven
//!   before it runs (`planner/check.rs`), and [`SingleNodeExec`] marking a plan kept on one
//!   node with the reason; [`BroadcastJoinSelection`] for broadcast joins.
//! - [`results`]: Flight SQL endpoints that let clients read a query's rows from the workers
//!   of its last stage, with tickets signed by the cluster secret.
//! - [`worker`]: the server — a [`Worker`] runs stage tasks sent as datafusion-proto bytes
//!   with the whole session configuration.
//! - [`nodes`]: the cluster as a table ([`ClusterNodes`], `flotilla.cluster.nodes`).
//! - [`builder`]: the session builder extension; [`cluster`]: in-process and localhost clusters (whose
//!   workers tests can kill and restart).

pub mod builder;
pub mod channels;
pub mod client;
pub mod cluster;
pub mod codec;
pub mod discovery;
pub mod exec;
pub mod filters;
pub mod nodes;
pub mod options;
pub mod planner;
pub mod protocol;
pub mod results;
pub mod stats;
pub mod worker;

pub use builder::{DistributedSessionStateBuilder, Distribution};
pub use channels::{ChannelCache, ChannelFactory, DefaultChannels};
pub use client::execute_remote;
pub use cluster::{InProcessCluster, LocalhostCluster};
pub use codec::DistributedCodec;
pub use discovery::{DnsWorkers, FileWorkers, StaticWorkers, WorkerDiscovery, check_worker_url};
pub use exec::{
    Attempt, DistributedExec, NetworkCoalesceExec, NetworkContext, NetworkShuffleExec,
    PartitionIsolatorExec, Replan, StageTasks, TaskIndex, queries_run_again,
};
pub use nodes::ClusterNodes;
pub use options::{Compression, DistributedOptions, Retry};
pub use planner::broadcast::BroadcastJoinSelection;
pub use planner::{DistributedPlanner, SingleNodeExec};
pub use results::{ResultEndpoint, is_result_ticket, result_endpoints};
pub use worker::Worker;
