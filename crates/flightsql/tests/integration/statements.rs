//! Prepared statements with parameters, and updates (DDL and DML) with their row counts.

use crate::common;
use arrow_flight::sql::{
    CommandStatementIngest, TableDefinitionOptions, TableExistsOption, TableNotExistOption,
};
use datafusion::arrow::array::{ArrayRef, Int32Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use std::sync::Arc;
use tonic::Code;

fn one_column(name: &str, values: ArrayRef) -> RecordBatch {
    let schema = Schema::new(vec![Field::new(name, values.data_type().clone(), true)]);
    RecordBatch::try_new(Arc::new(schema), vec![values]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_queries_bind_parameters_and_run_again() {
    let server = common::start().await;
    let mut client = common::client(server.addr).await;
    for sql in [
        "SELECT n_name FROM nation WHERE n_nationkey = $1",
        "SELECT n_name FROM nation WHERE n_nationkey = ?",
    ] {
        let mut prepared = client.prepare(sql.into(), None).await.unwrap();
        let parameters = prepared.parameter_schema().unwrap().clone();
        assert_eq!(parameters.fields().len(), 1, "{sql}");
        assert_eq!(parameters.field(0).data_type(), &DataType::Int64, "{sql}");
        assert_eq!(prepared.dataset_schema().unwrap().field(0).name(), "n_name");
        for (key, name) in [(3i32, "CANADA"), (7, "GERMANY")] {
            // An Int32 value for an Int64 parameter is cast to it.
            let binding = one_column("$1", Arc::new(Int32Array::from(vec![key])));
            prepared.set_parameters(binding).unwrap();
            let info = prepared.execute().await.unwrap();
            let rows = common::rows(&common::fetch(&mut client, info).await);
            assert_eq!(rows, [name], "{sql} with {key}");
        }
        prepared.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_query_without_its_parameters_is_refused() {
    let server = common::start().await;
    let mut client = common::client(server.addr).await;
    let mut prepared = client
        .prepare(
            "SELECT n_name FROM nation WHERE n_nationkey = $1".into(),
            None,
        )
        .await
        .unwrap();
    let error = prepared.execute().await.unwrap_err();
    assert_eq!(common::code(&error), Code::InvalidArgument, "{error}");
    assert!(common::message(&error).contains("bind"), "{error}");
    let binding = one_column("$1", Arc::new(StringArray::from(vec!["not a number"])));
    prepared.set_parameters(binding).unwrap();
    let error = prepared.execute().await.unwrap_err();
    assert_eq!(common::code(&error), Code::InvalidArgument, "{error}");
    assert!(common::message(&error).contains("$1"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_report_rows_and_queries_are_not_updates() {
    let server = common::start().await;
    let mut client = common::client(server.addr).await;
    let created = client
        .execute_update(
            "CREATE TABLE datafusion.public.picked (k BIGINT, name VARCHAR)".into(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(created, 0);
    let inserted = client
        .execute_update(
            "INSERT INTO datafusion.public.picked SELECT n_nationkey, n_name FROM nation \
             WHERE n_regionkey = 1"
                .into(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(inserted, 5);

    // A prepared insert runs once per bound row.
    let mut prepared = client
        .prepare(
            "INSERT INTO datafusion.public.picked VALUES ($1, $2)".into(),
            None,
        )
        .await
        .unwrap();
    let schema = Schema::new(vec![
        Field::new("$1", DataType::Int64, true),
        Field::new("$2", DataType::Utf8, true),
    ]);
    let rows = RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from(vec![100, 101, 102])),
            Arc::new(StringArray::from(vec!["x", "y", "z"])),
        ],
    )
    .unwrap();
    prepared.set_parameters(rows).unwrap();
    assert_eq!(prepared.execute_update().await.unwrap(), 3);
    let total = common::query(&mut client, "SELECT count(*) FROM datafusion.public.picked").await;
    assert_eq!(common::rows(&total), ["8"]);

    let error = client
        .execute_update("SELECT 1".into(), None)
        .await
        .unwrap_err();
    assert_eq!(common::code(&error), Code::InvalidArgument, "{error}");
    assert!(common::message(&error).contains("query"), "{error}");
}

fn ingest_command(
    table: &str,
    if_exists: TableExistsOption,
    temporary: bool,
) -> CommandStatementIngest {
    CommandStatementIngest {
        table_definition_options: Some(TableDefinitionOptions {
            if_not_exist: TableNotExistOption::Create.into(),
            if_exists: if_exists.into(),
        }),
        table: table.into(),
        schema: (!temporary).then(|| "public".into()),
        catalog: (!temporary).then(|| "datafusion".into()),
        temporary,
        transaction_id: None,
        options: Default::default(),
    }
}

fn keys(values: Vec<i64>) -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
    ]);
    let names: Vec<String> = values.iter().map(|v| format!("n{v}")).collect();
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from(values)),
            Arc::new(StringArray::from(names)),
        ],
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_creates_appends_replaces_and_refuses() {
    let server = common::start().await;
    let mut client = common::client(server.addr).await;
    let batches = vec![Ok(keys(vec![1, 2, 3])), Ok(keys(vec![4, 5]))];
    let written = client
        .execute_ingest(
            ingest_command("loaded", TableExistsOption::Fail, false),
            futures::stream::iter(batches),
        )
        .await
        .unwrap();
    assert_eq!(written, 5);
    let count = "SELECT count(*), sum(k) FROM datafusion.public.loaded";
    assert_eq!(
        common::rows(&common::query(&mut client, count).await),
        ["5|15"]
    );

    let again = client
        .execute_ingest(
            ingest_command("loaded", TableExistsOption::Fail, false),
            futures::stream::iter(vec![Ok(keys(vec![9]))]),
        )
        .await
        .unwrap_err();
    assert_eq!(common::code(&again), Code::AlreadyExists, "{again}");

    let appended = client
        .execute_ingest(
            ingest_command("loaded", TableExistsOption::Append, false),
            futures::stream::iter(vec![Ok(keys(vec![10, 20]))]),
        )
        .await
        .unwrap();
    assert_eq!(appended, 2);
    assert_eq!(
        common::rows(&common::query(&mut client, count).await),
        ["7|45"]
    );

    let replaced = client
        .execute_ingest(
            ingest_command("loaded", TableExistsOption::Replace, false),
            futures::stream::iter(vec![Ok(keys(vec![100]))]),
        )
        .await
        .unwrap();
    assert_eq!(replaced, 1);
    assert_eq!(
        common::rows(&common::query(&mut client, count).await),
        ["1|100"]
    );

    // Temporary tables land in the session's own catalog; other sessions do not see them.
    client
        .execute_ingest(
            ingest_command("scratch", TableExistsOption::Fail, true),
            futures::stream::iter(vec![Ok(keys(vec![7]))]),
        )
        .await
        .unwrap();
    let mut other = common::client(server.addr).await;
    let sql = "SELECT k FROM datafusion.public.scratch";
    assert_eq!(common::rows(&common::query(&mut client, sql).await), ["7"]);
    let error = other.execute(sql.into(), None).await.unwrap_err();
    assert_eq!(common::code(&error), Code::NotFound, "{error}");

    // The shared TPC-H catalog takes no new tables.
    let mut shared = ingest_command("nation2", TableExistsOption::Fail, false);
    shared.catalog = Some("tpch".into());
    let error = client
        .execute_ingest(shared, futures::stream::iter(vec![Ok(keys(vec![1]))]))
        .await
        .unwrap_err();
    assert!(common::message(&error).contains("shared"), "{error}");
}
