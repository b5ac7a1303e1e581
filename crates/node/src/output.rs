//! Printing results: as a table, CSV, JSON or newline-delimited JSON.
//!
//! Tables are laid out once the whole result is known (column widths depend on every row); the
//! other formats stream batch by batch.

use datafusion::arrow::csv::WriterBuilder as CsvWriterBuilder;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::json::{ArrayWriter, LineDelimitedWriter};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use flotilla_common::{Error, Result};
use std::io::Write;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// An aligned text table.
    Table,
    /// Comma-separated values with a header line.
    Csv,
    /// One JSON array of row objects.
    Json,
    /// One JSON object per line.
    Ndjson,
}

/// Prints one result.
pub struct Printer<'a> {
    format: OutputFormat,
    out: &'a mut dyn Write,
    schema: Option<SchemaRef>,
    /// Batches held for table layout.
    held: Vec<RecordBatch>,
    first_csv_batch: bool,
    json_rows: usize,
}

impl<'a> Printer<'a> {
    pub fn new(format: OutputFormat, out: &'a mut dyn Write) -> Self {
        Self {
            format,
            out,
            schema: None,
            held: Vec::new(),
            first_csv_batch: true,
            json_rows: 0,
        }
    }

    /// Starts a result with `schema`.
    pub fn begin(&mut self, schema: SchemaRef) -> Result<()> {
        self.schema = Some(schema);
        if self.format == OutputFormat::Json {
            self.out.write_all(b"[")?;
        }
        Ok(())
    }

    /// Prints (or, for tables, holds) one batch.
    pub fn batch(&mut self, batch: RecordBatch) -> Result<()> {
        let arrow = |e: datafusion::arrow::error::ArrowError| Error::internal(e.to_string());
        match self.format {
            OutputFormat::Table => self.held.push(batch),
            OutputFormat::Csv => {
                let mut writer = CsvWriterBuilder::new()
                    .with_header(self.first_csv_batch)
                    .build(&mut *self.out);
                writer.write(&batch).map_err(arrow)?;
                self.first_csv_batch = false;
            }
            OutputFormat::Json => {
                // Each batch is written as an array; splice them into one.
                let mut buffer = Vec::new();
                let mut writer = ArrayWriter::new(&mut buffer);
                writer.write(&batch).map_err(arrow)?;
                writer.finish().map_err(arrow)?;
                let inner = buffer
                    .strip_prefix(b"[")
                    .and_then(|b| b.strip_suffix(b"]"))
                    .unwrap_or(&buffer);
                if !inner.is_empty() {
                    if self.json_rows > 0 {
                        self.out.write_all(b",")?;
                    }
                    self.out.write_all(inner)?;
                    self.json_rows += batch.num_rows();
                }
            }
            OutputFormat::Ndjson => {
                let mut writer = LineDelimitedWriter::new(&mut *self.out);
                writer.write(&batch).map_err(arrow)?;
                writer.finish().map_err(arrow)?;
            }
        }
        Ok(())
    }

    /// Whether the result has no columns (a statement such as `SET` or `CREATE TABLE`).
    pub fn is_statement(&self) -> bool {
        self.schema
            .as_ref()
            .is_some_and(|schema| schema.fields().is_empty())
    }

    /// Ends the result.
    pub fn finish(&mut self) -> Result<()> {
        match self.format {
            // A statement without a result prints no empty table.
            OutputFormat::Table if self.is_statement() => {}
            OutputFormat::Table => {
                let batches = std::mem::take(&mut self.held);
                let text = if batches.iter().all(|b| b.num_rows() == 0) {
                    // Show the header of an empty result.
                    let schema = self.schema.clone().expect("begin() was called");
                    pretty_format_batches(&[RecordBatch::new_empty(schema)])
                } else {
                    pretty_format_batches(&batches)
                }
                .map_err(|e| Error::internal(e.to_string()))?;
                writeln!(self.out, "{text}")?;
            }
            OutputFormat::Csv if self.first_csv_batch => {
                // An empty result still gets its header line.
                let schema = self.schema.clone().expect("begin() was called");
                self.first_csv_batch = false;
                self.batch(RecordBatch::new_empty(schema))?;
            }
            OutputFormat::Json => self.out.write_all(b"]\n")?,
            OutputFormat::Csv | OutputFormat::Ndjson => {}
        }
        self.out.flush()?;
        Ok(())
    }
}
