//! A measurement as a table: its columns are `time`, its tag keys and its field keys, with
//! their Arrow types (what `discovery` learns from InfluxDB).

use datafusion::arrow::datatypes::{DataType, SchemaRef};

/// What a column of a measurement is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Time,
    Tag,
    Field,
}

/// A measurement's columns, in schema order: `time`, the tags, then the fields (each group by
/// name).
#[derive(Debug, Clone)]
pub struct MeasurementSchema {
    pub name: String,
    pub schema: SchemaRef,
    pub kinds: Vec<ColumnKind>,
}

impl MeasurementSchema {
    pub fn kind_of(&self, column: &str) -> Option<ColumnKind> {
        self.schema
            .index_of(column)
            .ok()
            .map(|index| self.kinds[index])
    }

    /// The names of the fields.
    pub fn fields(&self) -> Vec<&str> {
        self.schema
            .fields()
            .iter()
            .zip(&self.kinds)
            .filter(|(_, kind)| **kind == ColumnKind::Field)
            .map(|(field, _)| field.name().as_str())
            .collect()
    }
}

/// The Arrow type of tags: text, dictionary-encoded (a tag has few distinct values by
/// InfluxDB's design — it indexes them — so each value is stored once per batch).
pub fn tag_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// The Arrow type of an InfluxDB field type.
pub(crate) fn field_type(influx: &str) -> Option<DataType> {
    Some(match influx {
        "float" => DataType::Float64,
        "integer" => DataType::Int64,
        "unsigned" => DataType::UInt64,
        "string" => DataType::Utf8,
        "boolean" => DataType::Boolean,
        _ => return None,
    })
}
