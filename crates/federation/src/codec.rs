//! A datafusion-proto codec for [`FederatedScanExec`], so federated scans travel in distributed
//! plans: the scan is written as its source's name, its SQL and its schema, and read back
//! against the source of that name in the receiving node's catalogs (every node has the same
//! source definitions). The scan's join filters (`keys.rs`) travel too, as the dynamic filters
//! they are: decoded with DataFusion's deduplicating converter, a filter and the hash join that
//! fills it are one object again on the worker when both are in the same stage (the distributed
//! crate releases a filter whose join runs in another stage, so the scan does not wait for it).

use datafusion::arrow::datatypes::Schema;
use datafusion::catalog::CatalogProviderList;
use datafusion::common::{DataFusionError, Result, exec_err, internal_err};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::{
    PhysicalExtensionCodec, PhysicalPlanDecodeContext, PhysicalProtoConverterExtension,
};
use prost::Message;
use std::fmt;
use std::sync::Arc;

use crate::catalog::SourceCatalog;
use crate::exec::FederatedScanExec;
use crate::sql::OutputColumns;

/// Encodes [`FederatedScanExec`] and finds sources by name in `catalogs` when decoding; other
/// nodes go to `inner`.
pub struct FederationCodec {
    catalogs: Arc<dyn CatalogProviderList>,
    inner: Arc<dyn PhysicalExtensionCodec>,
}

impl fmt::Debug for FederationCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FederationCodec")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl FederationCodec {
    pub fn new(
        catalogs: Arc<dyn CatalogProviderList>,
        inner: Arc<dyn PhysicalExtensionCodec>,
    ) -> Self {
        Self { catalogs, inner }
    }
}

#[derive(Clone, PartialEq, Message)]
struct ScanProto {
    /// Set for a federated scan; other nodes are `inner`'s bytes.
    #[prost(string, tag = "1")]
    source: String,
    #[prost(string, tag = "2")]
    sql: String,
    #[prost(message, optional, tag = "3")]
    schema: Option<datafusion_proto::protobuf::Schema>,
    #[prost(uint64, optional, tag = "4")]
    row_estimate: Option<u64>,
    #[prost(string, repeated, tag = "5")]
    output_names: Vec<String>,
    #[prost(bool, repeated, tag = "6")]
    output_opaque: Vec<bool>,
    #[prost(string, repeated, tag = "7")]
    partition_labels: Vec<String>,
    #[prost(string, repeated, tag = "8")]
    partition_sql: Vec<String>,
    #[prost(bytes = "vec", tag = "9")]
    inner: Vec<u8>,
    #[prost(message, repeated, tag = "10")]
    join_filters: Vec<datafusion_proto::protobuf::PhysicalExprNode>,
}

fn proto_error(e: impl fmt::Display) -> DataFusionError {
    DataFusionError::Internal(format!("federated scan encoding: {e}"))
}

impl PhysicalExtensionCodec for FederationCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let scan = ScanProto::decode(buf).map_err(proto_error)?;
        if scan.source.is_empty() {
            return self
                .inner
                .try_decode(&scan.inner, inputs, ctx, proto_converter);
        }
        let Some(catalog) = self.catalogs.catalog(&scan.source) else {
            return exec_err!(
                "this node has no source '{}' (every node needs the same sources)",
                scan.source
            );
        };
        let Some(catalog) = catalog.downcast_ref::<SourceCatalog>() else {
            return exec_err!("'{}' is not a database source on this node", scan.source);
        };
        let Some(schema) = scan.schema.as_ref() else {
            return internal_err!("a federated scan without a schema");
        };
        let schema = Arc::new(Schema::try_from(schema).map_err(proto_error)?);
        let mut exec =
            FederatedScanExec::new(Arc::clone(catalog.source()), scan.sql, Arc::clone(&schema))
                .with_row_estimate(scan.row_estimate.map(|rows| rows as usize));
        if !scan.output_names.is_empty() {
            exec = exec.with_output_columns(OutputColumns {
                names: scan.output_names,
                opaque: scan.output_opaque,
            });
        }
        let partitions = scan
            .partition_labels
            .into_iter()
            .zip(scan.partition_sql)
            .collect();
        let exec = exec.with_partitions(partitions);
        if scan.join_filters.is_empty() {
            return Ok(Arc::new(exec));
        }
        let decoding = PhysicalPlanDecodeContext::new(ctx, self);
        let filters = scan
            .join_filters
            .iter()
            .map(|filter| proto_converter.proto_to_physical_expr(filter, &schema, &decoding))
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(exec.with_join_filters(filters)))
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let scan = match node.downcast_ref::<FederatedScanExec>() {
            Some(exec) => {
                let (names, opaque) = exec
                    .output_columns()
                    .map(|c| (c.names.clone(), c.opaque.clone()))
                    .unwrap_or_default();
                let (labels, sql) = exec.partitions().iter().cloned().unzip();
                let join_filters = exec
                    .join_filters()
                    .iter()
                    .map(|filter| proto_converter.physical_expr_to_proto(filter, self))
                    .collect::<Result<Vec<_>>>()?;
                ScanProto {
                    source: exec.source().name().to_string(),
                    sql: exec.sql().to_string(),
                    schema: Some(exec.schema().as_ref().try_into().map_err(proto_error)?),
                    row_estimate: exec.row_estimate().map(|rows| rows as u64),
                    output_names: names,
                    output_opaque: opaque,
                    partition_labels: labels,
                    partition_sql: sql,
                    inner: Vec::new(),
                    join_filters,
                }
            }
            None => {
                let mut inner = Vec::new();
                self.inner.try_encode(node, &mut inner, proto_converter)?;
                ScanProto {
                    inner,
                    ..ScanProto::default()
                }
            }
        };
        scan.encode(buf).map_err(proto_error)
    }

    fn try_decode_udf(
        &self,
        name: &str,
        buf: &[u8],
    ) -> Result<Arc<datafusion::logical_expr::ScalarUDF>> {
        self.inner.try_decode_udf(name, buf)
    }

    fn try_encode_udf(
        &self,
        node: &datafusion::logical_expr::ScalarUDF,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        self.inner.try_encode_udf(node, buf)
    }

    fn try_decode_udaf(
        &self,
        name: &str,
        buf: &[u8],
    ) -> Result<Arc<datafusion::logical_expr::AggregateUDF>> {
        self.inner.try_decode_udaf(name, buf)
    }

    fn try_encode_udaf(
        &self,
        node: &datafusion::logical_expr::AggregateUDF,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        self.inner.try_encode_udaf(node, buf)
    }

    fn try_decode_udwf(
        &self,
        name: &str,
        buf: &[u8],
    ) -> Result<Arc<datafusion::logical_expr::WindowUDF>> {
        self.inner.try_decode_udwf(name, buf)
    }

    fn try_encode_udwf(
        &self,
        node: &datafusion::logical_expr::WindowUDF,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        self.inner.try_encode_udwf(node, buf)
    }
}
