//! A measurement as a DataFusion table: scans become one InfluxQL `SELECT` carrying the
//! pushed conditions and limit, streamed back in chunks as Arrow batches.

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, DictionaryArray, Float64Builder, Int64Builder, RecordBatch,
    StringArray, TimestampNanosecondBuilder, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Int32Type, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue, project_schema};
use datafusion::datasource::TableType;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use flotilla_common::{Error, ErrorKind};
use futures::{StreamExt, TryStreamExt};
use serde_json::Value;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::client::InfluxClient;
use crate::influxql::{condition, quote_identifier};
use crate::schema::{ColumnKind, MeasurementSchema};
use crate::write::InfluxSink;
use datafusion::datasource::sink::DataSinkExec;
use datafusion::logical_expr::dml::InsertOp;

/// One measurement of an InfluxDB database.
#[derive(Debug)]
pub struct InfluxTable {
    client: InfluxClient,
    measurement: MeasurementSchema,
}

impl InfluxTable {
    pub fn new(client: InfluxClient, measurement: MeasurementSchema) -> Self {
        Self {
            client,
            measurement,
        }
    }

    pub fn measurement(&self) -> &MeasurementSchema {
        &self.measurement
    }

    pub fn client(&self) -> &InfluxClient {
        &self.client
    }

    /// The InfluxQL of a scan: every field (InfluxDB answers only points with a value in one
    /// of the selected fields, so selecting fewer could lose points), the tags `projection`
    /// needs, the conditions and the limit.
    pub fn influxql(
        &self,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> String {
        let schema = &self.measurement.schema;
        let wanted: Vec<usize> = match projection {
            Some(columns) => columns.clone(),
            None => (0..schema.fields().len()).collect(),
        };
        let mut selected: Vec<String> = self
            .measurement
            .fields()
            .iter()
            .map(|field| format!("{}::field", quote_identifier(field)))
            .collect();
        for &index in &wanted {
            if self.measurement.kinds[index] == ColumnKind::Tag {
                selected.push(format!(
                    "{}::tag",
                    quote_identifier(schema.field(index).name())
                ));
            }
        }
        let mut text = format!(
            "SELECT {} FROM {}",
            selected.join(", "),
            quote_identifier(&self.measurement.name)
        );
        let conditions: Vec<String> = filters
            .iter()
            .filter_map(|filter| condition(filter, &self.measurement))
            .map(|condition| condition.text)
            .collect();
        if !conditions.is_empty() {
            text.push_str(" WHERE ");
            text.push_str(&conditions.join(" AND "));
        }
        if let Some(limit) = limit {
            text.push_str(&format!(" LIMIT {limit}"));
        }
        text
    }
}

#[async_trait]
impl TableProvider for InfluxTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.measurement.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|filter| match condition(filter, &self.measurement) {
                Some(condition) if condition.exact => TableProviderFilterPushDown::Exact,
                Some(_) => TableProviderFilterPushDown::Inexact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if insert_op != InsertOp::Append {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "InfluxDB measurement '{}' takes INSERT INTO only (no overwrite or replace)",
                    self.measurement.name
                ),
            )
            .with_source(self.client.source())
            .into_datafusion());
        }
        let sink = InfluxSink::new(self.client.clone(), self.measurement.clone());
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let schema = project_schema(&self.measurement.schema, projection)?;
        let influxql = self.influxql(projection, filters, limit);
        let batch_size = state.config().options().execution.batch_size.get();
        Ok(Arc::new(InfluxScanExec::new(
            self.client.clone(),
            influxql,
            schema,
            batch_size,
        )))
    }
}

/// Where each output column of a query comes from in InfluxDB's answer.
#[derive(Debug, Clone)]
pub struct Output {
    pub columns: Vec<OutputColumn>,
    /// An aggregate without `GROUP BY`: SQL answers one row even when there are no points.
    pub one_row_if_empty: bool,
}

/// One output column: a column of the answer's values, or a tag of its series.
#[derive(Debug, Clone)]
pub struct OutputColumn {
    name: String,
    from_tags: bool,
    /// A count: NULL (no value in the group) is 0.
    zero_if_null: bool,
}

impl OutputColumn {
    pub fn value(name: &str) -> Self {
        Self {
            name: name.to_string(),
            from_tags: false,
            zero_if_null: false,
        }
    }

    pub fn tag(name: &str) -> Self {
        Self {
            from_tags: true,
            ..Self::value(name)
        }
    }

    pub fn count(name: &str) -> Self {
        Self {
            zero_if_null: true,
            ..Self::value(name)
        }
    }

    /// The column's name in the answer (a value column's, or a tag's).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the column is a tag of the series rather than a column of its values.
    pub fn from_tags(&self) -> bool {
        self.from_tags
    }

    /// Whether the column is a count (NULL, no value in the group, is 0).
    pub fn zero_if_null(&self) -> bool {
        self.zero_if_null
    }

    /// The column from its parts, as [`Self::name`], [`Self::from_tags`] and
    /// [`Self::zero_if_null`] give them.
    pub fn from_parts(name: &str, from_tags: bool, zero_if_null: bool) -> Self {
        Self {
            name: name.to_string(),
            from_tags,
            zero_if_null,
        }
    }
}

/// Runs one InfluxQL query and streams its answer as batches.
#[derive(Debug)]
pub struct InfluxScanExec {
    client: InfluxClient,
    influxql: String,
    schema: SchemaRef,
    output: Output,
    chunk: usize,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl InfluxScanExec {
    /// A scan whose output columns are the answer's columns of the same names.
    pub fn new(client: InfluxClient, influxql: String, schema: SchemaRef, chunk: usize) -> Self {
        let output = Output {
            columns: schema
                .fields()
                .iter()
                .map(|field| OutputColumn::value(field.name()))
                .collect(),
            one_row_if_empty: false,
        };
        Self::with_output(client, influxql, schema, output, chunk)
    }

    /// A query whose output columns come from the answer as `output` says.
    pub fn with_output(
        client: InfluxClient,
        influxql: String,
        schema: SchemaRef,
        output: Output,
        chunk: usize,
    ) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Self {
            client,
            influxql,
            schema,
            output,
            chunk: chunk.max(1),
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// The InfluxQL sent.
    pub fn influxql(&self) -> &str {
        &self.influxql
    }

    /// The client the query is sent with.
    pub fn client(&self) -> &InfluxClient {
        &self.client
    }

    /// Where each output column comes from in the answer.
    pub fn output(&self) -> &Output {
        &self.output
    }

    /// The points per chunk InfluxDB is asked to answer in.
    pub fn chunk(&self) -> usize {
        self.chunk
    }
}

impl DisplayAs for InfluxScanExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "InfluxScanExec: source={}, influxql={}",
            self.client.source(),
            self.influxql
        )
    }
}

impl ExecutionPlan for InfluxScanExec {
    fn name(&self) -> &'static str {
        "InfluxScanExec"
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn apply_expressions(
        &self,
        _: &mut dyn FnMut(
            &Arc<dyn PhysicalExpr>,
        ) -> DfResult<datafusion::common::tree_node::TreeNodeRecursion>,
    ) -> DfResult<datafusion::common::tree_node::TreeNodeRecursion> {
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal(
                "InfluxScanExec has no children".into(),
            ))
        }
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "InfluxScanExec has one partition; asked for {partition}"
            )));
        }
        let client = self.client.clone();
        let influxql = self.influxql.clone();
        let schema = Arc::clone(&self.schema);
        let output = Arc::new(self.output.clone());
        let chunk = self.chunk;
        let rows = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&rows);
        // output_rows: the rows that came from InfluxDB.
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        let (last_schema, last_output) = (Arc::clone(&schema), Arc::clone(&output));
        let batches = futures::stream::once(async move {
            client.query_chunks(&influxql, chunk).await.map(|chunks| {
                chunks.map(move |answer| {
                    answer.and_then(|answer| to_batches(&client, &schema, &output, &answer))
                })
            })
        })
        .try_flatten()
        .map_ok(move |batches| {
            for batch in &batches {
                counted.fetch_add(batch.num_rows(), Ordering::Relaxed);
                baseline.record_output(batch.num_rows());
            }
            futures::stream::iter(batches.into_iter().map(Ok))
        })
        .try_flatten()
        .chain(
            futures::stream::once(async move {
                // SQL's one row of an aggregate over nothing: counts 0, the rest NULL.
                if !last_output.one_row_if_empty || rows.load(Ordering::Relaxed) > 0 {
                    return Ok(None);
                }
                empty_aggregate_row(&last_schema, &last_output).map(Some)
            })
            .try_filter_map(|batch| futures::future::ready(Ok(batch))),
        )
        .map_err(Error::into_datafusion);
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            batches,
        )))
    }
}

/// The batches of one chunk of an answer: one per series in it.
fn to_batches(
    client: &InfluxClient,
    schema: &SchemaRef,
    output: &Output,
    answer: &Value,
) -> flotilla_common::Result<Vec<RecordBatch>> {
    let mut batches = Vec::new();
    for result in answer["results"].as_array().into_iter().flatten() {
        for series in result["series"].as_array().into_iter().flatten() {
            batches.push(series_batch(client, schema, output, series)?);
        }
    }
    Ok(batches)
}

/// One row: 0 for counts, NULL for everything else.
fn empty_aggregate_row(
    schema: &SchemaRef,
    output: &Output,
) -> flotilla_common::Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .zip(&output.columns)
        .map(|(field, column)| {
            let value = if column.zero_if_null {
                ScalarValue::new_zero(field.data_type())
            } else {
                ScalarValue::try_from(field.data_type())
            };
            value.and_then(|v| v.to_array_of_size(1))
        })
        .collect::<DfResult<Vec<_>>>()
        .map_err(|e| Error::internal(format!("an empty aggregate row: {e}")))?;
    RecordBatch::try_new(Arc::clone(schema), columns)
        .map_err(|e| Error::internal(format!("an empty aggregate row: {e}")))
}

/// Text values as a column of `data_type`: dictionary-encoded (tags) or plain.
fn text_column(data_type: &DataType, values: Vec<Option<&str>>) -> ArrayRef {
    match data_type {
        DataType::Dictionary(..) => {
            Arc::new(values.into_iter().collect::<DictionaryArray<Int32Type>>())
        }
        _ => Arc::new(StringArray::from(values)),
    }
}

/// The value at `index` of `row`; `None` for a missing column or a null.
fn cell(row: &Value, index: Option<usize>) -> Option<&Value> {
    index
        .and_then(|i| row.get(i))
        .filter(|value| !value.is_null())
}

fn series_batch<'a>(
    client: &InfluxClient,
    schema: &SchemaRef,
    output: &Output,
    series: &'a Value,
) -> flotilla_common::Result<RecordBatch> {
    let malformed = |what: String| {
        Error::new(ErrorKind::Unavailable, format!("InfluxDB answered {what}"))
            .with_source(client.source())
    };
    let names: Vec<&str> = series["columns"]
        .as_array()
        .ok_or_else(|| malformed("a series without columns".into()))?
        .iter()
        .map(|name| name.as_str().unwrap_or_default())
        .collect();
    let rows = series["values"].as_array().map_or(&[][..], Vec::as_slice);
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (field, source) in schema.fields().iter().zip(&output.columns) {
        if source.from_tags {
            // A tag of the series: the same value on every row; missing ('') is NULL.
            let tag = series["tags"][source.name.as_str()]
                .as_str()
                .filter(|value| !value.is_empty());
            columns.push(text_column(field.data_type(), vec![tag; rows.len()]));
            continue;
        }
        let index = names.iter().position(|name| *name == source.name);
        let zero = Value::from(0);
        let value = |row: &'a Value| match cell(row, index) {
            None if source.zero_if_null => Some(&zero),
            other => other,
        };
        let bad = |row: &Value| {
            malformed(format!(
                "'{}' for column {} ({})",
                cell(row, index).map(Value::to_string).unwrap_or_default(),
                field.name(),
                field.data_type()
            ))
        };
        let column: ArrayRef = match field.data_type() {
            DataType::Timestamp(_, zone) => {
                let mut builder = TimestampNanosecondBuilder::with_capacity(rows.len());
                for row in rows {
                    match value(row) {
                        None => builder.append_null(),
                        Some(v) => builder.append_value(v.as_i64().ok_or_else(|| bad(row))?),
                    }
                }
                Arc::new(builder.finish().with_timezone_opt(zone.clone()))
            }
            DataType::Float64 => {
                let mut builder = Float64Builder::with_capacity(rows.len());
                for row in rows {
                    builder.append_option(
                        value(row)
                            .map(|v| v.as_f64().ok_or_else(|| bad(row)))
                            .transpose()?,
                    );
                }
                Arc::new(builder.finish())
            }
            DataType::Int64 => {
                let mut builder = Int64Builder::with_capacity(rows.len());
                for row in rows {
                    builder.append_option(
                        value(row)
                            .map(|v| v.as_i64().ok_or_else(|| bad(row)))
                            .transpose()?,
                    );
                }
                Arc::new(builder.finish())
            }
            DataType::UInt64 => {
                let mut builder = UInt64Builder::with_capacity(rows.len());
                for row in rows {
                    builder.append_option(
                        value(row)
                            .map(|v| v.as_u64().ok_or_else(|| bad(row)))
                            .transpose()?,
                    );
                }
                Arc::new(builder.finish())
            }
            DataType::Boolean => {
                let mut builder = BooleanBuilder::with_capacity(rows.len());
                for row in rows {
                    builder.append_option(
                        value(row)
                            .map(|v| v.as_bool().ok_or_else(|| bad(row)))
                            .transpose()?,
                    );
                }
                Arc::new(builder.finish())
            }
            _ => {
                let texts = rows
                    .iter()
                    .map(|row| {
                        value(row)
                            .map(|v| v.as_str().ok_or_else(|| bad(row)))
                            .transpose()
                    })
                    .collect::<flotilla_common::Result<Vec<_>>>()?;
                text_column(field.data_type(), texts)
            }
        };
        columns.push(column);
    }
    RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(rows.len())),
    )
    .map_err(|e| malformed(format!("rows that do not fit the table: {e}")))
}
