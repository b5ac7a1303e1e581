//! The builder extension that makes a session distributed.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use datafusion::execution::session_state::SessionStateBuilder;
//! use flotilla_distributed::{Distribution, DistributedSessionStateBuilder, StaticWorkers};
//!
//! let workers = StaticWorkers::new(["grpc://10.0.0.1:50051", "grpc://10.0.0.2:50051"])?;
//! let state = SessionStateBuilder::new()
//!     .with_default_features()
//!     .with_distribution(Distribution::new(Arc::new(workers)))
//!     .build();
//! # Ok::<(), flotilla_common::Error>(())
//! ```
//!
//! Everything else about the session stays vanilla DataFusion: plans are made as always, and
//! the stage planner, the last physical optimizer rule, cuts them into stages.

use datafusion::execution::session_state::SessionStateBuilder;
use datafusion_proto::physical_plan::{DefaultPhysicalExtensionCodec, PhysicalExtensionCodec};
use std::sync::Arc;

use crate::channels::{ChannelCache, ChannelFactory, DefaultChannels};
use crate::codec::DistributedCodec;
use crate::discovery::WorkerDiscovery;
use crate::exec::NetworkContext;
use crate::options::DistributedOptions;
use crate::planner::DistributedPlanner;
use crate::planner::broadcast::BroadcastJoinSelection;

/// Where the workers are, how to reach them, and how plans are written for them.
#[derive(Debug, Clone)]
pub struct Distribution {
    discovery: Arc<dyn WorkerDiscovery>,
    channels: Arc<ChannelCache>,
    codec: Arc<dyn PhysicalExtensionCodec>,
}

impl Distribution {
    /// Distributes over the workers `discovery` finds, reached over [`DefaultChannels`],
    /// with DataFusion's codec for plans.
    pub fn new(discovery: Arc<dyn WorkerDiscovery>) -> Self {
        Self {
            discovery,
            channels: Arc::new(ChannelCache::new(Arc::new(DefaultChannels::default()))),
            codec: Arc::new(DefaultPhysicalExtensionCodec {}),
        }
    }

    /// Makes channels to workers with `factory` (custom TLS, auth headers, …).
    pub fn with_channel_factory(mut self, factory: Arc<dyn ChannelFactory>) -> Self {
        self.channels = Arc::new(ChannelCache::new(factory));
        self
    }

    /// Shares `channels` (for instance with the node's own worker).
    pub fn with_channels(mut self, channels: Arc<ChannelCache>) -> Self {
        self.channels = channels;
        self
    }

    /// Where the workers are.
    pub fn discovery(&self) -> &Arc<dyn WorkerDiscovery> {
        &self.discovery
    }

    /// The channels to the workers, and who is alive.
    pub fn channels(&self) -> &Arc<ChannelCache> {
        &self.channels
    }

    /// Writes the nodes and functions that are not Flotilla's or DataFusion's with `codec`;
    /// the workers must have the same (see [`crate::Worker::with_codec`]).
    pub fn with_codec(mut self, codec: Arc<dyn PhysicalExtensionCodec>) -> Self {
        self.codec = codec;
        self
    }
}

/// The name of DataFusion's join selection rule, which distributed sessions wrap.
const JOIN_SELECTION: &str = "join_selection";

/// Adds distribution to a [`SessionStateBuilder`].
pub trait DistributedSessionStateBuilder {
    /// Registers the `distributed.*` options (unless the config has them), the network
    /// context, and the stage planner as the last physical optimizer rule — call it after
    /// adding your own rules. DataFusion's join selection is wrapped in
    /// [`crate::BroadcastJoinSelection`] (broadcast joins in distributed queries).
    #[must_use]
    fn with_distribution(self, distribution: Distribution) -> Self;
}

impl DistributedSessionStateBuilder for SessionStateBuilder {
    fn with_distribution(mut self, distribution: Distribution) -> Self {
        let codec: Arc<dyn PhysicalExtensionCodec> =
            Arc::new(DistributedCodec::new(distribution.codec));
        let config = self.config().take().unwrap_or_default();
        let mut config = if config
            .options()
            .extensions
            .get::<DistributedOptions>()
            .is_some()
        {
            config
        } else {
            config.with_option_extension(DistributedOptions::default())
        };
        config.set_extension(Arc::new(NetworkContext {
            channels: Arc::clone(&distribution.channels),
            codec: Arc::clone(&codec),
            local: None,
        }));
        *self.config() = Some(config);
        let optimizer = self
            .physical_optimizers()
            .get_or_insert_with(Default::default);
        for rule in &mut optimizer.rules {
            let any: &dyn std::any::Any = rule.as_ref();
            if rule.name() == JOIN_SELECTION && !any.is::<BroadcastJoinSelection>() {
                *rule = Arc::new(BroadcastJoinSelection::new(
                    Arc::clone(rule),
                    Arc::clone(&distribution.discovery),
                    Arc::clone(&distribution.channels),
                ));
            }
        }
        self.with_physical_optimizer_rule(Arc::new(DistributedPlanner::new(
            distribution.discovery,
            codec,
            distribution.channels,
        )))
    }
}
