//! Distributed execution for Flotilla: stages across nodes over Arrow Flight.
//!
//! A DataFusion session becomes distributed with one builder call
//! ([`DistributedSessionStateBuilder::with_distribution`]); nodes run a [`Worker`], a tonic
//! Flight service. Its place in the dependency graph (it may use `flotilla-common`, never
//! federation or connectors) is checked by `scripts/check-deps.py`. See `docs/distributed.md`.
//!
//! - [`planner`]: the stage planner, the last physical optimizer rule, and the `distributed.*`
//!   session options.
//! - [`exchange`]: the network operators — shuffle, gather, partition isolation — and
//!   [`DistributedExec`], the root that ends a query on its workers.
//! - [`worker`]: the worker running stage tasks sent as datafusion-proto bytes with the whole
//!   session configuration; [`execute_remote`] for one-off plans.
//! - [`results`]: Flight SQL endpoints that let clients read a query's rows from the workers
//!   of its last stage, with tickets signed by the cluster secret.
//! - [`codec`]: the codec for Flotilla's operators, wrapping the user's.
//! - [`discovery`]: where the workers are — a static list, every address of a DNS name
//!   (Kubernetes headless services), or a file re-read when it changes.
//! - [`channels`]: one cached tonic channel per worker, made by a [`ChannelFactory`] (the hook
//!   for custom TLS and interceptors); workers found unreachable are left out for a while.
//! - [`session`]: the builder extension; [`cluster`]: in-process and localhost clusters.

pub mod broadcast;
pub mod channels;
pub mod cluster;
pub mod codec;
pub mod discovery;
pub mod exchange;
pub mod planner;
pub mod results;
pub mod session;
pub mod stats;
pub mod worker;

pub use broadcast::BroadcastJoinSelection;
pub use channels::{ChannelCache, ChannelFactory, DefaultChannels};
pub use cluster::{InProcessCluster, LocalhostCluster};
pub use codec::DistributedCodec;
pub use discovery::{DnsWorkers, FileWorkers, StaticWorkers, WorkerDiscovery, check_worker_url};
pub use exchange::{
    DistributedExec, NetworkCoalesceExec, NetworkContext, NetworkShuffleExec,
    PartitionIsolatorExec, StageTasks, TaskIndex,
};
pub use planner::{Compression, DistributedOptions, DistributedPlanner};
pub use results::{ResultEndpoint, is_result_ticket, result_endpoints};
pub use session::{DistributedSessionStateBuilder, Distribution};
pub use worker::{Worker, execute_remote};
