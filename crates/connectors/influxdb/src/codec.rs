//! A datafusion-proto codec for [`InfluxScanExec`], so InfluxDB scans travel in distributed
//! plans: a scan is written as its source's name, its InfluxQL, its schema and where each
//! output column comes from in the answer, and read back against the InfluxDB source of that
//! name in the receiving node's catalogs (every node has the same source definitions).

use datafusion::arrow::datatypes::Schema;
use datafusion::catalog::CatalogProviderList;
use datafusion::common::{DataFusionError, Result, exec_err, internal_err};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF, WindowUDF};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use prost::Message;
use std::fmt;
use std::sync::Arc;

use crate::InfluxCatalog;
use crate::table::{InfluxScanExec, Output, OutputColumn};

/// Encodes [`InfluxScanExec`] and finds InfluxDB sources by name in `catalogs` when decoding;
/// other nodes go to `inner`.
pub struct InfluxCodec {
    catalogs: Arc<dyn CatalogProviderList>,
    inner: Arc<dyn PhysicalExtensionCodec>,
}

impl fmt::Debug for InfluxCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InfluxCodec")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl InfluxCodec {
    pub fn new(
        catalogs: Arc<dyn CatalogProviderList>,
        inner: Arc<dyn PhysicalExtensionCodec>,
    ) -> Self {
        Self { catalogs, inner }
    }
}

#[derive(Clone, PartialEq, Message)]
struct ScanProto {
    /// Set for an InfluxDB scan; other nodes are `inner`'s bytes.
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
    #[prost(bytes = "vec", tag = "7")]
    inner: Vec<u8>,
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
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let scan = match node.downcast_ref::<InfluxScanExec>() {
            Some(exec) => ScanProto {
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
                inner: Vec::new(),
            },
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

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        self.inner.try_decode_udf(name, buf)
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode_udf(node, buf)
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        self.inner.try_decode_udaf(name, buf)
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode_udaf(node, buf)
    }

    fn try_decode_udwf(&self, name: &str, buf: &[u8]) -> Result<Arc<WindowUDF>> {
        self.inner.try_decode_udwf(name, buf)
    }

    fn try_encode_udwf(&self, node: &WindowUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode_udwf(node, buf)
    }
}
