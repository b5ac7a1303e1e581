//! A distributed query against running workers:
//! `cargo run -p flotilla-distributed --example run -- grpc://127.0.0.1:50061 grpc://127.0.0.1:50062`.
//!
//! Without arguments it starts two workers on localhost ports itself. It aggregates a generated
//! table, prints the distributed plan and the result.

use datafusion::arrow::array::{Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::catalog::MemTable;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::physical_plan::displayable;
use datafusion::prelude::{SessionConfig, SessionContext};
use flotilla_distributed::{
    DistributedOptions, DistributedSessionStateBuilder, Distribution, LocalhostCluster,
    StaticWorkers, Worker,
};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut urls: Vec<String> = std::env::args().skip(1).collect();
    let _local = if urls.is_empty() {
        let cluster = LocalhostCluster::start(2, |_| {
            Worker::new(SessionStateBuilder::new().with_default_features().build())
        })
        .await?;
        urls = cluster.urls().to_vec();
        Some(cluster)
    } else {
        None
    };
    // Small data: let every stage spread over all workers anyway.
    let config = SessionConfig::new().with_option_extension(DistributedOptions {
        enabled: true,
        bytes_per_task: 1,
        min_bytes: 0,
        ..DistributedOptions::default()
    });
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_distribution(Distribution::new(Arc::new(StaticWorkers::new(urls)?)))
        .build();
    let ctx = SessionContext::new_with_state(state);
    ctx.register_table("numbers", numbers()?)?;

    let sql = "SELECT n % 7 AS bucket, count(*) AS rows, sum(n) AS total \
               FROM numbers GROUP BY n % 7 ORDER BY bucket";
    let plan = ctx.sql(sql).await?.create_physical_plan().await?;
    println!("{}", displayable(plan.as_ref()).indent(false));
    let batches = ctx.sql(sql).await?.collect().await?;
    println!("{}", pretty_format_batches(&batches)?);
    Ok(())
}

/// 100,000 numbers in 8 partitions.
fn numbers() -> Result<Arc<MemTable>, Box<dyn std::error::Error>> {
    let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
    let mut partitions = Vec::new();
    for p in 0..8i64 {
        let values: Vec<i64> = (p * 12_500..(p + 1) * 12_500).collect();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from(values))],
        )?;
        partitions.push(vec![batch]);
    }
    Ok(Arc::new(MemTable::try_new(schema, partitions)?))
}
