//! TPC-H data for the servers: CSV files generated once per scale per test binary.

use crate::reaper;
use flotilla_tpch::{Format, GenerateOptions};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// Row counts of the TPC-H tables at SF 0.01, from the TPC-H specification (and the reference
/// dbgen), written out here rather than computed, so tests check the generator against them.
pub const TPCH_SF001_ROWS: [(&str, u64); 8] = [
    ("region", 5),
    ("nation", 25),
    ("supplier", 100),
    ("customer", 1_500),
    ("part", 2_000),
    ("partsupp", 8_000),
    ("orders", 15_000),
    ("lineitem", 60_175),
];

/// The schema (PostgreSQL) or database (MariaDB) name TPC-H at `scale` is loaded into,
/// e.g. `tpch_sf0_01`.
pub fn tpch_schema_name(scale: f64) -> String {
    format!("tpch_sf{}", scale.to_string().replace('.', "_"))
}

/// A directory with `<table>.csv` for the 8 TPC-H tables at `scale` (header line, comma
/// separated), generated on first use and removed when the test binary exits.
pub fn tpch_csv_dir(scale: f64) -> Result<PathBuf, String> {
    static DIRS: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    let key = scale.to_string();
    let mut dirs = DIRS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, dir)) = dirs.iter().find(|(k, _)| *k == key) {
        return Ok(dir.clone());
    }
    let dir = reaper::temp_dir("flotilla-tpch-csv-").map_err(|e| e.to_string())?;
    let options = GenerateOptions {
        scale,
        format: Format::Csv,
        out: dir.clone(),
        tables: vec![],
    };
    flotilla_tpch::generate(&options, &|_, _| {}).map_err(|e| e.to_string())?;
    // Servers running as their own system user must be able to read the files.
    let _ = crate::server::output(
        std::process::Command::new("chmod")
            .arg("-R")
            .arg("a+rX")
            .arg(&dir),
    );
    dirs.push((key, dir.clone()));
    Ok(dir)
}

/// Remembers which scales a server has loaded, so each is loaded once.
#[derive(Debug, Default)]
pub(crate) struct TpchLoads(Mutex<HashMap<String, Result<String, String>>>);

impl TpchLoads {
    /// Runs `load` for `scale` unless it already ran; returns its (remembered) result.
    pub(crate) fn once(
        &self,
        scale: f64,
        load: impl FnOnce() -> Result<String, String>,
    ) -> Result<String, String> {
        let mut loads = self.0.lock().unwrap_or_else(|e| e.into_inner());
        loads.entry(scale.to_string()).or_insert_with(load).clone()
    }
}
