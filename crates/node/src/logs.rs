//! The node's log: `tracing` events on standard error, as text lines for people or as one JSON
//! object per line for log collectors (`flotilla serve --log-format json`).
//!
//! What is logged, by target (set levels with `FLOTILLA_LOG`, e.g.
//! `FLOTILLA_LOG=info,flotilla::statement=debug`; default `info`):
//!
//! | target | level | event |
//! | --- | --- | --- |
//! | `flotilla::serve` | info | where the node serves, shutting down |
//! | `flotilla::query` | info | a client's query ended: its id, user, outcome, rows, bytes, seconds |
//! | `flotilla::task` | info | a stage task ended on this node: the distributed query id, stage, task, rows, seconds |
//! | `flotilla::statement` | debug | a database statement ended: source, rows, seconds, its SQL |
//!
//! A distributed query's id is in the `flotilla::task` events of every node it ran on, so the
//! lines of one query can be found on each. Events sit in spans (`query`, `task`, `statement`:
//! see docs/operations.md), which JSON lines carry as `span` and `spans`.

use clap::ValueEnum;
use flotilla_common::{Error, Result};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{BatchConfigBuilder, SdkTracerProvider};
use std::sync::OnceLock;
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One line per event: time, level, target, message and fields.
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message` and the fields.
    Json,
}

/// The environment variable holding the log levels (`tracing` directives).
pub const LEVELS_VARIABLE: &str = "FLOTILLA_LOG";

/// Sends this process's `tracing` events to standard error in `format`, at the levels of
/// `FLOTILLA_LOG` (default `info`); with `otlp_endpoint`, also its spans to an OpenTelemetry
/// collector over OTLP/gRPC (batched, sent every second; [`shutdown`] sends the rest). Call it
/// within the Tokio runtime the node runs on.
///
/// # Errors
/// When `FLOTILLA_LOG` is not a list of level directives, the endpoint is not a URL, or a
/// logger is already set.
pub fn init(format: LogFormat, otlp_endpoint: Option<&str>) -> Result<()> {
    let filter = match std::env::var(LEVELS_VARIABLE) {
        Ok(levels) => EnvFilter::try_new(&levels).map_err(|e| {
            Error::invalid(format!(
                "{LEVELS_VARIABLE}='{levels}' is not a list of log levels \
                 (e.g. info,flotilla::statement=debug): {e}"
            ))
        })?,
        Err(_) => EnvFilter::new("info"),
    };
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let lines = match format {
        LogFormat::Text => lines.boxed(),
        LogFormat::Json => lines.json().flatten_event(true).boxed(),
    };
    let spans = match otlp_endpoint {
        Some(endpoint) => {
            let tracer = exporting_to(endpoint)?.tracer("flotilla");
            Some(tracing_opentelemetry::layer().with_tracer(tracer))
        }
        None => None,
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(lines)
        .with(spans)
        .try_init()
        .map_err(|e| Error::invalid(format!("cannot set up the log: {e}")))
}

/// The provider exporting spans, when there is one (kept to flush it at [`shutdown`]).
static EXPORTING: OnceLock<SdkTracerProvider> = OnceLock::new();

/// A tracer provider sending spans to `endpoint` (OTLP/gRPC) in batches, as service
/// `flotilla`.
fn exporting_to(endpoint: &str) -> Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| {
            Error::invalid(format!(
                "server.otlp_endpoint: cannot export to {endpoint}: {e}"
            ))
        })?;
    let batches = BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_scheduled_delay(Duration::from_secs(1))
                .build(),
        )
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(batches)
        .with_resource(Resource::builder().with_service_name("flotilla").build())
        .build();
    let _ = EXPORTING.set(provider.clone());
    Ok(provider)
}

/// Sends the spans not yet exported (waits at most a few seconds): call it as the node stops.
pub async fn shutdown() {
    let Some(provider) = EXPORTING.get().cloned() else {
        return;
    };
    // The provider blocks until its exporter, which runs on this runtime, is done.
    let flushed = tokio::task::spawn_blocking(move || provider.shutdown());
    let _ = tokio::time::timeout(Duration::from_secs(5), flushed).await;
}
