//! Catalog browsing the way ADBC and JDBC do it: NULL catalog filters, LIKE patterns, table
//! schemas, SqlInfo, XDBC types, and empty key listings with the right schemas.

use crate::common;
use arrow_flight::IpcMessage;
use arrow_flight::sql::{CommandGetDbSchemas, CommandGetPrimaryKeys, CommandGetTables, SqlInfo};
use datafusion::arrow::array::{Array, BinaryArray, StringArray};
use datafusion::arrow::datatypes::Schema;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogs_and_schemas_with_and_without_filters() {
    let server = common::start().await;
    let mut client = common::client(server.addr).await;
    let info = client.get_catalogs().await.unwrap();
    let catalogs = common::rows(&common::fetch(&mut client, info).await);
    assert_eq!(catalogs, ["datafusion", "tpch"]);

    // A NULL catalog means every catalog (what ADBC's get_objects sends).
    let info = client
        .get_db_schemas(CommandGetDbSchemas {
            catalog: None,
            db_schema_filter_pattern: None,
        })
        .await
        .unwrap();
    let schemas = common::rows(&common::fetch(&mut client, info).await);
    assert_eq!(schemas, ["datafusion|public", "tpch|public"]);

    let info = client
        .get_db_schemas(CommandGetDbSchemas {
            catalog: Some("tpch".into()),
            db_schema_filter_pattern: Some("pub%".into()),
        })
        .await
        .unwrap();
    assert_eq!(
        common::rows(&common::fetch(&mut client, info).await),
        ["tpch|public"]
    );
    let info = client
        .get_db_schemas(CommandGetDbSchemas {
            catalog: Some(String::new()),
            db_schema_filter_pattern: None,
        })
        .await
        .unwrap();
    assert!(common::rows(&common::fetch(&mut client, info).await).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_by_pattern_with_their_arrow_schemas() {
    let server = common::start().await;
    let mut client = common::client(server.addr).await;
    let info = client
        .get_tables(CommandGetTables {
            catalog: None,
            db_schema_filter_pattern: None,
            table_name_filter_pattern: None,
            table_types: vec![],
            include_schema: false,
        })
        .await
        .unwrap();
    let all = common::rows(&common::fetch(&mut client, info).await);
    assert_eq!(all.len(), 8, "{all:?}");
    assert!(
        all.contains(&"tpch|public|lineitem|TABLE".to_string()),
        "{all:?}"
    );

    let info = client
        .get_tables(CommandGetTables {
            catalog: Some("tpch".into()),
            db_schema_filter_pattern: Some("%".into()),
            table_name_filter_pattern: Some("part%".into()),
            table_types: vec!["TABLE".into()],
            include_schema: true,
        })
        .await
        .unwrap();
    let batches = common::fetch(&mut client, info).await;
    assert_eq!(common::rows(&batches).len(), 2);
    let batch = &batches[0];
    let names = batch
        .column_by_name("table_name")
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert_eq!(names.value(0), "part");
    assert_eq!(names.value(1), "partsupp");
    let schemas = batch
        .column_by_name("table_schema")
        .unwrap()
        .as_any()
        .downcast_ref::<BinaryArray>()
        .unwrap();
    let part = Schema::try_from(IpcMessage(schemas.value(0).to_vec().into())).unwrap();
    assert_eq!(part.field(0).name(), "p_partkey");
    assert_eq!(part.fields().len(), 9);

    let info = client
        .get_tables(CommandGetTables {
            catalog: None,
            db_schema_filter_pattern: None,
            table_name_filter_pattern: None,
            table_types: vec!["VIEW".into()],
            include_schema: false,
        })
        .await
        .unwrap();
    assert!(common::rows(&common::fetch(&mut client, info).await).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_types_sql_info_and_xdbc_types() {
    let server = common::start().await;
    let mut client = common::client(server.addr).await;
    let info = client.get_table_types().await.unwrap();
    let types = common::rows(&common::fetch(&mut client, info).await);
    assert_eq!(types, ["LOCAL TEMPORARY", "TABLE", "VIEW"]);

    let info = client
        .get_sql_info(vec![
            SqlInfo::FlightSqlServerName,
            SqlInfo::FlightSqlServerCancel,
            SqlInfo::SqlIdentifierQuoteChar,
        ])
        .await
        .unwrap();
    let batches = common::fetch(&mut client, info).await;
    let rows = common::rows(&batches);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows.iter().any(|r| r.contains("Flotilla")), "{rows:?}");
    assert!(rows.iter().any(|r| r.contains("true")), "{rows:?}");

    // Every SqlInfo when none is named.
    let info = client.get_sql_info(vec![]).await.unwrap();
    let all = common::rows(&common::fetch(&mut client, info).await);
    assert!(all.len() > 60, "{} SqlInfo values", all.len());

    let info = client
        .get_xdbc_type_info(arrow_flight::sql::CommandGetXdbcTypeInfo { data_type: None })
        .await
        .unwrap();
    let types = common::fetch(&mut client, info).await;
    let names = types[0]
        .column_by_name("type_name")
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap()
        .clone();
    let names: Vec<&str> = (0..names.len()).map(|i| names.value(i)).collect();
    for expected in ["BIGINT", "VARCHAR", "DECIMAL", "TIMESTAMP"] {
        assert!(names.contains(&expected), "{names:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_empty_with_the_right_schema() {
    let server = common::start().await;
    let mut client = common::client(server.addr).await;
    let info = client
        .get_primary_keys(CommandGetPrimaryKeys {
            catalog: None,
            db_schema: None,
            table: "nation".into(),
        })
        .await
        .unwrap();
    let schema = info.clone().try_decode_schema().unwrap();
    assert_eq!(schema.field(2).name(), "table_name");
    assert_eq!(schema.field(5).name(), "key_sequence");
    let batches = common::fetch(&mut client, info).await;
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
}
