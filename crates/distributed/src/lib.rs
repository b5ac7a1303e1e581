//! Distributed execution for Flotilla: stages across nodes over Arrow Flight.
//!
//! This crate will own the stage planner, the exchange operators (shuffle, gather, broadcast),
//! the worker service, plan and config codecs and in-process clusters (see `ARCHITECTURE.md`).
//! Its place in the dependency graph (it may use `flotilla-common`, never federation or
//! connectors) is checked by `scripts/check-deps.py`.
//!
//! Built so far:
//! - [`discovery`]: where the workers are — a static list, every address of a DNS name
//!   (Kubernetes headless services), or a file re-read when it changes.
//! - [`worker`]: the worker — a tonic Flight service running one partition of a plan sent as
//!   datafusion-proto bytes with the whole session configuration — and [`execute_remote`].
//! - [`channels`]: one cached tonic channel per worker, made by a [`ChannelFactory`] (the hook
//!   for custom TLS and interceptors).

pub mod channels;
pub mod cluster;
pub mod codec;
pub mod discovery;
pub mod exchange;
pub mod planner;
pub mod session;
pub mod worker;

pub use channels::{ChannelCache, ChannelFactory, DefaultChannels};
pub use cluster::{InProcessCluster, LocalhostCluster};
pub use codec::DistributedCodec;
pub use discovery::{DnsWorkers, FileWorkers, StaticWorkers, WorkerDiscovery, check_worker_url};
pub use exchange::{
    DistributedExec, NetworkCoalesceExec, NetworkContext, NetworkShuffleExec,
    PartitionIsolatorExec, StageTasks, TaskIndex,
};
pub use planner::{DistributedOptions, DistributedPlanner};
pub use session::{DistributedSessionStateBuilder, Distribution};
pub use worker::{Worker, execute_remote};
