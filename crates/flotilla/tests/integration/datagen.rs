//! `flotilla datagen tpch`: row counts and agreement between the output formats.

use crate::common::{flotilla, text};
use flotilla_node::{Config, build_context};
use flotilla_testkit::{TPCH_SF001_ROWS, assert_same_rows};
use std::path::Path;

fn generate(out: &Path, format: &str) {
    let result = flotilla(&[
        "datagen",
        "tpch",
        "--scale",
        "0.01",
        "--format",
        format,
        "--out",
        out.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&result);
    assert!(
        result.status.success(),
        "datagen {format} failed:\n{stdout}\n{stderr}"
    );
    assert!(stderr.contains("wrote 86805 rows"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_formats_hold_the_specified_rows_and_the_same_values() {
    let dir = tempfile::tempdir().unwrap();
    for format in ["parquet", "csv", "sqlite"] {
        generate(&dir.path().join(format), format);
    }
    let config_text = "
        [sources.lake]
        kind = \"parquet\"
        path = \"parquet\"
        [sources.raw]
        kind = \"csv\"
        path = \"csv\"
        [sources.shop]
        kind = \"sqlite\"
        path = \"sqlite/tpch.sqlite\"
    ";
    let config = Config::parse(config_text, "test.toml", dir.path()).unwrap();
    let ctx = build_context(&config).await.unwrap();
    for (table, rows) in TPCH_SF001_ROWS {
        for qualified in [
            format!("lake.public.{table}"),
            format!("raw.public.{table}"),
            format!("shop.main.{table}"),
        ] {
            let batches = ctx
                .sql(&format!("SELECT count(*) FROM {qualified}"))
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
            let count = batches[0]
                .column(0)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Int64Array>()
                .unwrap()
                .value(0);
            assert_eq!(count as u64, rows, "{qualified}");
        }
        let all = |source: &str| format!("SELECT * FROM {source}.{table}");
        let parquet = ctx
            .sql(&all("lake.public"))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let sqlite = ctx
            .sql(&all("shop.main"))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let csv = ctx
            .sql(&all("raw.public"))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_same_rows(&parquet, &sqlite, false);
        assert_same_rows(&parquet, &csv, false);
    }
}

#[test]
fn bad_arguments_are_refused_with_a_message() {
    let out = flotilla(&[
        "datagen", "tpch", "--scale", "0.01", "--format", "xlsx", "--out", "/tmp/x",
    ]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("unknown format 'xlsx'"), "{stderr}");
    let out = flotilla(&[
        "datagen",
        "tpch",
        "--scale",
        "0",
        "--out",
        "/tmp/flotilla-never",
    ]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("scale must be a positive number"),
        "{stderr}"
    );
}
