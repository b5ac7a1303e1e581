//! SQL over InfluxDB measurements equals DataFusion over the same points in Parquet; the
//! InfluxQL sent carries the time ranges, tag filters and limits; failures are clear errors.

use datafusion::arrow::array::RecordBatch;
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider};
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::datasource::MemTable;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::physical_plan::displayable;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use flotilla_connectors_influxdb::{
    Credentials, InfluxAggregatePushdown, InfluxCatalog, InfluxClient,
};
use flotilla_testkit::influx_data::InfluxDataset;
use flotilla_testkit::{INFLUX_ADMIN, InfluxDb, assert_same_rows, influxdb, query_is_ordered};
use std::sync::{Arc, OnceLock};

const POINTS: usize = 20_000;
const DATABASE: &str = "telemetry";

/// The shared server with the data set written once.
fn data() -> &'static InfluxDataset {
    static DATA: OnceLock<InfluxDataset> = OnceLock::new();
    DATA.get_or_init(|| {
        let data = InfluxDataset::generate(POINTS);
        let influx = influxdb();
        influx
            .query(None, &format!("CREATE DATABASE {DATABASE}"))
            .unwrap();
        for chunk in data.line_protocol(5000) {
            influx.write(DATABASE, &chunk).unwrap();
        }
        data
    })
}

async fn influx_context() -> SessionContext {
    data();
    let client =
        InfluxClient::new("influx", &influxdb().url(), DATABASE, &Credentials::None).unwrap();
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_optimizer_rule(Arc::new(InfluxAggregatePushdown))
        .build();
    let ctx = SessionContext::new_with_state(state);
    let catalog = InfluxCatalog::connect(client).await.unwrap();
    ctx.register_catalog("influx", Arc::new(catalog));
    ctx
}

/// DataFusion over the data set's Arrow twin written as Parquet, under the same names.
async fn parquet_context() -> SessionContext {
    let ctx = SessionContext::new();
    let catalog = Arc::new(MemoryCatalogProvider::new());
    catalog
        .register_schema(DATABASE, Arc::new(MemorySchemaProvider::new()))
        .unwrap();
    ctx.register_catalog("influx", catalog);
    let dir = tempfile_dir();
    for measurement in &data().measurements {
        let batch = measurement.batch.clone();
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).unwrap();
        let path = dir.join(format!("{}.parquet", measurement.name));
        ctx.read_table(Arc::new(table))
            .unwrap()
            .write_parquet(
                path.to_str().unwrap(),
                DataFrameWriteOptions::new().with_single_file_output(true),
                None,
            )
            .await
            .unwrap();
        ctx.register_parquet(
            format!("influx.{DATABASE}.{}", measurement.name),
            path.to_str().unwrap(),
            ParquetReadOptions::default(),
        )
        .await
        .unwrap();
    }
    ctx
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = flotilla_testkit::reaper::temp_dir("flotilla-influx-parquet-").unwrap();
    flotilla_testkit::reaper::remove_at_exit(&dir);
    dir
}

async fn run(ctx: &SessionContext, sql: &str) -> (Vec<RecordBatch>, String) {
    let frame = ctx.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let plan = frame.clone().create_physical_plan().await.unwrap();
    let text = displayable(plan.as_ref()).indent(false).to_string();
    let batches = frame
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}\n{text}"));
    (batches, text)
}

/// The InfluxQL of the plan's scans.
fn influxql(plan: &str) -> Vec<&str> {
    plan.lines()
        .filter_map(|line| line.split("influxql=").nth(1))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_over_measurements_equals_datafusion_over_parquet() {
    let influx = influx_context().await;
    let reference = parquet_context().await;
    let queries = [
        // A time range and a tag: both in the InfluxQL.
        "SELECT time, host, usage, procs, state, healthy FROM influx.telemetry.cpu \
         WHERE time >= TIMESTAMP '2025-03-01T00:00:00Z' AND time < TIMESTAMP '2025-04-01T00:00:00Z' \
         AND host = 'host-007' ORDER BY time",
        // Tags in a list, a field comparison, grouped by a tag.
        "SELECT region, count(*) AS n, avg(usage) AS mean, max(procs) AS top, \
         sum(CASE WHEN healthy THEN 1 ELSE 0 END) AS fine FROM influx.telemetry.cpu \
         WHERE region IN ('eu-west', 'us-east') AND usage > 50.5 GROUP BY region ORDER BY region",
        // Weekly buckets per station.
        "SELECT date_bin(INTERVAL '7 days', time, TIMESTAMP '2025-01-01T00:00:00Z') AS week, \
         station, avg(temperature) AS t, min(humidity) AS h, count(condition) AS c \
         FROM influx.telemetry.weather WHERE country = 'NO' GROUP BY week, station \
         ORDER BY week, station",
        // Top-N by time.
        "SELECT time, station, temperature FROM influx.telemetry.weather ORDER BY time DESC LIMIT 10",
        // A string field with quotes in it, a boolean field.
        "SELECT count(*) AS n FROM influx.telemetry.weather \
         WHERE condition = 'fog \"thick\"' AND raining = false",
        // Points missing a field are rows with NULL; every point is a row.
        "SELECT count(*) AS n, count(state) AS s, count(procs) AS p FROM influx.telemetry.cpu",
        "SELECT host, count(*) AS n FROM influx.telemetry.cpu WHERE state IS NULL \
         GROUP BY host ORDER BY n DESC, host LIMIT 5",
        // A regex on a tag (sent, and checked again by DataFusion).
        "SELECT host, count(*) AS n FROM influx.telemetry.cpu WHERE host ~ '^host-00[1-3]$' \
         GROUP BY host ORDER BY host",
        // Tag inequality and a negated regex (sent, and checked again by DataFusion).
        "SELECT region, count(*) AS n FROM influx.telemetry.cpu \
         WHERE region != 'eu-west' AND host !~ '7$' GROUP BY region ORDER BY region",
        // A time comparison under OR: InfluxDB would take it as the range of the whole query,
        // so the condition stays with DataFusion.
        "SELECT host, count(*) AS n FROM influx.telemetry.cpu \
         WHERE time >= TIMESTAMP '2025-12-01T00:00:00Z' OR host = 'host-001' GROUP BY host ORDER BY host",
        // Integer and float comparisons, OR.
        "SELECT count(*) AS n FROM influx.telemetry.cpu WHERE procs < 0 OR usage >= 99.5",
    ];
    for sql in queries {
        let (expected, _) = run(&reference, sql).await;
        let (actual, plan) = run(&influx, sql).await;
        assert!(
            expected.iter().map(RecordBatch::num_rows).sum::<usize>() > 0,
            "{sql} should return rows"
        );
        assert_same_rows(&expected, &actual, query_is_ordered(sql));
        assert!(!influxql(&plan).is_empty(), "{plan}");
    }
    let (_, plan) = run(&influx, queries[0]).await;
    let sent = influxql(&plan)[0];
    // 2025-03-01 and 2025-04-01 in nanoseconds.
    assert!(sent.contains("time >= 1740787200000000000"), "{sent}");
    assert!(sent.contains("time < 1743465600000000000"), "{sent}");
    assert!(sent.contains("\"host\" = 'host-007'"), "{sent}");
    let (_, plan) = run(&influx, queries[1]).await;
    let sent = influxql(&plan)[0];
    assert!(
        sent.contains("\"region\" = 'eu-west' OR \"region\" = 'us-east'"),
        "{sent}"
    );
    assert!(sent.contains("\"usage\" > 50.5"), "{sent}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_by_tags_and_time_buckets_run_in_influxdb_with_sql_results() {
    let influx = influx_context().await;
    let reference = parquet_context().await;
    let queries = [
        // By tag, after a time bound and a tag filter.
        "SELECT host, avg(usage) AS mean, max(procs) AS top, count(state) AS states \
         FROM influx.telemetry.cpu WHERE time >= TIMESTAMP '2025-02-01T00:00:00Z' \
         AND region = 'eu-west' GROUP BY host ORDER BY host",
        // Daily buckets (date_bin from the epoch).
        "SELECT date_bin(INTERVAL '1 day', time) AS day, avg(temperature) AS t, \
         sum(humidity) AS h, min(temperature) AS lo FROM influx.telemetry.weather \
         WHERE time >= TIMESTAMP '2025-03-01T00:00:00Z' AND time < TIMESTAMP '2025-04-01T00:00:00Z' \
         GROUP BY day ORDER BY day",
        // Weekly buckets from an origin that is not the epoch's, and a tag.
        "SELECT date_bin(INTERVAL '7 days', time, TIMESTAMP '2025-01-01T00:00:00Z') AS week, \
         station, count(temperature) AS n, avg(humidity) AS h FROM influx.telemetry.weather \
         WHERE time >= TIMESTAMP '2025-01-01T00:00:00Z' AND country = 'NO' \
         GROUP BY week, station ORDER BY week, station",
        // date_trunc to the hour (many buckets without points: none in SQL's answer).
        "SELECT date_trunc('hour', time) AS hour, max(usage) AS peak, count(procs) AS n \
         FROM influx.telemetry.cpu WHERE time >= TIMESTAMP '2025-05-01T00:00:00Z' \
         AND time < TIMESTAMP '2025-05-08T00:00:00Z' GROUP BY hour ORDER BY hour",
        // The oldest and newest value of a field per bucket (first / last).
        "SELECT station, date_trunc('week', time) AS week, \
         first_value(temperature ORDER BY time) IGNORE NULLS AS opening, \
         last_value(humidity ORDER BY time) IGNORE NULLS AS closing \
         FROM influx.telemetry.weather WHERE time >= TIMESTAMP '2025-01-01T00:00:00Z' \
         AND station IN ('station-01', 'station-02') GROUP BY station, week ORDER BY station, week",
        // Without GROUP BY: one row, also over no points at all.
        "SELECT count(usage) AS n, avg(usage) AS mean, sum(procs) AS total \
         FROM influx.telemetry.cpu WHERE host = 'host-042'",
        "SELECT count(usage) AS n, avg(usage) AS mean, sum(procs) AS total \
         FROM influx.telemetry.cpu WHERE time >= TIMESTAMP '2030-01-01T00:00:00Z'",
    ];
    for sql in queries {
        let (expected, _) = run(&reference, sql).await;
        let (actual, plan) = run(&influx, sql).await;
        assert!(
            expected.iter().map(RecordBatch::num_rows).sum::<usize>() > 0,
            "{sql} should return rows"
        );
        assert_same_rows(&expected, &actual, query_is_ordered(sql));
        assert!(
            !plan.contains("AggregateExec"),
            "{sql} is computed by InfluxDB:\n{plan}"
        );
    }
    let (_, plan) = run(&influx, queries[2]).await;
    let sent = influxql(&plan)[0];
    // 7 days in nanoseconds; 2025-01-01 is 6 days past a 7-day boundary from the epoch.
    assert!(
        sent.contains(
            "GROUP BY time(604800000000000ns, 518400000000000ns), \"station\" fill(none)"
        ),
        "{sent}"
    );
    assert!(sent.contains("mean(\"humidity\")"), "{sent}");
    // What InfluxDB cannot compute exactly stays with DataFusion.
    for sql in [
        "SELECT host, count(*) FROM influx.telemetry.cpu WHERE time >= TIMESTAMP '2025-01-01T00:00:00Z' GROUP BY host",
        "SELECT date_bin(INTERVAL '1 day', time) AS d, avg(usage) FROM influx.telemetry.cpu GROUP BY d",
        "SELECT host, count(DISTINCT state) FROM influx.telemetry.cpu GROUP BY host",
        // A time bound under OR bounds nothing: buckets would start in 1677.
        "SELECT date_bin(INTERVAL '1 day', time) AS d, avg(usage) FROM influx.telemetry.cpu \
         WHERE time >= TIMESTAMP '2025-12-01T00:00:00Z' OR host = 'host-001' GROUP BY d",
    ] {
        let (expected, _) = run(&reference, sql).await;
        let (actual, plan) = run(&influx, sql).await;
        assert_same_rows(&expected, &actual, false);
        assert!(plan.contains("AggregateExec"), "{sql}:\n{plan}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_goes_to_influxdb_when_every_condition_did() {
    let ctx = influx_context().await;
    let (batches, plan) = run(
        &ctx,
        "SELECT time, usage, host FROM influx.telemetry.cpu WHERE host = 'host-001' LIMIT 3",
    )
    .await;
    assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 3);
    // Tags are dictionary-encoded text.
    assert!(
        matches!(
            batches[0].schema().field(2).data_type(),
            datafusion::arrow::datatypes::DataType::Dictionary(..)
        ),
        "{:?}",
        batches[0].schema()
    );
    assert!(influxql(&plan)[0].ends_with("LIMIT 3"), "{plan}");
    // OFFSET goes too: the skipped points are not sent.
    let (batches, plan) = run(
        &ctx,
        "SELECT time, usage FROM influx.telemetry.cpu WHERE host = 'host-001' LIMIT 3 OFFSET 5",
    )
    .await;
    assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 3);
    assert!(influxql(&plan)[0].ends_with("LIMIT 3 OFFSET 5"), "{plan}");
    assert!(!plan.contains("GlobalLimitExec"), "{plan}");
    // The same rows InfluxDB gives in time order, 6th to 8th.
    let (all, _) = run(
        &ctx,
        "SELECT time, usage FROM influx.telemetry.cpu WHERE host = 'host-001' ORDER BY time LIMIT 8",
    )
    .await;
    let all = datafusion::arrow::compute::concat_batches(&all[0].schema(), &all).unwrap();
    assert_same_rows(&batches, &[all.slice(5, 3)], false);
    // A condition DataFusion keeps: the limit stays with DataFusion too.
    let (batches, plan) = run(
        &ctx,
        "SELECT time FROM influx.telemetry.cpu WHERE host ~ 'host-00' LIMIT 3",
    )
    .await;
    assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 3);
    assert!(!influxql(&plan)[0].contains("LIMIT"), "{plan}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_unknown_databases_and_a_stopped_server_are_clear_errors() {
    let mut server = InfluxDb::start(true).unwrap();
    server.query(None, "CREATE DATABASE guarded").unwrap();
    server
        .write("guarded", "m,t=a v=1i 1735689600000000000\n")
        .unwrap();
    let client = |password: &str, database: &str| {
        InfluxClient::new(
            "metrics",
            &server.url(),
            database,
            &Credentials::User {
                name: INFLUX_ADMIN.0.into(),
                password: password.into(),
            },
        )
        .unwrap()
    };
    let error = InfluxCatalog::connect(client("wrong", "guarded"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("metrics") && error.contains("authorization failed"),
        "{error}"
    );
    let error = InfluxCatalog::connect(client(INFLUX_ADMIN.1, "nowhere"))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("no database 'nowhere'"), "{error}");

    let ctx = SessionContext::new();
    let catalog = InfluxCatalog::connect(client(INFLUX_ADMIN.1, "guarded"))
        .await
        .unwrap();
    ctx.register_catalog("metrics", Arc::new(catalog));
    let sql = "SELECT t, v FROM metrics.guarded.m";
    assert_eq!(run(&ctx, sql).await.0[0].num_rows(), 1);
    server.stop().unwrap();
    let error = ctx
        .sql(sql)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("metrics") && error.contains("cannot connect"),
        "{error}"
    );
    server.restart().unwrap();
    assert_eq!(run(&ctx, sql).await.0[0].num_rows(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_with_different_types_in_different_shards_is_reported_not_guessed() {
    let influx = influxdb();
    influx.query(None, "CREATE DATABASE mixed").unwrap();
    // A week apart: two shard groups, each accepting its own type for `v`.
    influx
        .write(
            "mixed",
            "m,t=a v=1i,w=1.5 1735689600000000000\nok,t=a v=2i 1735689600000000000\n",
        )
        .unwrap();
    influx
        .write("mixed", "m,t=a v=2.5,w=2.5 1738368000000000000\n")
        .unwrap();
    let client =
        InfluxClient::new("metrics", &influxdb().url(), "mixed", &Credentials::None).unwrap();
    let ctx = SessionContext::new();
    ctx.register_catalog(
        "metrics",
        Arc::new(InfluxCatalog::connect(client).await.unwrap()),
    );
    let error = ctx
        .sql("SELECT * FROM metrics.mixed.m")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("'v'") && error.contains("float, integer") && error.contains("metrics"),
        "{error}"
    );
    // The other measurement is unaffected.
    let (batches, _) = run(&ctx, "SELECT v FROM metrics.mixed.ok").await;
    assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 1);
}
