//! A datafusion-proto codec for [`InfluxScanExec`], so InfluxDB scans travel in distributed
//! plans: a scan is written as its source's name, its InfluxQL, its schema and where each
//! output column comes from in the answer, and read back against the InfluxDB source of that
//! name in the receiving node's catalogs (every node has the same source definitions).

use datafusion::arrow::datatypes::Schema;
use datafusion::catalog::CatalogProviderList;
use datafusion::common::{DataFusionError, Result, exec_err, internal_err, not_impl_err};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use prost::Message;
use std::fmt;
use std::sync::Arc;

use crate::InfluxCatalog;
use crate::table::{InfluxScanExec, Output, OutputColumn};

/// Encodes [`InfluxScanExec`] and finds InfluxDB sources by name in `catalogs` when decoding;
/// it refuses every other node. Combine it with the codecs of other nodes in DataFusion's
/// `ComposedPhysicalExtensionCodec`.
pub struct InfluxCodec {
    catalogs: Arc<dyn CatalogProviderList>,
}

impl fmt::Debug for InfluxCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InfluxCodec").finish_non_exhaustive()
    }
}

impl InfluxCodec {
    pub fn new(catalogs: Arc<dyn CatalogProviderList>) -> Self {
        Self { catalogs }
    }
}

#[derive(Clone, PartialEq, Message)]
struct ScanProto {
    #[prost(string, tag = "1")]
    source: String,
    #[prost(string, tag = "2")]
    influxql: String,
    #[prost(message, optional, tag = "3")]
    schema: Option<datafusion_proto::protobuf::Schema>,
    #[prost(message, repeated, tag = "4")]
    columns: Vec<ColumnProto>,
    #[prost(bool, tag = "5")]
    one_row_if_empty: bool,
    #[prost(uint64, tag = "6")]
    chunk: u64,
}

#[derive(Clone, PartialEq, Message)]
struct ColumnProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(bool, tag = "2")]
    from_tags: bool,
    #[prost(bool, tag = "3")]
    zero_if_null: bool,
}

fn proto_error(e: impl fmt::Display) -> DataFusionError {
    DataFusionError::Internal(format!("InfluxDB scan encoding: {e}"))
}

impl PhysicalExtensionCodec for InfluxCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        _inputs: &[Arc<dyn ExecutionPlan>],
        _ctx: &TaskContext,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let scan = ScanProto::decode(buf).map_err(proto_error)?;
        let Some(catalog) = self.catalogs.catalog(&scan.source) else {
            return exec_err!(
                "this node has no source '{}' (every node needs the same sources)",
                scan.source
            );
        };
        let Some(catalog) = catalog.downcast_ref::<InfluxCatalog>() else {
            return exec_err!("'{}' is not an InfluxDB source on this node", scan.source);
        };
        let Some(schema) = scan.schema.as_ref() else {
            return internal_err!("an InfluxDB scan without a schema");
        };
        let schema = Arc::new(Schema::try_from(schema).map_err(proto_error)?);
        if scan.columns.len() != schema.fields().len() {
            return internal_err!(
                "an InfluxDB scan of {} columns says where {} come from",
                schema.fields().len(),
                scan.columns.len()
            );
        }
        let output = Output {
            columns: scan
                .columns
                .iter()
                .map(|c| OutputColumn::from_parts(&c.name, c.from_tags, c.zero_if_null))
                .collect(),
            one_row_if_empty: scan.one_row_if_empty,
        };
        let chunk = usize::try_from(scan.chunk).map_err(proto_error)?;
        Ok(Arc::new(InfluxScanExec::with_output(
            catalog.client().clone(),
            scan.influxql,
            schema,
            output,
            chunk,
        )))
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let Some(exec) = node.downcast_ref::<InfluxScanExec>() else {
            return not_impl_err!("InfluxCodec encodes InfluxDB scans only");
        };
        let scan = ScanProto {
            source: exec.client().source().to_string(),
            influxql: exec.influxql().to_string(),
            schema: Some(exec.schema().as_ref().try_into().map_err(proto_error)?),
            columns: exec
                .output()
                .columns
                .iter()
                .map(|c| ColumnProto {
                    name: c.name().to_string(),
                    from_tags: c.from_tags(),
                    zero_if_null: c.zero_if_null(),
                })
                .collect(),
            one_row_if_empty: exec.output().one_row_if_empty,
            chunk: exec.chunk() as u64,
        };
        scan.encode(buf).map_err(proto_error)
    }
}
