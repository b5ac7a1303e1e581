//! The Python clients tests drive (Flight SQL: ADBC, pyarrow; the PostgreSQL protocol: psycopg),
//! from the virtual environment `scripts/setup.sh` creates.

use std::path::PathBuf;

/// The virtual environment: `$FLOTILLA_VENV`, else `$XDG_CACHE_HOME/flotilla/venv`, else
/// `~/.cache/flotilla/venv` (the same rule as `scripts/setup.sh`).
pub fn venv() -> PathBuf {
    if let Some(dir) = std::env::var_os("FLOTILLA_VENV") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("flotilla").join("venv")
}

/// The Python interpreter with `adbc_driver_flightsql`, `pyarrow` and `psycopg` installed.
///
/// # Panics
/// When the environment is missing, naming the command that creates it.
pub fn python() -> PathBuf {
    let python = venv().join("bin").join("python");
    let ready = std::process::Command::new(&python)
        .args([
            "-c",
            "import adbc_driver_flightsql.dbapi, pyarrow.flight, psycopg, websocket",
        ])
        .output()
        .is_ok_and(|out| out.status.success());
    assert!(
        ready,
        "the Python clients are not installed at {}: run `bash scripts/setup.sh` (it creates \
         the virtual environment with ADBC, pyarrow, psycopg and websocket-client)",
        python.display()
    );
    python
}
