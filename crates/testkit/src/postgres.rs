//! A throwaway PostgreSQL server.

use crate::server::{chown_to, is_root, on_free_port, output, spawn_server, user_ids, wait_until};
use crate::tpch::{TpchLoads, tpch_csv_dir, tpch_schema_name};
use crate::{SETUP_HINT, reaper};
use flotilla_tpch::load::{Server, load_script};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// A PostgreSQL server on 127.0.0.1, user `postgres` with trust authentication, database
/// `postgres`.
#[derive(Debug)]
pub struct Postgres {
    port: u16,
    pid: u32,
    dir: PathBuf,
    bin: PathBuf,
    loads: TpchLoads,
}

/// The server of this test binary, started on first use.
///
/// # Panics
/// When the server cannot be started; the message says why and how to fix it.
pub fn postgres() -> &'static Postgres {
    match try_postgres() {
        Ok(pg) => pg,
        Err(e) => panic!("{e}"),
    }
}

/// The server of this test binary, started on first use, or why it could not start.
pub fn try_postgres() -> Result<&'static Postgres, String> {
    static SERVER: OnceLock<Result<Postgres, String>> = OnceLock::new();
    SERVER
        .get_or_init(|| Postgres::start().map_err(|e| format!("PostgreSQL test server: {e}")))
        .as_ref()
        .map_err(Clone::clone)
}

/// The directory of the newest installed PostgreSQL server binaries.
fn find_binaries() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("FLOTILLA_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("postgres").is_file() && bin.join("initdb").is_file())
        .collect();
    candidates.sort();
    candidates.pop().map(|(_, bin)| bin).ok_or_else(|| {
        format!("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin; {SETUP_HINT}")
    })
}

impl Postgres {
    fn start() -> Result<Postgres, String> {
        let bin = find_binaries()?;
        if Command::new("psql").arg("--version").output().is_err() {
            return Err(format!("the psql client is missing; {SETUP_HINT}"));
        }
        let dir = reaper::temp_dir("flotilla-pg-").map_err(|e| e.to_string())?;
        let data = dir.join("data");
        std::fs::create_dir(&data).map_err(|e| e.to_string())?;
        chown_to(&dir, "postgres")?;
        output(
            as_server_user(&mut Command::new(bin.join("initdb")))?
                .args([
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--no-sync",
                    "-D",
                ])
                .arg(&data),
        )?;
        on_free_port(|port| {
            let mut server = Postgres {
                port,
                pid: 0,
                dir: dir.clone(),
                bin: bin.clone(),
                loads: TpchLoads::default(),
            };
            server.spawn()?;
            Ok(server)
        })
    }

    /// Runs the postmaster on the server's port and data directory and waits until it answers.
    fn spawn(&mut self) -> Result<(), String> {
        let log = self.dir.join("server.log");
        let mut command = Command::new(self.bin.join("postgres"));
        as_server_user(&mut command)?
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(&self.dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off"]);
        // SIGINT is PostgreSQL's "fast shutdown": clients are disconnected, nothing waits.
        self.pid = spawn_server(&mut command, &log, "INT", || {
            self.query("SELECT 1").map(|_| ())
        })?;
        Ok(())
    }

    /// A server of the caller's own, not shared with other tests: one it may stop and restart.
    pub fn start_private() -> Result<Postgres, String> {
        Postgres::start().map_err(|e| format!("PostgreSQL test server: {e}"))
    }

    /// Stops the server (fast shutdown: clients are disconnected) and waits until it is gone.
    pub fn stop(&mut self) -> Result<(), String> {
        crate::server::stop_process(self.pid, "INT")
    }

    /// Starts the stopped server again, on the same port with the same data.
    pub fn restart(&mut self) -> Result<(), String> {
        self.spawn()
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The postmaster's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The temp dir holding the data directory, socket and log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory of the server binaries in use.
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// A libpq connection URL for the `postgres` database.
    pub fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn psql(&self) -> Command {
        let mut command = Command::new("psql");
        command
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .env("PGCONNECT_TIMEOUT", "5");
        command
    }

    /// Runs SQL with psql; returns the rows as unaligned text (`|`-separated, one per line).
    pub fn query(&self, sql: &str) -> Result<String, String> {
        output(self.psql().arg("-c").arg(sql))
    }

    /// Runs a psql script (SQL and psql meta-commands such as `\copy`) fed on standard input.
    pub fn script(&self, script: &str) -> Result<String, String> {
        let mut child = self
            .psql()
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run psql: {e}"))?;
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(script.as_bytes())
            .map_err(|e| e.to_string())?;
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "psql script failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Turns TLS on (`ssl = on` with `pki`'s server certificate), by a configuration reload:
    /// clients that do not ask for TLS keep connecting in plain text.
    pub fn enable_tls(&self, pki: &crate::tls::TestPki) -> Result<(), String> {
        let (cert, key) = pki.server_files_in(&self.dir.join("tls"), "postgres")?;
        self.script(&format!(
            "ALTER SYSTEM SET ssl_cert_file = '{}';\nALTER SYSTEM SET ssl_key_file = '{}';\n\
             ALTER SYSTEM SET ssl = on;\nSELECT pg_reload_conf();\n",
            cert.display(),
            key.display()
        ))?;
        wait_until(std::time::Duration::from_secs(10), || {
            match self.query("SHOW ssl")?.trim() {
                "on" => Ok(()),
                other => Err(format!("ssl is {other} after the reload")),
            }
        })
    }

    /// Loads TPC-H at `scale` into the schema [`tpch_schema_name`]`(scale)` with `COPY`, once
    /// per scale; returns the schema name.
    pub fn load_tpch(&self, scale: f64) -> Result<String, String> {
        self.loads.once(scale, || {
            let csv = tpch_csv_dir(scale)?;
            let schema = tpch_schema_name(scale);
            let script = load_script(Server::Postgres, &schema, &csv)?;
            self.script(&script)?;
            Ok(schema)
        })
    }
}

/// Runs `command` as the `postgres` system user when the tests run as root (PostgreSQL refuses
/// to run as root).
fn as_server_user(command: &mut Command) -> Result<&mut Command, String> {
    if is_root() {
        let (uid, gid) = user_ids("postgres")
            .ok_or_else(|| format!("there is no 'postgres' system user; {SETUP_HINT}"))?;
        command.uid(uid).gid(gid);
        command.env("HOME", "/tmp");
    }
    Ok(command)
}
