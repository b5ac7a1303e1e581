//! An InfluxDB source beside relational ones: measurements joined by tag value with a SQLite
//! and a PostgreSQL dimension table, equal to DataFusion over the same rows.

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider};
use datafusion::datasource::MemTable;
use datafusion::physical_plan::displayable;
use datafusion::prelude::SessionContext;
use flotilla_node::config::Config;
use flotilla_node::context::build_context;
use flotilla_testkit::influx_data::InfluxDataset;
use flotilla_testkit::{assert_same_rows, influxdb, postgres};
use std::path::Path;
use std::sync::Arc;

const DATABASE: &str = "fleet";

/// Hosts: owner `team-(h % 7)`, tier `h % 3`.
fn hosts() -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new("host", DataType::Utf8, false),
        Field::new("owner", DataType::Utf8, false),
        Field::new("tier", DataType::Int64, false),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(StringArray::from_iter_values(
                (0..100).map(|h| format!("host-{h:03}")),
            )),
            Arc::new(StringArray::from_iter_values(
                (0..100).map(|h| format!("team-{}", h % 7)),
            )),
            Arc::new(Int64Array::from_iter_values((0..100).map(|h| h % 3))),
        ],
    )
    .unwrap()
}

/// Stations: city `city-(s % 9)`.
fn stations() -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new("station", DataType::Utf8, false),
        Field::new("city", DataType::Utf8, false),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(StringArray::from_iter_values(
                (0..50).map(|s| format!("station-{s:02}")),
            )),
            Arc::new(StringArray::from_iter_values(
                (0..50).map(|s| format!("city-{}", s % 9)),
            )),
        ],
    )
    .unwrap()
}

/// A catalog's name, its schema's name and the schema's tables.
type MemoryCatalog<'a> = (&'a str, &'a str, Vec<(&'a str, RecordBatch)>);

/// DataFusion over the same rows, under the same names.
fn reference(data: &InfluxDataset) -> SessionContext {
    let ctx = SessionContext::new();
    let tables: [MemoryCatalog; 3] = [
        (
            "influx",
            DATABASE,
            data.measurements
                .iter()
                .map(|m| (m.name, m.batch.clone()))
                .collect(),
        ),
        ("dims", "main", vec![("hosts", hosts())]),
        ("pg", "influxjoin", vec![("stations", stations())]),
    ];
    for (catalog_name, schema_name, batches) in tables {
        let catalog = Arc::new(MemoryCatalogProvider::new());
        let schema = Arc::new(MemorySchemaProvider::new());
        for (name, batch) in batches {
            let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).unwrap();
            datafusion::catalog::SchemaProvider::register_table(
                schema.as_ref(),
                name.to_string(),
                Arc::new(table),
            )
            .unwrap();
        }
        catalog.register_schema(schema_name, schema).unwrap();
        ctx.register_catalog(catalog_name, catalog);
    }
    ctx
}

async fn rows(ctx: &SessionContext, sql: &str) -> (Vec<RecordBatch>, String) {
    let frame = ctx.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let plan = frame.clone().create_physical_plan().await.unwrap();
    let text = displayable(plan.as_ref()).indent(false).to_string();
    (frame.collect().await.unwrap(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measurements_join_sqlite_and_postgres_tables_by_tag_value() {
    let influx = influxdb();
    influx
        .query(None, &format!("CREATE DATABASE {DATABASE}"))
        .unwrap();
    let data = InfluxDataset::generate(5000);
    for chunk in data.line_protocol(5000) {
        influx.write(DATABASE, &chunk).unwrap();
    }
    let dir = flotilla_testkit::reaper::temp_dir("flotilla-influx-join-").unwrap();
    flotilla_testkit::reaper::remove_at_exit(&dir);
    let sqlite = dir.join("dims.sqlite");
    {
        let db = rusqlite::Connection::open(&sqlite).unwrap();
        db.execute_batch("CREATE TABLE hosts (host TEXT PRIMARY KEY, owner TEXT NOT NULL, tier INTEGER NOT NULL)")
            .unwrap();
        for h in 0..100 {
            db.execute(
                "INSERT INTO hosts VALUES (?1, ?2, ?3)",
                (format!("host-{h:03}"), format!("team-{}", h % 7), h % 3),
            )
            .unwrap();
        }
    }
    let pg = postgres();
    pg.query(
        "CREATE SCHEMA IF NOT EXISTS influxjoin; DROP TABLE IF EXISTS influxjoin.stations; \
         CREATE TABLE influxjoin.stations AS SELECT 'station-' || lpad(s::text, 2, '0') AS station, \
         'city-' || (s % 9) AS city FROM generate_series(0, 49) AS s",
    )
    .unwrap();
    let text = format!(
        "[sources.influx]\nkind = \"influxdb\"\nurl = \"{}\"\ndatabase = \"{DATABASE}\"\n\n\
         [sources.dims]\nkind = \"sqlite\"\npath = \"{}\"\n\n\
         [sources.pg]\nkind = \"postgres\"\nurl = \"{}\"\n",
        influx.url(),
        sqlite.display(),
        pg.url()
    );
    let config = Config::parse(&text, "test.toml", Path::new(".")).unwrap();
    let ctx = build_context(&config).await.unwrap();
    let expected = reference(&data);

    let with_sqlite = format!(
        "SELECT h.owner, count(*) AS points, avg(c.usage) AS mean, max(c.procs) AS top \
         FROM influx.{DATABASE}.cpu c JOIN dims.main.hosts h ON c.host = h.host \
         WHERE h.tier = 1 AND c.time >= TIMESTAMP '2025-06-01T00:00:00Z' \
         GROUP BY h.owner ORDER BY h.owner"
    );
    // Buckets per owner: the aggregate runs in InfluxDB, the join in DataFusion.
    let bucketed = format!(
        "SELECT h.owner, b.day, b.peak FROM (SELECT host, date_trunc('day', time) AS day, \
         max(usage) AS peak FROM influx.{DATABASE}.cpu \
         WHERE time >= TIMESTAMP '2025-07-01T00:00:00Z' AND time < TIMESTAMP '2025-07-15T00:00:00Z' \
         GROUP BY host, day) b JOIN dims.main.hosts h ON b.host = h.host \
         ORDER BY h.owner, b.day, b.peak"
    );
    let with_postgres = format!(
        "SELECT s.city, count(*) AS points, max(w.temperature) AS hottest \
         FROM influx.{DATABASE}.weather w JOIN pg.influxjoin.stations s ON w.station = s.station \
         WHERE w.country = 'DE' GROUP BY s.city ORDER BY s.city"
    );
    for sql in [&with_sqlite, &with_postgres] {
        let (want, _) = rows(&expected, sql).await;
        let (got, plan) = rows(&ctx, sql).await;
        assert!(
            want.iter().map(RecordBatch::num_rows).sum::<usize>() > 1,
            "{sql}"
        );
        assert_same_rows(&want, &got, true);
        assert!(plan.contains("InfluxScanExec: source=influx"), "{plan}");
        assert!(plan.contains("FederatedScanExec"), "{plan}");
    }
    let (want, _) = rows(&expected, &bucketed).await;
    let (got, plan) = rows(&ctx, &bucketed).await;
    assert_same_rows(&want, &got, true);
    assert!(
        plan.contains("GROUP BY time(86400000000000ns, 0ns), \"host\" fill(none)"),
        "{plan}"
    );
    let (_, plan) = rows(&ctx, &with_sqlite).await;
    assert!(plan.contains("time >= 1748736000000000000"), "{plan}");
    let (_, plan) = rows(&ctx, &with_postgres).await;
    assert!(plan.contains("\"country\" = 'DE'"), "{plan}");

    // A cluster runs the InfluxDB scans on its workers (the scan sits in a stage below a
    // network boundary): one node's rows at 1 to 4 partitions.
    let (_nodes, _cluster, coordinator) = crate::distributed::two_nodes(&config).await;
    for partitions in 1..=4 {
        let set = format!("SET datafusion.execution.target_partitions = {partitions}");
        for node in [&ctx, &coordinator] {
            rows(node, &set).await;
        }
        for sql in [&with_sqlite, &with_postgres, &bucketed] {
            let (want, _) = rows(&ctx, sql).await;
            let (got, plan) = rows(&coordinator, sql).await;
            let network = plan.find("Network").unwrap_or_else(|| panic!("{plan}"));
            let scan = plan
                .find("InfluxScanExec")
                .unwrap_or_else(|| panic!("{plan}"));
            assert!(network < scan, "{partitions} partition(s): {plan}");
            assert_same_rows(&want, &got, true);
        }
    }

    // A source missing its database is a configuration error naming the key.
    let broken = text.replace(&format!("database = \"{DATABASE}\"\n"), "");
    let error = Config::parse(&broken, "test.toml", Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(error.contains("missing key 'database'"), "{error}");
}
