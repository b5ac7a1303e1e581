//! Prepared statements with parameters, and updates (DDL and DML) with their row counts.

use crate::common;
use arrow_flight::FlightDescriptor;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::{
    CommandGetCatalogs, CommandStatementIngest, CommandStatementQuery, ProstMessageExt,
    TableDefinitionOptions, TableExistsOption, TableNotExistOption,
};
use datafusion::arrow::array::{ArrayRef, Int32Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use prost::Message;
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
async fn sql_prepare_execute_and_deallocate_work_as_in_datafusion() {
    let server = common::start().await;
    let mut client = common::client(server.addr).await;
    // The statement's $1 belongs to the prepared query, not to the PREPARE statement.
    common::query(
        &mut client,
        "PREPARE pick(BIGINT) AS SELECT n_name FROM nation WHERE n_nationkey = $1",
    )
    .await;
    let rows = common::rows(&common::query(&mut client, "EXECUTE pick(7)").await);
    assert_eq!(rows, ["GERMANY"]);
    // Sent as a prepared statement (what ADBC's execute does), the same.
    let mut prepared = client
        .prepare("EXECUTE pick(3)".into(), None)
        .await
        .unwrap();
    assert_eq!(prepared.parameter_schema().unwrap().fields().len(), 0);
    let dataset = prepared.dataset_schema().unwrap().clone();
    assert_eq!(dataset.field(0).name(), "n_name", "{dataset:?}");
    let info = prepared.execute().await.unwrap();
    assert_eq!(
        common::rows(&common::fetch(&mut client, info).await),
        ["CANADA"]
    );
    // Untyped parameters take the value's type.
    common::query(&mut client, "PREPARE echo AS SELECT $1 AS v").await;
    let rows = common::rows(&common::query(&mut client, "EXECUTE echo('x')").await);
    assert_eq!(rows, ["x"]);
    common::query(&mut client, "DEALLOCATE pick").await;
    let error = client
        .execute("EXECUTE pick(7)".into(), None)
        .await
        .unwrap_err();
    assert_eq!(common::code(&error), Code::NotFound, "{error}");
    assert!(common::message(&error).contains("'pick'"), "{error}");
    let error = client
        .execute("PREPARE echo AS SELECT 1".into(), None)
        .await
        .unwrap_err();
    assert_eq!(common::code(&error), Code::InvalidArgument, "{error}");
    // Another session has its own names.
    let mut other = common::client(server.addr).await;
    let error = other
        .execute("EXECUTE echo(1)".into(), None)
        .await
        .unwrap_err();
    assert_eq!(common::code(&error), Code::NotFound, "{error}");
}

/// A statement command, as a descriptor carries it.
fn statement(sql: &str) -> arrow_flight::sql::Any {
    CommandStatementQuery {
        query: sql.into(),
        transaction_id: None,
    }
    .as_any()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_schema_plans_without_running_and_poll_answers_complete() {
    let server = common::start().await;
    // The raw calls carry the session token of `client`, so they see its tables.
    let mut client =
        arrow_flight::sql::client::FlightSqlServiceClient::new(common::channel(server.addr).await);
    let token = client.handshake("", "").await.unwrap();
    let token = format!("Bearer {}", std::str::from_utf8(&token).unwrap());
    let mut raw = common::raw(server.addr).await;
    let command = |any: arrow_flight::sql::Any| {
        let mut request = tonic::Request::new(FlightDescriptor::new_cmd(any.encode_to_vec()));
        request
            .metadata_mut()
            .insert("authorization", token.parse().unwrap());
        request
    };
    let schema_of = async |raw: &mut FlightServiceClient<_>, request| {
        let result = raw.get_schema(request).await?.into_inner();
        Ok::<_, tonic::Status>(Schema::try_from(&result).unwrap())
    };
    let query = statement("SELECT n_nationkey, n_name FROM nation");
    let schema = schema_of(&mut raw, command(query.clone())).await.unwrap();
    let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["n_nationkey", "n_name"]);
    // An INSERT's schema is its count; asking does not run it.
    common::query(
        &mut client,
        "CREATE TABLE datafusion.public.kept (k BIGINT)",
    )
    .await;
    let schema = schema_of(
        &mut raw,
        command(statement("INSERT INTO datafusion.public.kept VALUES (1)")),
    )
    .await
    .unwrap();
    assert_eq!(schema.field(0).name(), "count");
    let count = "SELECT count(*) FROM datafusion.public.kept";
    assert_eq!(
        common::rows(&common::query(&mut client, count).await),
        ["0"]
    );
    // `EXECUTE name(…)`: the rows of the statement prepared as `name`.
    common::query(&mut client, "PREPARE named AS SELECT r_name FROM region").await;
    let schema = schema_of(&mut raw, command(statement("EXECUTE named")))
        .await
        .unwrap();
    assert_eq!(schema.field(0).name(), "r_name");
    // A metadata command: the schema its FlightInfo announces.
    let schema = schema_of(&mut raw, command(CommandGetCatalogs {}.as_any()))
        .await
        .unwrap();
    assert_eq!(schema.field(0).name(), "catalog_name");
    // Bad input: a clear error.
    let junk = tonic::Request::new(FlightDescriptor::new_cmd(b"junk".to_vec()));
    let error = schema_of(&mut raw, junk).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument, "{error}");
    let error = schema_of(&mut raw, command(statement("SELEC 1")))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument, "{error}");

    // PollFlightInfo: complete at once, with a ticket DoGet serves.
    let poll = raw
        .poll_flight_info(command(query.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(poll.progress, Some(1.0));
    assert!(poll.flight_descriptor.is_none(), "nothing left to poll");
    let info = poll.info.expect("a FlightInfo");
    let batches = common::fetch(&mut client, info).await;
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 25);
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
