//! INSERT INTO a measurement: rows written as line protocol read back equal, strings with
//! quotes and spaces included; what InfluxDB cannot store is a clear error.

use datafusion::arrow::array::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use flotilla_connectors_influxdb::{Credentials, InfluxCatalog, InfluxClient};
use flotilla_testkit::influx_data::InfluxDataset;
use flotilla_testkit::{assert_same_rows, influxdb};
use std::sync::Arc;

async fn collect(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    ctx.sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_into_writes_points_that_read_back_equal() {
    let influx = influxdb();
    influx.query(None, "CREATE DATABASE writes").unwrap();
    // The measurements exist (their tags and fields make the tables' columns) before inserts.
    influx
        .write(
            "writes",
            "cpu,host=seed,region=seed usage=1,procs=1i,state=\"s\",healthy=true 1600000000000000000\n\
             weather,station=seed,country=seed temperature=1,humidity=1i,condition=\"c\",raining=false 1600000000000000000\n",
        )
        .unwrap();
    let client = InfluxClient::new("w", &influx.url(), "writes", &Credentials::None).unwrap();
    let ctx = SessionContext::new();
    ctx.register_catalog("w", Arc::new(InfluxCatalog::connect(client).await.unwrap()));
    let data = InfluxDataset::generate(3000);
    for measurement in &data.measurements {
        let batch = measurement.batch.clone();
        let table = MemTable::try_new(batch.schema(), vec![vec![batch.clone()]]).unwrap();
        let source = format!("src_{}", measurement.name);
        ctx.register_table(source.as_str(), Arc::new(table))
            .unwrap();
        let columns: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| format!("\"{}\"", f.name()))
            .collect();
        let columns = columns.join(", ");
        let inserted = collect(
            &ctx,
            &format!(
                "INSERT INTO w.writes.{} ({columns}) SELECT {columns} FROM {source}",
                measurement.name
            ),
        )
        .await;
        let count = inserted[0]
            .column(0)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::UInt64Array>()
            .unwrap()
            .value(0);
        assert_eq!(count, 3000);
        let order = format!("ORDER BY time, \"{}\"", measurement.tags[0]);
        let expected = collect(&ctx, &format!("SELECT {columns} FROM {source} {order}")).await;
        let actual = collect(
            &ctx,
            &format!(
                "SELECT {columns} FROM w.writes.{} WHERE time >= TIMESTAMP '2025-01-01T00:00:00Z' {order}",
                measurement.name
            ),
        )
        .await;
        assert_same_rows(&expected, &actual, true);
    }
    // A tag value with a comma and a space, a string with quotes and a backslash.
    collect(
        &ctx,
        "INSERT INTO w.writes.weather (time, station, country, condition, temperature) \
         VALUES (TIMESTAMP '2024-06-01T00:00:00Z', 'north, pole', 'X', 'say \"hi\" \\ bye', 1.5)",
    )
    .await;
    let back = collect(
        &ctx,
        "SELECT station, condition FROM w.writes.weather WHERE country = 'X'",
    )
    .await;
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&back)
        .unwrap()
        .to_string();
    assert!(
        text.contains("north, pole") && text.contains("say \"hi\" \\ bye"),
        "{text}"
    );

    // What InfluxDB cannot store is refused, naming the source.
    for (sql, words) in [
        (
            "INSERT INTO w.writes.weather (time, station, country) \
             VALUES (TIMESTAMP '2024-06-01T00:00:00Z', 'a', 'b')",
            "no field values",
        ),
        (
            "INSERT INTO w.writes.weather (time, station, temperature) \
             VALUES (TIMESTAMP '2024-06-01T00:00:00Z', 'a', 'NaN'::double)",
            "finite",
        ),
        (
            "INSERT OVERWRITE w.writes.weather (time, temperature) \
             VALUES (TIMESTAMP '2024-06-01T00:00:00Z', 1.0)",
            "INSERT INTO only",
        ),
    ] {
        let error = match ctx.sql(sql).await {
            Ok(frame) => frame.collect().await.unwrap_err().to_string(),
            Err(e) => e.to_string(),
        };
        assert!(
            error.contains(words) && error.contains("source 'w'"),
            "{sql}: {error}"
        );
    }
}
