//! The codec plans travel with: Flotilla's network operators, and everything else handed to the
//! user's codec (custom physical nodes, functions), so a user codec registered on the
//! coordinator and the workers works unchanged in distributed plans.

use datafusion::common::{Result, internal_err};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{AggregateUDF, HigherOrderUDF, ScalarUDF, WindowUDF};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr_common::physical_expr::proto_decode::PhysicalExprDecodeCtx;
use datafusion::physical_expr_common::physical_expr::proto_encode::PhysicalExprEncodeCtx;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use prost::{Message, Oneof};
use std::sync::Arc;

use crate::exec::{
    NetworkCoalesceExec, NetworkShuffleExec, PartitionIsolatorExec, StageTasks, only_child,
};

/// Encodes Flotilla's network operators and hands every other extension node to `user`.
#[derive(Debug)]
pub struct DistributedCodec {
    user: Arc<dyn PhysicalExtensionCodec>,
}

impl DistributedCodec {
    pub fn new(user: Arc<dyn PhysicalExtensionCodec>) -> Self {
        Self { user }
    }
}

#[derive(Clone, PartialEq, Message)]
struct NodeProto {
    #[prost(oneof = "Node", tags = "1, 2, 3, 4")]
    node: Option<Node>,
}

#[derive(Clone, PartialEq, Oneof)]
enum Node {
    #[prost(message, tag = "1")]
    Shuffle(ShuffleProto),
    #[prost(message, tag = "2")]
    Coalesce(StageProto),
    #[prost(uint32, tag = "3")]
    IsolatorTasks(u32),
    /// A node of the user's codec, in its bytes.
    #[prost(bytes, tag = "4")]
    User(Vec<u8>),
}

#[derive(Clone, PartialEq, Message)]
struct ShuffleProto {
    #[prost(message, optional, tag = "1")]
    stage: Option<StageProto>,
    #[prost(uint32, tag = "2")]
    partitions: u32,
}

#[derive(Clone, PartialEq, Message)]
struct StageProto {
    #[prost(string, tag = "1")]
    query: String,
    #[prost(uint32, tag = "2")]
    stage: u32,
    #[prost(string, repeated, tag = "3")]
    workers: Vec<String>,
}

impl From<&StageTasks> for StageProto {
    fn from(stage: &StageTasks) -> Self {
        Self {
            query: stage.query.clone(),
            stage: stage.stage as u32,
            workers: stage.workers.clone(),
        }
    }
}

impl From<StageProto> for StageTasks {
    fn from(stage: StageProto) -> Self {
        Self {
            query: stage.query,
            stage: stage.stage as usize,
            workers: stage.workers,
        }
    }
}

impl PhysicalExtensionCodec for DistributedCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let node = NodeProto::decode(buf)
            .map_err(|e| datafusion::error::DataFusionError::Internal(e.to_string()))?;
        match node.node {
            Some(Node::Shuffle(shuffle)) => Ok(Arc::new(NetworkShuffleExec::from_producer(
                only_child(inputs, "NetworkShuffleExec")?,
                shuffle.stage.unwrap_or_default().into(),
                shuffle.partitions as usize,
            )?)),
            Some(Node::Coalesce(stage)) => Ok(Arc::new(NetworkCoalesceExec::new(
                only_child(inputs, "NetworkCoalesceExec")?,
                stage.into(),
            ))),
            Some(Node::IsolatorTasks(tasks)) => Ok(Arc::new(PartitionIsolatorExec::new(
                only_child(inputs, "PartitionIsolatorExec")?,
                tasks as usize,
            ))),
            Some(Node::User(bytes)) => self.user.try_decode(&bytes, inputs, ctx, proto_converter),
            None => internal_err!("an extension node without a kind"),
        }
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let encoded = if let Some(shuffle) = node.downcast_ref::<NetworkShuffleExec>() {
            Node::Shuffle(ShuffleProto {
                stage: Some(shuffle.stage().into()),
                partitions: shuffle.partitions() as u32,
            })
        } else if let Some(coalesce) = node.downcast_ref::<NetworkCoalesceExec>() {
            Node::Coalesce(coalesce.stage().into())
        } else if let Some(isolator) = node.downcast_ref::<PartitionIsolatorExec>() {
            Node::IsolatorTasks(isolator.tasks() as u32)
        } else {
            let mut bytes = Vec::new();
            self.user.try_encode(node, &mut bytes, proto_converter)?;
            Node::User(bytes)
        };
        NodeProto {
            node: Some(encoded),
        }
        .encode(buf)
        .map_err(|e| datafusion::error::DataFusionError::Internal(e.to_string()))
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        self.user.try_decode_udf(name, buf)
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.user.try_encode_udf(node, buf)
    }

    fn try_decode_higher_order_function(
        &self,
        name: &str,
        buf: &[u8],
    ) -> Result<Arc<HigherOrderUDF>> {
        self.user.try_decode_higher_order_function(name, buf)
    }

    fn try_encode_higher_order_function(
        &self,
        node: &HigherOrderUDF,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        self.user.try_encode_higher_order_function(node, buf)
    }

    fn try_decode_expr(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn PhysicalExpr>],
        ctx: &PhysicalExprDecodeCtx<'_>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        self.user.try_decode_expr(buf, inputs, ctx)
    }

    fn try_encode_expr(
        &self,
        node: &Arc<dyn PhysicalExpr>,
        buf: &mut Vec<u8>,
        ctx: &PhysicalExprEncodeCtx<'_>,
    ) -> Result<()> {
        self.user.try_encode_expr(node, buf, ctx)
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        self.user.try_decode_udaf(name, buf)
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.user.try_encode_udaf(node, buf)
    }

    fn try_decode_udwf(&self, name: &str, buf: &[u8]) -> Result<Arc<WindowUDF>> {
        self.user.try_decode_udwf(name, buf)
    }

    fn try_encode_udwf(&self, node: &WindowUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.user.try_encode_udwf(node, buf)
    }
}
