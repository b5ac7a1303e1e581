//! The node's web console, on its HTTP port: one self-contained page (`console.html`, compiled
//! in; no build step, nothing fetched from elsewhere) over a small JSON API.
//!
//! ```text
//!  GET  /                         the page
//!  GET  /api/queries              running and recent queries (flotilla_common::activity)
//!  GET  /api/queries/{id}         one query: its stages (tasks per node, rows, bytes, time),
//!                                 the statements sent to each database, the plan as text
//!  POST /api/queries/{id}/cancel  cancels it (as the client's own cancel would)
//!  GET  /api/nodes                the cluster's nodes (flotilla.cluster.nodes)
//!  GET  /api/sources              catalogs, schemas and tables
//! ```
//!
//! A query's stages are read from its physical plan: the plan's root runs on this node
//! (stage 0); each `NetworkShuffleExec` or `NetworkCoalesceExec` reads a producer stage whose
//! tasks run on the nodes it names, with the figures its tasks reported so far (a task
//! partition reports when its stream ends).

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use datafusion::arrow::json::ArrayWriter;
use datafusion::physical_plan::metrics::MetricValue;
use datafusion::physical_plan::{ExecutionPlan, displayable};
use datafusion::prelude::SessionContext;
use flotilla_common::activity::{QueryView, activity};
use flotilla_distributed::{DistributedExec, NetworkCoalesceExec, NetworkShuffleExec};
use flotilla_federation::FederatedScanExec;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

/// The page.
const PAGE: &str = include_str!("console.html");

pub(crate) async fn page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response()
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

pub(crate) async fn queries() -> Response {
    let live: Vec<Value> = activity().live().iter().map(summary).collect();
    let recent: Vec<Value> = activity().recent().iter().map(summary).collect();
    json_response(StatusCode::OK, &json!({ "live": live, "recent": recent }))
}

pub(crate) async fn query(Path(id): Path<u64>) -> Response {
    match activity().get(id) {
        Some(query) => json_response(StatusCode::OK, &detail(&query)),
        None => not_found(id),
    }
}

pub(crate) async fn cancel(Path(id): Path<u64>) -> Response {
    if activity().cancel(id) {
        json_response(StatusCode::OK, &json!({ "cancelled": id }))
    } else if activity().get(id).is_some() {
        json_response(
            StatusCode::CONFLICT,
            &json!({ "error": format!("query {id} has already ended") }),
        )
    } else {
        not_found(id)
    }
}

fn not_found(id: u64) -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({ "error": format!("no query {id} on this node (it ended long ago, or never ran here)") }),
    )
}

pub(crate) async fn nodes(State(ctx): State<SessionContext>) -> Response {
    // A node without a [cluster] has no such table: it is its own cluster.
    let clustered = ctx
        .catalog("flotilla")
        .and_then(|catalog| catalog.schema("cluster"))
        .is_some_and(|schema| schema.table_exist("nodes"));
    if !clustered {
        return json_response(StatusCode::OK, &json!([]));
    }
    let listed = async {
        let batches = ctx
            .sql("SELECT * FROM flotilla.cluster.nodes ORDER BY node")
            .await?
            .collect()
            .await?;
        let mut writer = ArrayWriter::new(Vec::new());
        for batch in &batches {
            writer.write(batch)?;
        }
        writer.finish()?;
        Ok::<_, datafusion::error::DataFusionError>(writer.into_inner())
    };
    match listed.await {
        Ok(bytes) if bytes.is_empty() => json_response(StatusCode::OK, &json!([])),
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({ "error": format!("the cluster's nodes cannot be listed: {e}") }),
        ),
    }
}

pub(crate) async fn sources(State(ctx): State<SessionContext>) -> Response {
    let mut catalogs = Vec::new();
    for name in ctx.catalog_names() {
        let Some(catalog) = ctx.catalog(&name) else {
            continue;
        };
        let mut schemas = Vec::new();
        for schema_name in catalog.schema_names() {
            if let Some(schema) = catalog.schema(&schema_name) {
                let mut tables = schema.table_names();
                tables.sort();
                schemas.push(json!({ "name": schema_name, "tables": tables }));
            }
        }
        catalogs.push(json!({ "name": name, "schemas": schemas }));
    }
    json_response(StatusCode::OK, &Value::Array(catalogs))
}

fn summary(query: &QueryView) -> Value {
    let started = query
        .started_at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    json!({
        "id": query.id,
        "protocol": query.asked.protocol,
        "user": query.asked.user,
        "sql": query.asked.sql,
        "state": query.state,
        "started_ms": u64::try_from(started).unwrap_or(u64::MAX),
        "seconds": query.seconds,
        "rows": query.rows,
        "bytes": query.bytes,
        "error": query.error,
        "distributed": query.plan.as_ref().and_then(distributed_id),
    })
}

fn detail(query: &QueryView) -> Value {
    let mut value = summary(query);
    let described = match (&query.plan, &query.described) {
        (Some(plan), _) => description(plan),
        (None, Some(text)) => serde_json::from_str(text).unwrap_or_default(),
        (None, None) => json!({ "stages": [], "plan": "" }),
    };
    value["stages"] = described["stages"].clone();
    value["plan"] = described["plan"].clone();
    value
}

/// A plan's stages and its text.
fn description(plan: &Arc<dyn ExecutionPlan>) -> Value {
    json!({
        "stages": stages(plan).iter().map(Stage::to_json).collect::<Vec<_>>(),
        "plan": displayable(plan.as_ref()).indent(true).to_string(),
    })
}

/// What an ended query's plan is kept as (see `flotilla_common::activity`).
pub(crate) fn describe(plan: &Arc<dyn ExecutionPlan>) -> String {
    description(plan).to_string()
}

/// The id of the distributed query the plan runs (the same on every node), if it distributes.
fn distributed_id(plan: &Arc<dyn ExecutionPlan>) -> Option<String> {
    if let Some(distributed) = plan.downcast_ref::<DistributedExec>() {
        return Some(distributed.query().to_string());
    }
    plan.children().into_iter().find_map(distributed_id)
}

/// One stage of a query's plan, as the console draws it.
#[derive(Debug)]
struct Stage {
    id: usize,
    /// The stage that reads this one's rows.
    parent: Option<usize>,
    /// The node of each task; empty for the stage that runs where the query was planned.
    tasks: Vec<String>,
    operators: Vec<String>,
    /// What the stage's tasks reported so far.
    rows: u64,
    bytes: u64,
    seconds: f64,
    /// The statements sent to databases: source and SQL.
    statements: Vec<(String, String)>,
}

impl Stage {
    fn to_json(&self) -> Value {
        let statements: Vec<Value> = self
            .statements
            .iter()
            .map(|(source, sql)| json!({ "source": source, "sql": sql }))
            .collect();
        json!({
            "id": self.id,
            "parent": self.parent,
            "tasks": self.tasks,
            "operators": self.operators,
            "rows": self.rows,
            "bytes": self.bytes,
            "seconds": self.seconds,
            "statements": statements,
        })
    }
}

/// The stages of `plan`, the root's (stage 0, on this node) first.
fn stages(plan: &Arc<dyn ExecutionPlan>) -> Vec<Stage> {
    let mut stages = vec![Stage {
        id: 0,
        parent: None,
        tasks: Vec::new(),
        operators: Vec::new(),
        rows: 0,
        bytes: 0,
        seconds: 0.0,
        statements: Vec::new(),
    }];
    visit(plan, 0, &mut stages);
    stages
}

/// Adds `plan` to stage `at` (an index into `stages`) and its inputs to theirs.
fn visit(plan: &Arc<dyn ExecutionPlan>, at: usize, stages: &mut Vec<Stage>) {
    let producer = match plan.downcast_ref::<NetworkShuffleExec>() {
        Some(shuffle) => Some((shuffle.stage(), shuffle.producer())),
        None => plan
            .downcast_ref::<NetworkCoalesceExec>()
            .map(|coalesce| (coalesce.stage(), coalesce.producer())),
    };
    if let Some((tasks, producer)) = producer {
        stages[at]
            .operators
            .push(format!("{} ← stage {}", plan.name(), tasks.stage));
        let (rows, bytes, seconds) = figures(plan.as_ref());
        let below = stages.len();
        stages.push(Stage {
            id: tasks.stage,
            parent: Some(stages[at].id),
            tasks: tasks.workers.clone(),
            operators: Vec::new(),
            rows,
            bytes,
            seconds,
            statements: Vec::new(),
        });
        visit(producer, below, stages);
        return;
    }
    stages[at].operators.push(plan.name().to_string());
    if let Some(scan) = plan.downcast_ref::<FederatedScanExec>() {
        let source = scan.source().name().to_string();
        if scan.partitions().is_empty() {
            stages[at].statements.push((source, scan.sql().to_string()));
        } else {
            for (_, sql) in scan.partitions() {
                stages[at].statements.push((source.clone(), sql.clone()));
            }
        }
    }
    for child in plan.children() {
        visit(child, at, stages);
    }
}

/// Rows, network bytes and seconds a network operator's producer tasks reported.
fn figures(plan: &dyn ExecutionPlan) -> (u64, u64, f64) {
    let (mut rows, mut bytes, mut seconds) = (0, 0, 0.0);
    for metric in plan.metrics().unwrap_or_default().iter() {
        match metric.value() {
            MetricValue::Count { name, count } if name == "stage_rows" => {
                rows = count.value() as u64;
            }
            MetricValue::Count { name, count } if name == "network_bytes" => {
                bytes = count.value() as u64;
            }
            MetricValue::Time { name, time } if name == "stage_time" => {
                seconds = time.value() as f64 / 1e9;
            }
            _ => {}
        }
    }
    (rows, bytes, seconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
    use datafusion::physical_plan::empty::EmptyExec;
    use flotilla_distributed::StageTasks;

    #[test]
    fn a_plan_is_cut_into_stages_at_its_network_operators() {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
        let leaf: Arc<dyn ExecutionPlan> = Arc::new(EmptyExec::new(schema));
        let tasks = |stage| StageTasks {
            query: "q".into(),
            stage,
            workers: vec!["grpc://a:1".into(), "grpc://b:2".into()],
        };
        let lower: Arc<dyn ExecutionPlan> = Arc::new(NetworkCoalesceExec::new(leaf, tasks(2)));
        let upper: Arc<dyn ExecutionPlan> = Arc::new(NetworkCoalesceExec::new(
            Arc::new(CoalescePartitionsExec::new(lower)),
            tasks(1),
        ));
        let root: Arc<dyn ExecutionPlan> = Arc::new(CoalescePartitionsExec::new(upper));
        let stages = stages(&root);
        let shape: Vec<_> = stages
            .iter()
            .map(|s| (s.id, s.parent, s.tasks.len(), s.operators.clone()))
            .collect();
        assert_eq!(
            shape,
            vec![
                (
                    0,
                    None,
                    0,
                    vec![
                        "CoalescePartitionsExec".to_string(),
                        "NetworkCoalesceExec ← stage 1".to_string()
                    ]
                ),
                (
                    1,
                    Some(0),
                    2,
                    vec![
                        "CoalescePartitionsExec".to_string(),
                        "NetworkCoalesceExec ← stage 2".to_string()
                    ]
                ),
                (2, Some(1), 2, vec!["EmptyExec".to_string()]),
            ]
        );
    }
}
