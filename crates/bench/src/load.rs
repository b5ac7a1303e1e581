//! TPC-H in the benchmark's server: checked, and loaded with the server's own client when
//! missing (`psql` with `\copy`, the `mariadb` client with `LOAD DATA LOCAL INFILE`).

use flotilla_common::{Error, Result};
use flotilla_connectors_mysql::MysqlSource;
use flotilla_connectors_postgres::PostgresSource;
use flotilla_node::datagen::generate_with_progress;
use flotilla_tpch::load::{Server, load_script};
use flotilla_tpch::{Format, GenerateOptions, Table};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A query returning one row when `schema.lineitem` holds all its rows at `scale`.
fn completeness_probe(schema: &str, scale: f64) -> String {
    let rows = Table::LineItem.expected_rows(scale);
    format!(
        "SELECT 1 FROM {schema}.lineitem LIMIT 1 OFFSET {}",
        rows.saturating_sub(1)
    )
}

/// The TPC-H CSV files at `scale` in the cache, generated on first use.
fn csv_dir(cache: &Path, scale: f64) -> Result<PathBuf> {
    let dir = cache.join(format!("tpch-sf{scale}-csv"));
    if dir.join("lineitem.csv").is_file() {
        return Ok(dir);
    }
    let partial = cache.join(format!("tpch-sf{scale}-csv.partial"));
    let _ = std::fs::remove_dir_all(&partial);
    let options = GenerateOptions {
        scale,
        format: Format::Csv,
        out: partial.clone(),
        tables: vec![],
    };
    generate_with_progress(&options, "csv")?;
    std::fs::rename(&partial, &dir)?;
    Ok(dir)
}

/// Runs `command` with `script` on its standard input.
fn run_script(mut command: Command, script: &str, what: &str) -> Result<()> {
    eprintln!("loading TPC-H with {what} (this takes a while at SF 1)…");
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::unavailable(format!("cannot run {what}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(Error::unavailable(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Makes sure `schema` in PostgreSQL holds TPC-H at `scale`.
pub async fn ensure_postgres(
    pg: &PostgresSource,
    url: &str,
    cache: &Path,
    scale: f64,
    schema: &str,
) -> Result<()> {
    if pg
        .run_natively(&completeness_probe(schema, scale))
        .await
        .ok()
        == Some(1)
    {
        return Ok(());
    }
    let csv = csv_dir(cache, scale)?;
    let script = load_script(Server::Postgres, schema, &csv).map_err(Error::internal)?;
    let mut psql = Command::new("psql");
    psql.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", "-"]);
    run_script(psql, &script, "psql")
}

/// Makes sure the database `schema` in MySQL/MariaDB holds TPC-H at `scale`.
pub async fn ensure_mysql(my: &MysqlSource, cache: &Path, scale: f64, schema: &str) -> Result<()> {
    if my
        .run_natively(&completeness_probe(schema, scale))
        .await
        .ok()
        == Some(1)
    {
        return Ok(());
    }
    let csv = csv_dir(cache, scale)?;
    let script = load_script(Server::MariaDb, schema, &csv).map_err(Error::internal)?;
    let mut client = mysql_client(my)?;
    client.arg("--local-infile=1");
    run_script(client, &script, "the mariadb client")
}

/// The `mariadb` (or `mysql`) command-line client connected as the source is.
pub fn mysql_client(my: &MysqlSource) -> Result<Command> {
    let (host, port, user, password) = my.connection_parts();
    let program = ["mariadb", "mysql"]
        .into_iter()
        .find(|p| Command::new(p).arg("--version").output().is_ok())
        .ok_or_else(|| {
            Error::unavailable("neither the mariadb nor the mysql client is installed")
        })?;
    let mut command = Command::new(program);
    command
        .arg("--no-defaults")
        .args(["-h", &host, "-P", &port.to_string(), "-u", &user]);
    if let Some(password) = password {
        // The client reads it from the environment, so it does not show in `ps`.
        command.env("MYSQL_PWD", password);
    }
    Ok(command)
}

/// `url` with its database replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_end = base
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| base[start..].find('/').map(|i| start + i))
        .unwrap_or(base.len());
    let mut out = format!("{}/{database}", &base[..authority_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_of_a_url_is_replaced() {
        assert_eq!(with_database("mysql://u:p@h:1/a", "b"), "mysql://u:p@h:1/b");
        assert_eq!(with_database("mysql://h", "b"), "mysql://h/b");
        assert_eq!(with_database("mysql://h/a?x=1", "b"), "mysql://h/b?x=1");
    }
}
