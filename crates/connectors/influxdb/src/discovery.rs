//! Discovery: measurements are tables; a measurement's columns are `time`, its tag keys and its
//! field keys with their types (`SHOW MEASUREMENTS`, `SHOW TAG KEYS`, `SHOW FIELD KEYS`).

use crate::client::InfluxClient;
use crate::influxql::quote_identifier;
use crate::schema::{ColumnKind, MeasurementSchema, field_type, tag_type};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use flotilla_common::{Error, ErrorKind, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The values of the first column of every series of an answer.
fn first_column(answer: &Value) -> Vec<Vec<Value>> {
    answer["results"][0]["series"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|series| series["values"].as_array().cloned().unwrap_or_default())
        .filter_map(|row| row.as_array().cloned())
        .collect()
}

/// The measurements of the client's database.
///
/// # Errors
/// When InfluxDB cannot be asked or the database does not exist.
pub async fn measurements(client: &InfluxClient) -> Result<Vec<String>> {
    let answer = client.query("SHOW MEASUREMENTS").await?;
    Ok(first_column(&answer)
        .into_iter()
        .filter_map(|row| row.first().and_then(Value::as_str).map(str::to_string))
        .collect())
}

/// The columns of `measurement`; `None` when it has no fields (it does not exist).
///
/// # Errors
/// When InfluxDB cannot be asked, or a field has different types in different shards (the
/// error names them: which one a query would see is not for Flotilla to guess).
pub async fn describe(
    client: &InfluxClient,
    measurement: &str,
) -> Result<Option<MeasurementSchema>> {
    let from = quote_identifier(measurement);
    let fields_answer = client
        .query(&format!("SHOW FIELD KEYS FROM {from}"))
        .await?;
    let mut fields: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in first_column(&fields_answer) {
        if let [Value::String(name), Value::String(kind)] = row.as_slice() {
            fields.entry(name.clone()).or_default().push(kind.clone());
        }
    }
    if fields.is_empty() {
        return Ok(None);
    }
    let tags_answer = client.query(&format!("SHOW TAG KEYS FROM {from}")).await?;
    let tags: Vec<String> = first_column(&tags_answer)
        .into_iter()
        .filter_map(|row| row.first().and_then(Value::as_str).map(str::to_string))
        .collect();
    let mut columns = vec![Field::new(
        "time",
        DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
        false,
    )];
    let mut kinds = vec![ColumnKind::Time];
    for tag in &tags {
        columns.push(Field::new(tag, tag_type(), true));
        kinds.push(ColumnKind::Tag);
    }
    for (name, mut types) in fields {
        types.sort();
        types.dedup();
        if types.len() > 1 {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "field '{name}' of measurement '{measurement}' has different types in \
                     different shards ({}); InfluxDB answers with the type of each shard",
                    types.join(", ")
                ),
            )
            .with_source(client.source()));
        }
        if tags.contains(&name) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("'{name}' of measurement '{measurement}' is both a tag and a field"),
            )
            .with_source(client.source()));
        }
        let data_type = field_type(&types[0]).ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                format!(
                    "field '{name}' has the unknown InfluxDB type '{}'",
                    types[0]
                ),
            )
            .with_source(client.source())
        })?;
        columns.push(Field::new(&name, data_type, true));
        kinds.push(ColumnKind::Field);
    }
    Ok(Some(MeasurementSchema {
        name: measurement.to_string(),
        schema: Arc::new(Schema::new(columns)),
        kinds,
    }))
}
