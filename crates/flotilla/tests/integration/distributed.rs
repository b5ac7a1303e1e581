//! Distributed queries over the node's sources: a federated SQLite table joined with Parquet,
//! split into stages run by two workers (each built like `flotilla serve` builds its own).

use datafusion::physical_plan::displayable;
use datafusion::prelude::SessionContext;
use flotilla::config::{ClusterConfig, Config, Peers};
use flotilla::session::{build_context, worker};
use flotilla_distributed::LocalhostCluster;
use flotilla_testkit::assert_same_rows;
use flotilla_tpch::{Format, GenerateOptions};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const SCALE: f64 = 0.05;

/// TPC-H as one SQLite database and Parquet files, generated once per test binary.
fn data() -> &'static PathBuf {
    static DATA: OnceLock<PathBuf> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir = flotilla_testkit::reaper::temp_dir("flotilla-distributed-").unwrap();
        for (format, sub) in [(Format::Parquet, "parquet"), (Format::Sqlite, "sqlite")] {
            let options = GenerateOptions {
                scale: SCALE,
                format,
                out: dir.join(sub),
                tables: vec![],
            };
            flotilla_tpch::generate(&options, &|_, _| {}).unwrap();
        }
        dir
    })
}

fn config() -> Config {
    let text = format!(
        "[sources.shop]\nkind = \"sqlite\"\npath = \"{}\"\n\n[sources.lake]\nkind = \"parquet\"\npath = \"{}\"\n",
        data()
            .join("sqlite")
            .join(flotilla_tpch::SQLITE_FILE_NAME)
            .display(),
        data().join("parquet").display()
    );
    Config::parse(&text, "test.toml", Path::new(".")).unwrap()
}

async fn rows(ctx: &SessionContext, sql: &str) -> Vec<datafusion::arrow::array::RecordBatch> {
    ctx.sql(sql)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_federated_sqlite_table_joins_parquet_across_nodes() {
    let base = config();
    let mut nodes = Vec::new();
    for _ in 0..2 {
        nodes.push(build_context(&base).await.unwrap());
    }
    let cluster = LocalhostCluster::start(2, |i| worker(&nodes[i], &base).unwrap())
        .await
        .unwrap();
    let mut distributed = base.clone();
    distributed.cluster = Some(ClusterConfig {
        peers: Peers::Static(cluster.urls().to_vec()),
        tls_root_cert: None,
    });
    let coordinator = build_context(&distributed).await.unwrap();
    for set in [
        "SET distributed.min_bytes = 0",
        "SET distributed.bytes_per_task = 1",
    ] {
        coordinator.sql(set).await.unwrap();
    }

    let sql = "SELECT c_mktsegment, count(*) AS orders, sum(o_totalprice) AS total \
               FROM shop.main.customer JOIN lake.public.orders ON c_custkey = o_custkey \
               WHERE c_acctbal > 0 GROUP BY c_mktsegment ORDER BY c_mktsegment";
    let plan = coordinator
        .sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let text = displayable(plan.as_ref()).indent(false).to_string();
    // The SQLite scan sits inside a stage: a worker runs it.
    let network = text.find("Network").expect("a distributed plan");
    let scan = text.find("FederatedScanExec").expect("a federated scan");
    assert!(network < scan, "{text}");
    assert!(text.contains("source=shop"), "{text}");

    let single = build_context(&base).await.unwrap();
    let expected = rows(&single, sql).await;
    let actual = rows(&coordinator, sql).await;
    assert_eq!(expected.iter().map(|b| b.num_rows()).sum::<usize>(), 5);
    assert_same_rows(&expected, &actual, true);
}
