//! The node's Prometheus metrics: one process-wide set, written to by the crates that do the
//! work (the Flight SQL service, federation's scans, the distributed worker) and read as text
//! by `GET /metrics` on the node's HTTP port.
//!
//! ```text
//!  flightsql layer ── flight_calls{method,code}
//!  flightsql DoGet ── queries{outcome}, queries_running, queries_queued, query_duration,
//!                     result_rows/bytes
//!  flightsql sessions ─ sessions_active
//!  federation scan ── source_statements/errors/rows/bytes{source}, source_statement_duration,
//!                     source_learned_factor{source,part}, source_learned_statements{source}
//!  distributed worker ─ task_streams_running, exchange_bytes_sent
//!  GET /metrics ───── memory_reserved_bytes, memory_limit_bytes, cluster_nodes{state}
//!                     (read from the node when scraped)
//!                │
//!                ▼
//!     metrics().encode() ──▶ OpenMetrics text (Prometheus scrapes it)
//! ```
//!
//! The set is global, as in Prometheus's own client libraries: a metric is a fact about the
//! process, and threading a handle through every constructor would add nothing.

use prometheus_client::encoding::text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;

/// Label names and values of one series.
pub type Labels = Vec<(&'static str, String)>;

/// Histograms of seconds: 1 ms to about 4.4 minutes, ×4 per bucket.
type Seconds = Family<Labels, Histogram, fn() -> Histogram>;

fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 4.0, 10))
}

/// Every metric of the node. See the module documentation.
pub struct Metrics {
    registry: Registry,
    /// Flight calls by gRPC method and the status they started with.
    pub flight_calls: Family<Labels, Counter>,
    /// Queries (Flight SQL statements returning rows) by outcome: `ok`, `error`, `cancelled`,
    /// `timeout` (stopped by `flotilla.statement_timeout`).
    pub queries: Family<Labels, Counter>,
    pub queries_running: Gauge,
    /// Queries waiting for their turn (`[server] max_concurrent_queries`).
    pub queries_queued: Gauge,
    /// Seconds from a query's first `DoGet` to its last row.
    pub query_duration: Histogram,
    pub result_rows: Counter,
    pub result_bytes: Counter,
    pub sessions_active: Gauge,
    /// Per source (`source` label): statements sent, failed, rows and bytes received.
    pub source_statements: Family<Labels, Counter>,
    pub source_errors: Family<Labels, Counter>,
    pub source_rows: Family<Labels, Counter>,
    pub source_bytes: Family<Labels, Counter>,
    pub source_statement_duration: Seconds,
    /// What each source's statements taught the cost model (see [`Metrics::learned`]).
    pub source_learned_factor: Family<Labels, Gauge<f64, AtomicU64>>,
    pub source_learned_statements: Family<Labels, Gauge>,
    /// Partitions of stage tasks this node streams now (to other nodes or to clients).
    pub task_streams_running: Gauge,
    /// Arrow IPC bytes this node's stage tasks sent.
    pub exchange_bytes_sent: Counter,
    /// Bytes the node's memory pool holds for running queries, and its size (when limited).
    pub memory_reserved_bytes: Gauge,
    pub memory_limit_bytes: Gauge,
    /// The nodes of the cluster this node knows, by `state` (`up`, `down`).
    pub cluster_nodes: Family<Labels, Gauge>,
}

impl Metrics {
    fn new() -> Self {
        let mut metrics = Self {
            registry: Registry::with_prefix("flotilla"),
            flight_calls: Family::default(),
            queries: Family::default(),
            queries_running: Gauge::default(),
            queries_queued: Gauge::default(),
            query_duration: seconds_histogram(),
            result_rows: Counter::default(),
            result_bytes: Counter::default(),
            sessions_active: Gauge::default(),
            source_statements: Family::default(),
            source_errors: Family::default(),
            source_rows: Family::default(),
            source_bytes: Family::default(),
            source_statement_duration: Family::new_with_constructor(seconds_histogram),
            source_learned_factor: Family::default(),
            source_learned_statements: Family::default(),
            task_streams_running: Gauge::default(),
            exchange_bytes_sent: Counter::default(),
            memory_reserved_bytes: Gauge::default(),
            memory_limit_bytes: Gauge::default(),
            cluster_nodes: Family::default(),
        };
        // The registry keeps handles: they share their values with the fields.
        let r = &mut metrics.registry;
        r.register(
            "flight_calls",
            "Flight and Flight SQL calls by gRPC method and starting status",
            metrics.flight_calls.clone(),
        );
        r.register(
            "queries",
            "Queries returning rows, by outcome (ok, error, cancelled, timeout)",
            metrics.queries.clone(),
        );
        r.register(
            "queries_running",
            "Queries streaming rows now",
            metrics.queries_running.clone(),
        );
        r.register(
            "queries_queued",
            "Queries waiting for their turn (server.max_concurrent_queries)",
            metrics.queries_queued.clone(),
        );
        r.register(
            "query_duration_seconds",
            "Seconds from a query's first DoGet to its last row",
            metrics.query_duration.clone(),
        );
        r.register(
            "result_rows",
            "Rows sent to clients",
            metrics.result_rows.clone(),
        );
        r.register(
            "result_bytes",
            "Arrow IPC bytes sent to clients",
            metrics.result_bytes.clone(),
        );
        r.register(
            "sessions_active",
            "Open client sessions",
            metrics.sessions_active.clone(),
        );
        r.register(
            "source_statements",
            "Statements sent to each source",
            metrics.source_statements.clone(),
        );
        r.register(
            "source_errors",
            "Statements of each source that failed",
            metrics.source_errors.clone(),
        );
        r.register(
            "source_rows",
            "Rows received from each source",
            metrics.source_rows.clone(),
        );
        r.register(
            "source_bytes",
            "Bytes of Arrow data received from each source",
            metrics.source_bytes.clone(),
        );
        r.register(
            "source_statement_duration_seconds",
            "Seconds from sending a statement to a source to its last row",
            metrics.source_statement_duration.clone(),
        );
        r.register(
            "source_learned_factor",
            "What a source's statements taught the cost model: the factor its estimated \
             database work (part=remote) and transfer (part=fetch) are scaled by",
            metrics.source_learned_factor.clone(),
        );
        r.register(
            "source_learned_statements",
            "Statements of a source the cost model learned from",
            metrics.source_learned_statements.clone(),
        );
        r.register(
            "task_streams_running",
            "Partitions of distributed stage tasks this node streams now",
            metrics.task_streams_running.clone(),
        );
        r.register(
            "exchange_bytes_sent",
            "Arrow IPC bytes sent by this node's stage tasks",
            metrics.exchange_bytes_sent.clone(),
        );
        r.register(
            "memory_reserved_bytes",
            "Bytes the node's memory pool holds for running queries",
            metrics.memory_reserved_bytes.clone(),
        );
        r.register(
            "memory_limit_bytes",
            "The size of the node's memory pool (server.memory_limit; 0: no limit)",
            metrics.memory_limit_bytes.clone(),
        );
        r.register(
            "cluster_nodes",
            "Nodes of the cluster this node knows, by state (up, down)",
            metrics.cluster_nodes.clone(),
        );
        metrics
    }

    /// The metrics of one statement sent to `source`, counted as sent; resolved once so that
    /// each batch only adds to counters.
    pub fn statement(&self, source: &str) -> StatementMetrics {
        let source = label("source", source);
        self.source_statements.get_or_create(&source).inc();
        StatementMetrics {
            rows: self.source_rows.get_or_create(&source).clone(),
            bytes: self.source_bytes.get_or_create(&source).clone(),
            errors: self.source_errors.get_or_create(&source).clone(),
            duration: self
                .source_statement_duration
                .get_or_create(&source)
                .clone(),
        }
    }

    /// What `source`'s statements taught its cost estimates so far: from `statements`
    /// statements, the database's work is taken to take `remote` times and the transfer
    /// `fetch` times what its figures say (1 and 1 while nothing is learned).
    pub fn learned(&self, source: &str, statements: u64, remote: f64, fetch: f64) {
        for (part, factor) in [("remote", remote), ("fetch", fetch)] {
            let labels = vec![("source", source.to_string()), ("part", part.to_string())];
            self.source_learned_factor
                .get_or_create(&labels)
                .set(factor);
        }
        self.source_learned_statements
            .get_or_create(&label("source", source))
            .set(i64::try_from(statements).unwrap_or(i64::MAX));
    }

    /// Every metric in the OpenMetrics text format (what Prometheus scrapes).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = text::encode(&mut out, &self.registry);
        out
    }
}

/// Handles on the metrics of one source, for one statement (see [`Metrics::statement`]).
#[derive(Clone)]
pub struct StatementMetrics {
    pub rows: Counter,
    pub bytes: Counter,
    pub errors: Counter,
    pub duration: Histogram,
}

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The node's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// One label.
pub fn label(name: &'static str, value: impl Into<String>) -> Labels {
    vec![(name, value.into())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_written_with_their_labels_in_openmetrics_text() {
        let m = metrics();
        m.source_rows
            .get_or_create(&label("source", "pg"))
            .inc_by(42);
        m.query_duration.observe(0.5);
        let text = m.encode();
        assert!(
            text.contains("flotilla_source_rows_total{source=\"pg\"} 42"),
            "{text}"
        );
        assert!(
            text.contains("flotilla_query_duration_seconds_bucket{le=\"1.024\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE flotilla_sessions_active gauge"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn a_sources_learned_factors_are_gauges_by_part() {
        let m = metrics();
        m.learned("slow", 4, 24.0, 1.0);
        let text = m.encode();
        for line in [
            "flotilla_source_learned_factor{source=\"slow\",part=\"remote\"} 24.0",
            "flotilla_source_learned_factor{source=\"slow\",part=\"fetch\"} 1.0",
            "flotilla_source_learned_statements{source=\"slow\"} 4",
        ] {
            assert!(text.contains(line), "{line}:\n{text}");
        }
    }
}
