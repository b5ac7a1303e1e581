//! Helpers shared by the PostgreSQL tests.

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_plan::{ExecutionPlan, displayable};
use datafusion::prelude::{SessionConfig, SessionContext};
use flotilla_connectors_postgres::{PostgresOptions, PostgresSource};
use flotilla_federation::{Source, catalog_of, federated_context};
use flotilla_testkit::Postgres;
use std::sync::Arc;

/// The test kit's server, started once per test binary.
pub fn server() -> &'static Postgres {
    flotilla_testkit::postgres()
}

/// The source `name` over the test server's `postgres` database.
pub fn source(name: &str) -> Arc<PostgresSource> {
    Arc::new(PostgresSource::new(name, &server().url(), PostgresOptions::default()).unwrap())
}

/// A federated session with the test server as catalog `pg`.
pub async fn context() -> (SessionContext, Arc<PostgresSource>) {
    let ctx = federated_context(SessionConfig::new());
    let source = source("pg");
    ctx.register_catalog(
        "pg",
        catalog_of(Arc::clone(&source) as Arc<dyn Source>)
            .await
            .unwrap(),
    );
    (ctx, source)
}

/// Runs `sql`; panics with the query on error.
pub async fn run(ctx: &SessionContext, sql: &str) -> (Vec<RecordBatch>, Arc<dyn ExecutionPlan>) {
    let frame = ctx.sql(sql).await.unwrap_or_else(|e| panic!("{e}\n{sql}"));
    let plan = frame.clone().create_physical_plan().await.unwrap();
    let batches = frame
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{sql}"));
    (batches, plan)
}

/// The physical plan as indented text.
pub fn plan_text(plan: &Arc<dyn ExecutionPlan>) -> String {
    displayable(plan.as_ref()).indent(false).to_string()
}

/// Whether the plan is one federated scan under at most projections (with the round-robin
/// repartition DataFusion puts below a projection to run it on several cores). A projection
/// stays in DataFusion when it divides floating-point numbers: PostgreSQL raises an error on
/// division by zero where DataFusion returns ±∞/NaN (TPC-H q14, q17).
pub fn pushed_whole(plan: &str) -> bool {
    let lines: Vec<&str> = plan.lines().map(str::trim).collect();
    lines
        .iter()
        .filter(|l| l.starts_with("FederatedScanExec"))
        .count()
        == 1
        && lines.iter().all(|l| {
            l.starts_with("FederatedScanExec")
                || l.starts_with("ProjectionExec")
                || l.starts_with("CooperativeExec")
                || l.starts_with("RepartitionExec: partitioning=RoundRobinBatch")
        })
}
