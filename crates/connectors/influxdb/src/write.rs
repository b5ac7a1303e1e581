//! `INSERT INTO <source>.<database>.<measurement> …`: rows become line protocol — the table's
//! tag columns as tags, its field columns as fields, `time` as the timestamp — written to
//! `/write` in batches as they stream in.

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::datasource::sink::DataSink;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};
use flotilla_common::{Error, ErrorKind};
use futures::StreamExt;
use std::fmt::{self, Write as _};
use std::sync::Arc;

use crate::client::InfluxClient;
use crate::schema::{ColumnKind, MeasurementSchema};

/// Bytes of line protocol sent per `/write` request.
const WRITE_BYTES: usize = 4 << 20;

/// Writes rows into one measurement.
#[derive(Debug)]
pub struct InfluxSink {
    client: InfluxClient,
    measurement: MeasurementSchema,
}

impl InfluxSink {
    pub fn new(client: InfluxClient, measurement: MeasurementSchema) -> Self {
        Self {
            client,
            measurement,
        }
    }

    fn error(&self, message: String) -> datafusion::error::DataFusionError {
        Error::new(ErrorKind::InvalidArgument, message)
            .with_source(self.client.source())
            .into_datafusion()
    }
}

impl DisplayAs for InfluxSink {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "InfluxSink: source={}, measurement={}",
            self.client.source(),
            self.measurement.name
        )
    }
}

/// `text` with the characters line protocol gives meaning to escaped (`,`, space, and `=`
/// outside measurement names).
fn escaped(text: &str, equals: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == ',' || c == ' ' || (equals && c == '=') || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[async_trait]
impl DataSink for InfluxSink {
    fn schema(&self) -> &SchemaRef {
        &self.measurement.schema
    }

    async fn write_all(
        &self,
        mut data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> DfResult<u64> {
        let schema = Arc::clone(&self.measurement.schema);
        let prefix = escaped(&self.measurement.name, false);
        let mut lines = String::new();
        let mut rows = 0u64;
        while let Some(batch) = data.next().await {
            let batch = batch?;
            for row in 0..batch.num_rows() {
                let mut time = None;
                let mut tags = Vec::new();
                let mut fields = Vec::new();
                for (index, field) in schema.fields().iter().enumerate() {
                    let value = ScalarValue::try_from_array(batch.column(index), row)?;
                    if value.is_null() {
                        continue;
                    }
                    let name = field.name();
                    match self.measurement.kinds[index] {
                        ColumnKind::Time => time = Some(value),
                        ColumnKind::Tag => {
                            let text = value.to_string();
                            if !text.is_empty() {
                                tags.push(format!(
                                    "{}={}",
                                    escaped(name, true),
                                    escaped(&text, true)
                                ));
                            }
                        }
                        ColumnKind::Field => {
                            let literal = match &value {
                                ScalarValue::Float64(Some(v)) if v.is_finite() => format!("{v:?}"),
                                ScalarValue::Float64(Some(v)) => {
                                    return Err(self.error(format!(
                                        "field '{name}' cannot hold {v}: InfluxDB stores finite floats"
                                    )));
                                }
                                ScalarValue::Int64(Some(v)) => format!("{v}i"),
                                ScalarValue::UInt64(Some(v)) => format!("{v}u"),
                                ScalarValue::Boolean(Some(v)) => v.to_string(),
                                ScalarValue::Utf8(Some(v)) => {
                                    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
                                }
                                other => {
                                    return Err(self.error(format!(
                                        "field '{name}': cannot write a {} value",
                                        other.data_type()
                                    )));
                                }
                            };
                            fields.push(format!("{}={literal}", escaped(name, true)));
                        }
                    }
                }
                let Some(ScalarValue::TimestampNanosecond(Some(nanos), _)) = time else {
                    return Err(self.error(format!(
                        "row {} has no time: every point of '{}' needs one",
                        rows + 1,
                        self.measurement.name
                    )));
                };
                if fields.is_empty() {
                    return Err(self.error(format!(
                        "row {} has no field values: InfluxDB keeps no point without fields",
                        rows + 1
                    )));
                }
                lines.push_str(&prefix);
                for tag in &tags {
                    lines.push(',');
                    lines.push_str(tag);
                }
                let _ = writeln!(lines, " {} {nanos}", fields.join(","));
                rows += 1;
                if lines.len() >= WRITE_BYTES {
                    self.client
                        .write(std::mem::take(&mut lines).into())
                        .await
                        .map_err(Error::into_datafusion)?;
                }
            }
        }
        if !lines.is_empty() {
            self.client
                .write(lines.into())
                .await
                .map_err(Error::into_datafusion)?;
        }
        Ok(rows)
    }
}
