//! Distributed queries over the node's sources: a federated SQLite table joined with Parquet,
//! split into stages run by two workers (each built like `flotilla serve` builds its own).

use crate::flightsql::{Served, serve_config};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::displayable;
use datafusion::prelude::SessionContext;
use flotilla_connectors_postgres::{PostgresOptions, PostgresSource};
use flotilla_distributed::LocalhostCluster;
use flotilla_federation::{Dialect, RemoteTable, Source, SourceIdentity, TableName, catalog_of};
use flotilla_node::config::{ClusterConfig, Config, Peers};
use flotilla_node::context::{build_context, worker};
use flotilla_testkit::assert_same_rows;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// TPC-H at SF 0.1 in SQLite and Parquet.
fn data() -> &'static PathBuf {
    crate::common::tpch_data()
}

pub(crate) fn config_text() -> String {
    format!(
        // The default catalog is a source: a worker must not replace it with an empty one.
        "[session]\ndefault_catalog = \"lake\"\ndefault_schema = \"public\"\n\n\
         [sources.shop]\nkind = \"sqlite\"\npath = \"{}\"\n\n[sources.lake]\nkind = \"parquet\"\npath = \"{}\"\n",
        data()
            .join("sqlite")
            .join(flotilla_tpch::SQLITE_FILE_NAME)
            .display(),
        data().join("parquet").display()
    )
}

pub(crate) fn config() -> Config {
    Config::parse(&config_text(), "test.toml", Path::new(".")).unwrap()
}

/// The coordinator of `config`'s cluster, spreading every stage over all nodes.
pub(crate) async fn fanned_out(config: &Config) -> SessionContext {
    let ctx = build_context(config).await.unwrap();
    for set in [
        "SET distributed.min_bytes = 0",
        "SET distributed.bytes_per_task = 1",
    ] {
        ctx.sql(set).await.unwrap();
    }
    ctx
}

/// A coordinator in this process over the nodes at `urls`, spreading every stage over all.
pub(crate) async fn coordinating(urls: &[String]) -> SessionContext {
    coordinating_with(&config(), urls).await
}

/// A coordinator built from `base` over the nodes at `urls`, spreading every stage over all.
async fn coordinating_with(base: &Config, urls: &[String]) -> SessionContext {
    let mut distributed = base.clone();
    distributed.cluster = Some(ClusterConfig {
        peers: Peers::Static(urls.to_vec()),
        tls_root_cert: None,
        secret_env: None,
    });
    fanned_out(&distributed).await
}

pub(crate) async fn plan_text(ctx: &SessionContext, sql: &str) -> String {
    let plan = ctx
        .sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    displayable(plan.as_ref()).indent(false).to_string()
}

/// Runs every statement of `statements` in each of `sessions` (one node's and a cluster's, say).
async fn set_in_all(sessions: &[&SessionContext], statements: &[String]) {
    for session in sessions {
        for statement in statements {
            rows(session, statement).await;
        }
    }
}

pub(crate) async fn rows(
    ctx: &SessionContext,
    sql: &str,
) -> Vec<datafusion::arrow::array::RecordBatch> {
    ctx.sql(sql)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Two workers built from `base` like `flotilla serve` builds its own (their sessions, kept
/// alive with the cluster), and a coordinator over them.
pub(crate) async fn two_nodes(
    base: &Config,
) -> (Vec<SessionContext>, LocalhostCluster, SessionContext) {
    let mut nodes = Vec::new();
    for _ in 0..2 {
        nodes.push(build_context(base).await.unwrap());
    }
    let cluster = LocalhostCluster::start(2, |i| worker(&nodes[i], base).unwrap())
        .await
        .unwrap();
    let coordinator = coordinating_with(base, cluster.urls()).await;
    (nodes, cluster, coordinator)
}

/// Runs `sql` (a federated table of `source` joined with Parquet) on two workers built from
/// `base` like `flotilla serve` builds its own: the federated scan must sit in a worker stage
/// and the rows equal one node's.
async fn check_federated_join_across_nodes(base: &Config, sql: &str, source: &str) {
    let (nodes, _cluster, coordinator) = two_nodes(base).await;

    let text = plan_text(&coordinator, sql).await;
    // The database scan sits inside a stage: a worker runs it.
    let network = text.find("Network").expect("a distributed plan");
    let scan = text.find("FederatedScanExec").expect("a federated scan");
    assert!(network < scan, "{text}");
    assert!(text.contains(&format!("source={source}")), "{text}");

    let single = build_context(base).await.unwrap();
    let expected = rows(&single, sql).await;
    let actual = rows(&coordinator, sql).await;
    assert_eq!(expected.iter().map(|b| b.num_rows()).sum::<usize>(), 5);
    assert_same_rows(&expected, &actual, true);
    // The workers' nodes still see their sources.
    for node in &nodes {
        assert_eq!(rows(node, "SELECT * FROM region").await[0].num_rows(), 5);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_federated_sqlite_table_joins_parquet_across_nodes() {
    let sql = "SELECT c_mktsegment, count(*) AS orders, sum(o_totalprice) AS total \
               FROM shop.main.customer JOIN lake.public.orders ON c_custkey = o_custkey \
               WHERE c_acctbal > 0 GROUP BY c_mktsegment ORDER BY c_mktsegment";
    check_federated_join_across_nodes(&config(), sql, "shop").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_federated_postgres_table_joins_parquet_across_nodes() {
    let server = flotilla_testkit::postgres();
    let schema = server.load_tpch(0.1).unwrap();
    let text = format!(
        "{}\n[sources.pg]\nkind = \"postgres\"\nurl = \"{}\"\n",
        config_text(),
        server.url()
    );
    let base = Config::parse(&text, "test.toml", Path::new(".")).unwrap();
    let sql = format!(
        "SELECT c_mktsegment, count(*) AS orders, sum(o_totalprice) AS total \
         FROM pg.{schema}.customer JOIN lake.public.orders ON c_custkey = o_custkey \
         WHERE c_acctbal > 0 GROUP BY c_mktsegment ORDER BY c_mktsegment"
    );
    check_federated_join_across_nodes(&base, &sql, "pg").await;
}

/// The real PostgreSQL source, noting every statement it runs on its node.
#[derive(Debug)]
struct Noting {
    inner: Arc<dyn Source>,
    sent: Arc<Mutex<Vec<String>>>,
}

#[async_trait::async_trait]
impl Source for Noting {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn identity(&self) -> &SourceIdentity {
        self.inner.identity()
    }

    fn dialect(&self) -> &dyn Dialect {
        self.inner.dialect()
    }

    fn learned(&self) -> Option<&flotilla_federation::learn::Learned> {
        self.inner.learned()
    }

    async fn schemas(&self) -> flotilla_common::Result<Vec<String>> {
        self.inner.schemas().await
    }

    async fn tables(&self) -> flotilla_common::Result<Vec<TableName>> {
        self.inner.tables().await
    }

    async fn describe(
        &self,
        schema: &str,
        table: &str,
    ) -> flotilla_common::Result<Option<RemoteTable>> {
        self.inner.describe(schema, table).await
    }

    fn execute(
        &self,
        sql: &str,
        schema: SchemaRef,
        batch_size: usize,
    ) -> datafusion::common::Result<SendableRecordBatchStream> {
        self.sent.lock().unwrap().push(sql.to_string());
        self.inner.execute(sql, schema, batch_size)
    }
}

/// A big PostgreSQL table read in key ranges by a cluster: the ranges are shared out among the
/// stage's tasks, so each node runs some of the statements, and the rows equal one node's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_table_read_in_key_ranges_is_spread_over_the_nodes() {
    let server = flotilla_testkit::postgres();
    let schema = server.load_tpch(0.1).unwrap();
    let text = format!(
        "{}\n[sources.pg]\nkind = \"postgres\"\nurl = \"{}\"\n\n[session.options]\n\
         \"flotilla.federation.partition_rows\" = \"10000\"\n\
         \"datafusion.execution.target_partitions\" = \"4\"\n",
        config_text(),
        server.url()
    );
    let base = Config::parse(&text, "test.toml", Path::new(".")).unwrap();
    let NotingNodes {
        _cluster: _running,
        sent,
        sources,
        coordinator,
    } = noting_nodes(&base, &server.url()).await;
    let sql = format!(
        "SELECT o_orderpriority, count(*) AS orders, sum(o_totalprice) AS total \
         FROM pg.{schema}.orders JOIN lake.public.customer ON o_custkey = c_custkey \
         WHERE c_mktsegment = 'BUILDING' GROUP BY o_orderpriority ORDER BY o_orderpriority"
    );
    let text = plan_text(&coordinator, &sql).await;
    let network = text.find("Network").expect("a distributed plan");
    let scan = text
        .lines()
        .find(|l| l.contains("FederatedScanExec") && l.contains("orders"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(network < text.find(scan).unwrap(), "{text}");
    let ranges = scan
        .split("partitions=[")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .map_or(0, |ranges| ranges.split(';').count());

    let single = build_context(&base).await.unwrap();
    let expected = rows(&single, &sql).await;
    let actual = rows(&coordinator, &sql).await;
    assert_eq!(expected.iter().map(|b| b.num_rows()).sum::<usize>(), 5);
    assert_same_rows(&expected, &actual, true);

    // Each node ran some of the range statements (those with a condition on the key), and
    // together every one.
    let ran: Vec<Vec<String>> = sent
        .iter()
        .map(|noted| {
            noted
                .lock()
                .unwrap()
                .iter()
                .filter(|sql| sql.contains("\"orders\"") && sql.contains("\"o_orderkey\""))
                .cloned()
                .collect()
        })
        .collect();
    assert!(
        ran.iter().all(|statements| !statements.is_empty()),
        "statements by node: {ran:#?}\n{text}"
    );
    let distinct: std::collections::BTreeSet<&String> = ran.iter().flatten().collect();
    assert!(ranges >= 4, "not read in 4 key ranges:\n{text}");
    assert_eq!(distinct.len(), ranges, "{ran:#?}");
    // The scan's estimates travelled with it: each worker's source learns from the statements
    // it ran as planned (here without join keys, with which they read less than estimated).
    let off = "SET flotilla.federation.join_key_pushdown = false".to_string();
    set_in_all(&[&coordinator], &[off]).await;
    assert_same_rows(&expected, &rows(&coordinator, &sql).await, true);
    for source in &sources {
        let learned = source.learned().expect("the workers' sources learn");
        assert!(learned.statements() > 0, "{ran:#?}");
    }

    // With 1 to 3 partitions per node (fewer ranges, or none), the rows are still one node's.
    for partitions in 1..=3 {
        let set = format!("SET datafusion.execution.target_partitions = {partitions}");
        set_in_all(&[&single, &coordinator], &[set]).await;
        let expected = rows(&single, &sql).await;
        let actual = rows(&coordinator, &sql).await;
        assert_same_rows(&expected, &actual, true);
    }
}

/// Two workers built from `base` whose source `pg` (PostgreSQL at `url`, learning its speed as
/// a node's does) notes the statements it runs (one list per node), and a coordinator over
/// them.
async fn noting_nodes(base: &Config, url: &str) -> NotingNodes {
    let mut nodes = Vec::new();
    let mut sent = Vec::new();
    let mut sources = Vec::new();
    for _ in 0..2 {
        let node = build_context(base).await.unwrap();
        let pg = PostgresSource::new("pg", url, PostgresOptions::default()).unwrap();
        let noted = Arc::new(Mutex::new(Vec::new()));
        let source: Arc<dyn Source> = Arc::new(Noting {
            inner: flotilla_federation::with_learning(Arc::new(pg)),
            sent: Arc::clone(&noted),
        });
        node.register_catalog("pg", catalog_of(Arc::clone(&source)).await.unwrap());
        nodes.push(node);
        sent.push(noted);
        sources.push(source);
    }
    let cluster = LocalhostCluster::start(2, |i| worker(&nodes[i], base).unwrap())
        .await
        .unwrap();
    let coordinator = coordinating_with(base, cluster.urls()).await;
    NotingNodes {
        _cluster: cluster,
        sent,
        sources,
        coordinator,
    }
}

/// What [`noting_nodes`] starts. Bind `_cluster` to a name: the workers stop when it is dropped.
struct NotingNodes {
    _cluster: LocalhostCluster,
    /// The statements each worker's `pg` ran.
    sent: Vec<Arc<Mutex<Vec<String>>>>,
    /// Each worker's `pg`.
    sources: Vec<Arc<dyn Source>>,
    coordinator: SessionContext,
}

/// A PostgreSQL table read in key ranges in a worker stage, probed there by a hash join whose
/// build side is a few customers (known only once it is built): each range statement the
/// workers send carries the join's keys (`keys.rs`), as it does on one node, and the rows equal one node's at 1 to 4 partitions
/// and with the keys turned off.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn join_keys_reach_a_database_scan_in_a_worker_stage() {
    let server = flotilla_testkit::postgres();
    let schema = server.load_tpch(0.1).unwrap();
    let text = format!(
        "{}\n[sources.pg]\nkind = \"postgres\"\nurl = \"{}\"\n\n[session.options]\n\
         \"flotilla.federation.partition_rows\" = \"10000\"\n",
        config_text(),
        server.url()
    );
    let base = Config::parse(&text, "test.toml", Path::new(".")).unwrap();
    let NotingNodes {
        _cluster: _running,
        sent,
        coordinator,
        ..
    } = noting_nodes(&base, &server.url()).await;
    let single = build_context(&base).await.unwrap();
    let sql = format!(
        "SELECT c_name, count(*) AS orders, sum(o_totalprice) AS total \
         FROM pg.{schema}.orders JOIN lake.public.customer ON o_custkey = c_custkey \
         WHERE c_acctbal > 9950 GROUP BY c_name ORDER BY c_name"
    );
    for keys in [true, false] {
        for partitions in 1..=4 {
            set_in_all(
                &[&single, &coordinator],
                &[
                    format!("SET flotilla.federation.join_key_pushdown = {keys}"),
                    format!("SET datafusion.execution.target_partitions = {partitions}"),
                ],
            )
            .await;
            for noted in &sent {
                noted.lock().unwrap().clear();
            }
            let setting = format!("join_key_pushdown = {keys}, {partitions} partition(s)");
            let text = plan_text(&coordinator, &sql).await;
            let scan = text
                .lines()
                .find(|l| l.contains("FederatedScanExec") && l.contains("\"orders\""))
                .unwrap_or_else(|| panic!("{setting}: no scan of orders:\n{text}"));
            let network = text.find("Network").expect("a distributed plan");
            assert!(network < text.find(scan).unwrap(), "{setting}:\n{text}");

            let expected = rows(&single, &sql).await;
            let customers = expected.iter().map(|b| b.num_rows()).sum::<usize>();
            assert!((10..100).contains(&customers), "{customers} customers");
            assert_same_rows(&expected, &rows(&coordinator, &sql).await, true);

            let statements: Vec<String> = sent
                .iter()
                .flat_map(|noted| noted.lock().unwrap().clone())
                .filter(|sql| sql.contains("\"orders\""))
                .collect();
            assert!(
                !statements.is_empty(),
                "{setting}: the workers read no orders"
            );
            for statement in &statements {
                assert_eq!(
                    statement.contains("AS \"keys\""),
                    keys,
                    "{setting}: {statement}\n{text}"
                );
            }
        }
    }
}

/// SQLite tables read as key ranges by a cluster — orders by its `INTEGER PRIMARY KEY`,
/// lineitem by its rowid; the ranges shared out among a stage's tasks, each node reading its
/// own copy of the file — by cost and pulled (`pushdown = 'none'` reads in ranges too): one
/// node's rows at 1 to 4 partitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_tables_read_in_key_ranges_by_a_cluster_equal_one_node() {
    let text = format!(
        "{}\n[session.options]\n\"flotilla.federation.partition_rows\" = \"10000\"\n",
        config_text()
    );
    let base = Config::parse(&text, "test.toml", Path::new(".")).unwrap();
    let (_nodes, _cluster, coordinator) = two_nodes(&base).await;
    let single = build_context(&base).await.unwrap();
    // orders by its INTEGER PRIMARY KEY; lineitem (primary key l_orderkey, l_linenumber) by
    // its hidden rowid.
    let queries = [
        (
            "SELECT o_orderpriority, count(*) AS orders, sum(o_totalprice) AS total \
             FROM shop.main.orders JOIN lake.public.customer ON o_custkey = c_custkey \
             WHERE c_mktsegment = 'BUILDING' GROUP BY o_orderpriority ORDER BY o_orderpriority",
            "\"orders\"",
            "partitions=[o_orderkey < ",
            5,
        ),
        (
            "SELECT l_returnflag, count(*) AS items, sum(l_quantity) AS quantity \
             FROM shop.main.lineitem JOIN lake.public.orders ON l_orderkey = o_orderkey \
             WHERE o_orderpriority = '1-URGENT' GROUP BY l_returnflag ORDER BY l_returnflag",
            "\"lineitem\"",
            "partitions=[_rowid_ < ",
            3,
        ),
    ];
    for pushdown in ["cost", "none"] {
        for partitions in 1..=4 {
            set_in_all(
                &[&single, &coordinator],
                &[
                    format!("SET flotilla.federation.pushdown = '{pushdown}'"),
                    format!("SET datafusion.execution.target_partitions = {partitions}"),
                ],
            )
            .await;
            for (sql, table, ranges, groups) in queries {
                // Printed with the failure, if the rows differ.
                println!("pushdown = '{pushdown}', {partitions} partition(s): {sql}");
                let expected = rows(&single, sql).await;
                assert_eq!(expected.iter().map(|b| b.num_rows()).sum::<usize>(), groups);
                assert_same_rows(&expected, &rows(&coordinator, sql).await, true);
                let text = plan_text(&coordinator, sql).await;
                let scan = text
                    .lines()
                    .find(|l| l.contains("FederatedScanExec") && l.contains(table))
                    .unwrap_or_else(|| panic!("no scan of {table}:\n{text}"));
                assert!(text.contains("Network"), "not distributed:\n{text}");
                assert_eq!(
                    scan.contains(ranges),
                    partitions > 1,
                    "pushdown = '{pushdown}', {partitions} partition(s):\n{text}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_node_fails_its_query_fast_and_naming_it_and_the_cluster_goes_on() {
    // Two `flotilla serve` processes are the cluster; this test coordinates.
    let mut nodes: Vec<Served> = (0..2).map(|_| serve_config(&config_text(), &[])).collect();
    let urls: Vec<String> = nodes.iter().map(|node| node.uri.clone()).collect();
    let coordinator = coordinating(&urls).await;
    // Not run again on the node left (see the next test): the query fails.
    coordinator
        .sql("SET distributed.retry = 'none'")
        .await
        .unwrap();
    // Long enough to be running when a node dies: 600,000 lines paired by supplier.
    let heavy = "SELECT count(*) FROM lake.public.lineitem a \
                 JOIN lake.public.lineitem b ON a.l_suppkey = b.l_suppkey";
    let text = plan_text(&coordinator, heavy).await;
    assert!(text.contains(&urls[0]) && text.contains(&urls[1]), "{text}");
    let running = {
        let ctx = coordinator.clone();
        tokio::spawn(async move { ctx.sql(heavy).await?.collect().await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(
        !running.is_finished(),
        "the query ended before the node was killed"
    );
    nodes[1].child.kill().unwrap();
    let killed = std::time::Instant::now();
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(5), running)
        .await
        .expect("the query fails within 5 s of the kill")
        .unwrap();
    let error = outcome.expect_err("the query cannot succeed without the killed node");
    let message = error.to_string();
    assert!(message.contains(&urls[1]), "{message}");
    assert!(message.contains("unreachable"), "{message}");
    assert!(message.contains("distributed.retry is none"), "{message}");
    assert!(!message.contains("bug"), "{message}");
    eprintln!("failed {:?} after the kill: {message}", killed.elapsed());

    // The next queries run on the node left.
    let sql = "SELECT c_mktsegment, count(*) FROM shop.main.customer \
               JOIN lake.public.orders ON c_custkey = o_custkey GROUP BY 1 ORDER BY 1";
    let text = plan_text(&coordinator, sql).await;
    assert!(!text.contains(&urls[1]), "{text}");
    let expected = rows(&build_context(&config()).await.unwrap(), sql).await;
    assert_same_rows(&expected, &rows(&coordinator, sql).await, true);

    // The cluster table says so: the killed node is down (and why), the other, idle again,
    // answers with the tasks it runs (the status action reaches `flotilla serve`'s worker).
    let nodes = rows(
        &coordinator,
        "SELECT node, state, last_error IS NOT NULL, running_tasks IS NOT NULL \
         FROM flotilla.cluster.nodes ORDER BY node",
    )
    .await;
    let listed = datafusion::arrow::util::pretty::pretty_format_batches(&nodes)
        .unwrap()
        .to_string();
    let line = |url: &str| {
        listed
            .lines()
            .find(|line| line.contains(url))
            .unwrap_or_else(|| panic!("{url} is not listed:\n{listed}"))
            .replace(' ', "")
    };
    assert!(line(&urls[1]).contains("|down|true|false|"), "{listed}");
    assert!(line(&urls[0]).contains("|up|false|true|"), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_query_whose_node_is_killed_runs_again_on_the_nodes_left() {
    // Three `flotilla serve` processes; one is killed (SIGKILL) while a query runs on all.
    let mut nodes: Vec<Served> = (0..3).map(|_| serve_config(&config_text(), &[])).collect();
    let urls: Vec<String> = nodes.iter().map(|node| node.uri.clone()).collect();
    let coordinator = coordinating(&urls).await;
    let sql = "SELECT l_suppkey % 10 AS bucket, count(*), sum(o_totalprice) \
               FROM lake.public.lineitem JOIN lake.public.orders ON l_orderkey = o_orderkey \
               JOIN shop.main.customer ON o_custkey = c_custkey \
               GROUP BY 1 ORDER BY 1";
    let expected = rows(&build_context(&config()).await.unwrap(), sql).await;
    let text = plan_text(&coordinator, sql).await;
    assert!(urls.iter().all(|url| text.contains(url.as_str())), "{text}");
    let before = flotilla_distributed::queries_run_again();
    let running = {
        let ctx = coordinator.clone();
        tokio::spawn(async move { ctx.sql(sql).await?.collect().await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let was_running = !running.is_finished();
    nodes[2].child.kill().unwrap();
    let actual = running
        .await
        .unwrap()
        .expect("the query runs again on the nodes left");
    assert_same_rows(&expected, &actual, true);
    if was_running {
        assert!(
            flotilla_distributed::queries_run_again() > before,
            "the query was running when its node died, yet did not run again"
        );
    }
    // The next query is right too, and from then on the node is left out (had the first one
    // ended before the kill, nothing would have seen the node die yet).
    assert_same_rows(&expected, &rows(&coordinator, sql).await, true);
    let text = plan_text(&coordinator, sql).await;
    assert!(!text.contains(&urls[2]), "{text}");
}

/// `flotilla.query_memory_limit` travels with a query's tasks: on the workers, the tasks of
/// the query share one pool of that size, and the query fails naming the limit; without it
/// the same query runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_query_memory_limit_holds_on_the_workers() {
    let base = config();
    let (_nodes, _cluster, coordinator) = two_nodes(&base).await;
    let sql = "SELECT count(*) FROM lineitem a JOIN lineitem b ON a.l_comment = b.l_comment";
    let text = plan_text(&coordinator, sql).await;
    let network = text.find("Network").expect("a distributed plan");
    let join = text.find("HashJoinExec").expect("a hash join");
    assert!(network < join, "the join runs on the workers:\n{text}");
    coordinator
        .sql("SET flotilla.query_memory_limit = '1M'")
        .await
        .unwrap();
    let error = coordinator
        .sql(sql)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("flotilla.query_memory_limit (1048576 bytes)"),
        "{error}"
    );
    coordinator
        .sql("SET flotilla.query_memory_limit = 0")
        .await
        .unwrap();
    let single = build_context(&base).await.unwrap();
    assert_same_rows(
        &rows(&single, sql).await,
        &rows(&coordinator, sql).await,
        true,
    );
}

#[tokio::test]
async fn session_options_of_the_configuration_are_in_every_session_and_checked() {
    let cluster = "[cluster]\npeers = [\"grpc://127.0.0.1:1\"]\n";
    let text = format!(
        "{}\n{cluster}\n[session.options]\n\"distributed.results_from_workers\" = false\n\
         \"datafusion.execution.batch_size\" = 777\n\"flotilla.statement_timeout\" = \"30s\"\n",
        config_text()
    );
    let ctx = build_context(&Config::parse(&text, "test.toml", Path::new(".")).unwrap())
        .await
        .unwrap();
    let options = Arc::clone(ctx.state().config().options());
    assert_eq!(options.execution.batch_size.get(), 777);
    let distributed = options
        .extensions
        .get::<flotilla_distributed::DistributedOptions>()
        .unwrap();
    assert!(!distributed.results_from_workers);
    assert_eq!(
        flotilla_common::options::QueryLimits::of(&options).statement_timeout,
        Some(std::time::Duration::from_secs(30))
    );

    let build = |text: String| async move {
        match build_context(&Config::parse(&text, "test.toml", Path::new(".")).unwrap()).await {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(error) => error.to_string(),
        }
    };
    let misspelt = build(format!(
        "{}\n{cluster}\n[session.options]\n\"distributed.result_from_workers\" = false\n",
        config_text()
    ))
    .await;
    assert!(misspelt.contains("session.options"), "{misspelt}");
    assert!(misspelt.contains("results_from_workers"), "{misspelt}");
    let alone = build(format!(
        "{}\n[session.options]\n\"distributed.min_bytes\" = 0\n",
        config_text()
    ))
    .await;
    assert!(alone.contains("need a [cluster]"), "{alone}");
}

/// `[[server.users]]` and `[cluster]` for `flotilla serve` nodes finding each other in
/// `peers` (a file written once their ports are known), every stage spread over both nodes
/// by `[session.options]`.
fn secured_config_text(peers: &Path) -> String {
    format!(
        "{}\n[[server.users]]\nname = \"alice\"\npassword_env = \"FLOTILLA_TEST_ALICE\"\n\n\
         [cluster]\npeers_file = \"{}\"\nsecret_env = \"FLOTILLA_TEST_CLUSTER\"\n\n\
         [session.options]\n\"distributed.min_bytes\" = 0\n\"distributed.bytes_per_task\" = 1\n",
        config_text(),
        peers.display()
    )
}

/// A DoGet of a (meaningless) task ticket on `uri` with `metadata`: the status it ends with.
async fn task_call(uri: &str, metadata: &[(&'static str, String)]) -> tonic::Status {
    use arrow_flight::flight_service_client::FlightServiceClient;
    let channel = flotilla_common::grpc::endpoint(uri, None)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let ticket = flotilla_distributed::protocol::TaskTicket {
        plan: b"not a plan".to_vec(),
        query: "q".into(),
        ..Default::default()
    };
    let mut request = tonic::Request::new(arrow_flight::Ticket::new(ticket.seal()));
    for (key, value) in metadata {
        request.metadata_mut().insert(*key, value.parse().unwrap());
    }
    match FlightServiceClient::new(channel).do_get(request).await {
        Err(status) => status,
        Ok(response) => {
            use futures::StreamExt;
            let mut stream = response.into_inner();
            match stream.next().await {
                Some(Err(status)) => status,
                other => panic!("a meaningless task ran: {other:?}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adbc_client_queries_a_cluster_of_serve_nodes_with_users_and_a_secret() {
    let dir = tempfile::tempdir().unwrap().keep();
    flotilla_testkit::reaper::remove_at_exit(&dir);
    let peers = dir.join("peers.txt");
    std::fs::write(&peers, "").unwrap();
    let text = secured_config_text(&peers);
    let secret = "s3cret-shared-by-the-nodes";
    let env = [
        ("FLOTILLA_TEST_ALICE", "wonderland"),
        ("FLOTILLA_TEST_CLUSTER", secret),
    ];
    let nodes: Vec<Served> = (0..2).map(|_| serve_config(&text, &env)).collect();
    std::fs::write(&peers, format!("{}\n{}\n", nodes[0].uri, nodes[1].uri)).unwrap();

    // ADBC signs in to node 0 as alice; node 0 plans, both nodes run stages (calling each
    // other with the secret, not alice's credentials).
    let sql = "SELECT l_returnflag, l_linestatus, count(*) AS n, sum(l_extendedprice) AS total \
               FROM lake.public.lineitem GROUP BY l_returnflag, l_linestatus \
               ORDER BY l_returnflag, l_linestatus";
    let (seen, out) =
        crate::flightsql::client("cluster", &nodes[0].uri, &["alice", "wonderland", sql]);
    let plan = seen["plan"].as_str().unwrap();
    for node in &nodes {
        assert!(plan.contains(&node.uri), "{} runs tasks:\n{plan}", node.uri);
    }
    let expected = rows(&build_context(&config()).await.unwrap(), sql).await;
    let actual = crate::flightsql::read_arrow(&out.join("cluster.arrow"));
    assert_eq!(seen["rows"], 4);
    assert_same_rows(&expected, &actual, true);

    // A query whose last stage only gathers: ADBC reads its rows from both nodes, presenting
    // node 0's token to node 1 too (the signed tickets let it in).
    let gathered = "SELECT l_returnflag, l_linestatus, count(*) AS n, sum(l_extendedprice) AS total \
                    FROM lake.public.lineitem GROUP BY l_returnflag, l_linestatus";
    let (seen, out) = crate::flightsql::client(
        "cluster_results",
        &nodes[0].uri,
        &["alice", "wonderland", gathered],
    );
    let mut locations: Vec<&str> = seen["locations"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|uris| uris.as_array().unwrap())
        .map(|uri| uri.as_str().unwrap())
        .collect();
    locations.sort_unstable();
    let mut uris: Vec<&str> = nodes.iter().map(|node| node.uri.as_str()).collect();
    uris.sort_unstable();
    assert_eq!(locations, uris, "{seen}");
    let expected = rows(&build_context(&config()).await.unwrap(), gathered).await;
    let actual = crate::flightsql::read_arrow(&out.join("results.arrow"));
    assert_same_rows(&expected, &actual, false);

    // A Flotilla node federating the cluster (a `flightsql` source signed in as alice) gets
    // the same endpoints and reads each where it says. (Rows only: node 0 would also serve
    // node 1's ticket, so this does not see where each part was read.)
    let federating = dir.join("federating.toml");
    std::fs::write(
        &federating,
        format!(
            "[sources.cluster]\nkind = \"flightsql\"\nurl = \"{}\"\ncatalog = \"lake\"\n\
             user = \"alice\"\npassword_env = \"FLOTILLA_TEST_ALICE\"\n",
            nodes[0].uri
        ),
    )
    .unwrap();
    let through_source = gathered.replace("lake.public.", "cluster.public.");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(["sql", "-q", "--format", "csv", "-c"])
        .arg(&federating)
        .arg(&through_source)
        .env("FLOTILLA_TEST_ALICE", "wonderland")
        .output()
        .unwrap();
    let (stdout, stderr) = crate::common::text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(
        stdout.lines().count(),
        5,
        "a header and 4 groups:\n{stdout}"
    );
    for line in stdout.lines().skip(1) {
        assert!(line.starts_with(['A', 'N', 'R']), "{stdout}");
    }

    // Task calls without the secret are refused before anything runs; with it they reach
    // the worker (which refuses the meaningless plan).
    // base64 of "alice:wonderland"
    let alice = "Basic YWxpY2U6d29uZGVybGFuZA==".to_string();
    let header = flotilla_common::grpc::CLUSTER_SECRET_HEADER;
    let anonymous = task_call(&nodes[1].uri, &[]).await;
    assert_eq!(
        anonymous.code(),
        tonic::Code::Unauthenticated,
        "{anonymous:?}"
    );
    let user = task_call(&nodes[1].uri, &[("authorization", alice)]).await;
    assert_eq!(user.code(), tonic::Code::PermissionDenied, "{user:?}");
    assert!(user.message().contains("cluster secret"), "{user:?}");
    let wrong = task_call(&nodes[1].uri, &[(header, "guess".into())]).await;
    assert_eq!(wrong.code(), tonic::Code::Unauthenticated, "{wrong:?}");
    assert!(
        wrong.message().contains("wrong cluster secret"),
        "{wrong:?}"
    );
    let peer = task_call(&nodes[1].uri, &[(header, secret.into())]).await;
    assert!(peer.message().contains("cannot decode"), "{peer:?}");

    // Users without a cluster secret would lock the nodes out of each other: refused early.
    let unsecured = text.replace("secret_env = \"FLOTILLA_TEST_CLUSTER\"\n", "");
    let error = Config::parse(&unsecured, "test.toml", Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(error.contains("secret_env"), "{error}");
}
