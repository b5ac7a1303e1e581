//! EXPLAIN shows stages, tasks and nodes; EXPLAIN ANALYZE adds each stage's figures, gathered
//! from the nodes that ran its tasks.

use datafusion::arrow::array::{Array, StringArray};
use datafusion::prelude::SessionContext;
use flotilla_distributed::InProcessCluster;

use crate::tpch::{coordinator, fan_out, worker};

/// The plan text of `EXPLAIN [ANALYZE] sql` (its last row).
async fn explain(ctx: &SessionContext, sql: &str) -> String {
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let batch = batches.last().unwrap();
    let plans = batch
        .column(1)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    plans.value(plans.len() - 1).to_string()
}

/// The value of `name=` on `line`, digits only (DataFusion may print units after them).
fn figure(line: &str, name: &str) -> u64 {
    let start = line
        .find(&format!("{name}="))
        .unwrap_or_else(|| panic!("no {name} in {line}"))
        + name.len()
        + 1;
    line[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number in {line}"))
}

const Q1: &str = "SELECT l_returnflag, l_linestatus, count(*) AS n, sum(l_quantity) AS q \
                  FROM lineitem GROUP BY l_returnflag, l_linestatus";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn explain_analyze_shows_each_stage_with_figures_from_its_nodes() {
    let cluster = InProcessCluster::new(3, worker);
    let ctx = coordinator(cluster.distribution().unwrap(), fan_out()).await;

    let plan = explain(&ctx, &format!("EXPLAIN {Q1}")).await;
    for url in cluster.urls() {
        assert!(plan.contains(url.as_str()), "{url} has tasks:\n{plan}");
    }
    assert!(
        !plan.contains("stage_rows"),
        "EXPLAIN does not run:\n{plan}"
    );

    let analyzed = explain(&ctx, &format!("EXPLAIN ANALYZE {Q1}")).await;
    let network: Vec<&str> = analyzed
        .lines()
        .filter(|line| line.contains("NetworkShuffleExec") || line.contains("NetworkCoalesceExec"))
        .collect();
    assert!(network.len() >= 2, "a gather over a shuffle:\n{analyzed}");
    let gather = network[0];
    assert!(gather.contains("NetworkCoalesceExec"), "{analyzed}");
    // The final stage sends the 4 groups of TPC-H's lineitem, once each.
    assert_eq!(figure(gather, "stage_rows"), 4, "{gather}");
    // The coordinator is no worker: everything it reads crosses the network.
    assert!(figure(gather, "network_bytes") > 0, "{gather}");
    // Deeper stages ran only on workers; their figures came back through the stages above.
    for line in &network[1..] {
        assert!(figure(line, "stage_rows") > 0, "{line}\n{analyzed}");
        assert!(figure(line, "streams") > 0, "{line}");
    }
    let result = ctx.sql(Q1).await.unwrap().collect().await.unwrap();
    let groups: usize = result.iter().map(|b| b.num_rows()).sum();
    assert_eq!(groups, 4);
}
