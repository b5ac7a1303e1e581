//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Runs the `flotilla` binary built for these tests.
pub fn flotilla(args: &[&str]) -> Output {
    flotilla_in(Path::new("."), args)
}

/// Runs the `flotilla` binary in `dir`.
pub fn flotilla_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(args)
        .current_dir(dir)
        .env_remove("FLOTILLA_CONFIG")
        .output()
        .expect("the flotilla binary runs")
}

/// Standard output and standard error as text.
pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A cache directory with the demo data at SF 0.01, generated once per test binary by
/// `flotilla demo` itself. Returns (cache dir, demo stdout).
pub fn demo_cache() -> &'static (PathBuf, String) {
    static CACHE: OnceLock<(PathBuf, String)> = OnceLock::new();
    CACHE.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("flotilla-demo-")
            .tempdir()
            .unwrap()
            .keep();
        flotilla_testkit::reaper::remove_at_exit(&dir);
        let out = flotilla(&[
            "demo",
            "--scale",
            "0.01",
            "--cache-dir",
            dir.to_str().unwrap(),
        ]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
        (dir, stdout)
    })
}

/// The directory holding the demo data at SF 0.01.
pub fn demo_data() -> PathBuf {
    demo_cache().0.join("tpch-sf0.01")
}

/// The TPC-H query `n` from the shared query set.
pub fn tpch_query(n: usize) -> String {
    flotilla_testkit::plans::tpch_query(n)
}

/// TPC-H at SF 0.1 as Parquet files (`parquet/`) and one SQLite database (`sqlite/`),
/// generated once per test binary.
pub fn tpch_data() -> &'static PathBuf {
    static DATA: OnceLock<PathBuf> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir = flotilla_testkit::reaper::temp_dir("flotilla-tpch-").unwrap();
        for (format, sub) in [
            (flotilla_tpch::Format::Parquet, "parquet"),
            (flotilla_tpch::Format::Sqlite, "sqlite"),
        ] {
            let options = flotilla_tpch::GenerateOptions {
                scale: 0.1,
                format,
                out: dir.join(sub),
                tables: vec![],
            };
            flotilla_tpch::generate(&options, &|_, _| {}).unwrap();
        }
        dir
    })
}
