//! A datafusion-proto codec for [`FederatedScanExec`], so federated scans travel in distributed
//! plans: the scan is written as its source's name, its SQL and its schema, and read back
//! against the source of that name in the receiving node's catalogs (every node has the same
//! source definitions). The scan's join filters (`keys.rs`) travel too, as the dynamic filters
//! they are: decoded with DataFusion's deduplicating converter, a filter and the hash join that
//! fills it are one object again on the worker when both are in the same stage (the distributed
//! crate releases a filter whose join runs in another stage, so the scan does not wait for it).

use datafusion::arrow::datatypes::Schema;
use datafusion::catalog::CatalogProviderList;
use datafusion::common::{DataFusionError, Result, exec_err, internal_err, not_impl_err};
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
use crate::learn::Expected;
use crate::sql::OutputColumns;

/// Encodes [`FederatedScanExec`] and finds sources by name in `catalogs` when decoding; it
/// refuses every other node. Combine it with the codecs of other nodes in DataFusion's
/// `ComposedPhysicalExtensionCodec`.
pub struct FederationCodec {
    catalogs: Arc<dyn CatalogProviderList>,
}

impl fmt::Debug for FederationCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FederationCodec").finish_non_exhaustive()
    }
}

impl FederationCodec {
    pub fn new(catalogs: Arc<dyn CatalogProviderList>) -> Self {
        Self { catalogs }
    }
}

#[derive(Clone, PartialEq, Message)]
struct ScanProto {
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
    #[prost(message, repeated, tag = "9")]
    join_filters: Vec<datafusion_proto::protobuf::PhysicalExprNode>,
    /// What the cost model estimated (seconds of the database's work and of the transfer), so
    /// a worker's source learns from the statements it runs.
    #[prost(double, optional, tag = "10")]
    expected_remote: Option<f64>,
    #[prost(double, optional, tag = "11")]
    expected_fetch: Option<f64>,
}

fn proto_error(e: impl fmt::Display) -> DataFusionError {
    DataFusionError::Internal(format!("federated scan encoding: {e}"))
}

impl PhysicalExtensionCodec for FederationCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        _inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let scan = ScanProto::decode(buf).map_err(proto_error)?;
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
                .with_row_estimate(scan.row_estimate.map(|rows| rows as usize))
                .with_expected(match (scan.expected_remote, scan.expected_fetch) {
                    (Some(remote), Some(fetch)) => Some(Expected { remote, fetch }),
                    _ => None,
                });
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
        let Some(exec) = node.downcast_ref::<FederatedScanExec>() else {
            return not_impl_err!("FederationCodec encodes federated scans only");
        };
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
        let scan = ScanProto {
            source: exec.source().name().to_string(),
            sql: exec.sql().to_string(),
            schema: Some(exec.schema().as_ref().try_into().map_err(proto_error)?),
            row_estimate: exec.row_estimate().map(|rows| rows as u64),
            output_names: names,
            output_opaque: opaque,
            partition_labels: labels,
            partition_sql: sql,
            join_filters,
            expected_remote: exec.expected().map(|e| e.remote),
            expected_fetch: exec.expected().map(|e| e.fetch),
        };
        scan.encode(buf).map_err(proto_error)
    }
}
