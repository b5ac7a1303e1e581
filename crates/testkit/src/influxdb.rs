//! A throwaway InfluxDB 1.x server (Debian's `influxd`), spoken to over its v1 HTTP API with
//! `curl`: InfluxQL on `/query`, line protocol on `/write`.

use crate::server::{free_port, on_free_port, output, spawn_server, stop_process};
use crate::{SETUP_HINT, reaper};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The admin of a server started with authentication.
pub const INFLUX_ADMIN: (&str, &str) = ("admin", "flotilla-admin-password");

/// An InfluxDB server on 127.0.0.1 (HTTP on [`InfluxDb::port`]).
#[derive(Debug)]
pub struct InfluxDb {
    port: u16,
    rpc_port: u16,
    pid: u32,
    dir: PathBuf,
    auth: bool,
}

/// The open (no authentication) server of this test binary, started on first use.
///
/// # Panics
/// When the server cannot be started; the message says why and how to fix it.
pub fn influxdb() -> &'static InfluxDb {
    static SERVER: OnceLock<Result<InfluxDb, String>> = OnceLock::new();
    match SERVER.get_or_init(|| InfluxDb::start(false)) {
        Ok(server) => server,
        Err(e) => panic!("{e}"),
    }
}

impl InfluxDb {
    /// A server of the caller's own — one it may stop and restart — with authentication
    /// (admin [`INFLUX_ADMIN`]) or without.
    ///
    /// # Errors
    /// When `influxd` or `curl` is missing or the server does not come up.
    pub fn start(auth: bool) -> Result<InfluxDb, String> {
        let start = || -> Result<InfluxDb, String> {
            for program in ["influxd", "curl"] {
                if Command::new(program).arg("--help").output().is_err() {
                    return Err(format!("{program} is missing; {SETUP_HINT}"));
                }
            }
            let dir = reaper::temp_dir("flotilla-influx-").map_err(|e| e.to_string())?;
            on_free_port(|port| {
                let mut server = InfluxDb {
                    port,
                    rpc_port: free_port()?,
                    pid: 0,
                    dir: dir.clone(),
                    auth,
                };
                server.spawn()?;
                if auth {
                    // With no user yet, InfluxDB takes the first admin unauthenticated.
                    server.post_query(
                        None,
                        &format!(
                            "CREATE USER \"{}\" WITH PASSWORD '{}' WITH ALL PRIVILEGES",
                            INFLUX_ADMIN.0, INFLUX_ADMIN.1
                        ),
                        None,
                    )?;
                }
                Ok(server)
            })
        };
        start().map_err(|e| format!("InfluxDB test server: {e}"))
    }

    fn config(&self) -> String {
        let dir = self.dir.display();
        format!(
            "reporting-disabled = true\n\
             bind-address = \"127.0.0.1:{rpc}\"\n\
             [meta]\n  dir = \"{dir}/meta\"\n\
             [data]\n  dir = \"{dir}/data\"\n  wal-dir = \"{dir}/wal\"\n  \
             query-log-enabled = false\n  wal-fsync-delay = \"100ms\"\n\
             [http]\n  enabled = true\n  bind-address = \"127.0.0.1:{http}\"\n  \
             auth-enabled = {auth}\n  log-enabled = false\n\
             [monitor]\n  store-enabled = false\n\
             [continuous_queries]\n  enabled = false\n",
            rpc = self.rpc_port,
            http = self.port,
            auth = self.auth,
        )
    }

    /// Runs influxd on the server's ports and directory and waits until it answers.
    fn spawn(&mut self) -> Result<(), String> {
        let config = self.dir.join("influxdb.conf");
        std::fs::write(&config, self.config()).map_err(|e| e.to_string())?;
        let log = self.dir.join("server.log");
        let mut command = Command::new("influxd");
        command.arg("-config").arg(&config);
        self.pid = spawn_server(&mut command, &log, "TERM", || {
            output(Command::new("curl").args(["-sf", "-o", "/dev/null", &self.ping_url()]))
                .map(|_| ())
        })?;
        Ok(())
    }

    fn ping_url(&self) -> String {
        format!("{}/ping", self.url())
    }

    /// Stops the server and waits until it is gone.
    ///
    /// # Errors
    /// When the process does not exit.
    pub fn stop(&mut self) -> Result<(), String> {
        stop_process(self.pid, "TERM")
    }

    /// Starts the stopped server again, on the same port with the same data.
    ///
    /// # Errors
    /// When it does not come up.
    pub fn restart(&mut self) -> Result<(), String> {
        self.spawn()
    }

    /// The HTTP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The base URL of the HTTP API.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The temp dir holding data, WAL, configuration and log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn credentials(&self, given: Option<(&str, &str)>) -> Option<String> {
        given
            .or(self.auth.then_some(INFLUX_ADMIN))
            .map(|(user, password)| format!("{user}:{password}"))
    }

    /// Runs InfluxQL `query` (as the admin, on a server with authentication) against `db` and
    /// returns the JSON answer; an HTTP error or an error in the answer is the error.
    ///
    /// # Errors
    /// When curl fails, the server refuses, or InfluxDB reports an error.
    pub fn query(&self, db: Option<&str>, query: &str) -> Result<String, String> {
        self.post_query(db, query, None)
    }

    /// Like [`Self::query`], with the given credentials.
    ///
    /// # Errors
    /// As [`Self::query`].
    pub fn query_as(
        &self,
        credentials: (&str, &str),
        db: Option<&str>,
        query: &str,
    ) -> Result<String, String> {
        self.post_query(db, query, Some(credentials))
    }

    fn post_query(
        &self,
        db: Option<&str>,
        query: &str,
        credentials: Option<(&str, &str)>,
    ) -> Result<String, String> {
        let mut command = Command::new("curl");
        command
            .args(["-sS", "--fail-with-body", "-XPOST", "--max-time", "60"])
            .arg(format!("{}/query", self.url()))
            .args(["--data-urlencode", &format!("q={query}")]);
        if let Some(db) = db {
            command.args(["--data-urlencode", &format!("db={db}")]);
        }
        if let Some(user) = self.credentials(credentials) {
            command.args(["-u", &user]);
        }
        let answer = output(&mut command)?;
        if answer.contains("\"error\"") {
            return Err(answer);
        }
        Ok(answer)
    }

    /// Writes `lines` (line protocol, nanosecond timestamps) into `db`.
    ///
    /// # Errors
    /// When curl fails or InfluxDB refuses the points.
    pub fn write(&self, db: &str, lines: &str) -> Result<(), String> {
        let mut command = Command::new("curl");
        command
            .args(["-sS", "--fail-with-body", "-XPOST", "--max-time", "300"])
            .arg(format!("{}/write?db={db}&precision=ns", self.url()))
            .args(["--data-binary", "@-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(user) = self.credentials(None) {
            command.args(["-u", &user]);
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot run curl: {e}"))?;
        let mut stdin = child.stdin.take().ok_or("curl has no stdin")?;
        let body = lines.to_string();
        let feeder = std::thread::spawn(move || stdin.write_all(body.as_bytes()));
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        feeder
            .join()
            .map_err(|_| "the writer thread panicked".to_string())?
            .map_err(|e| format!("writing points to curl: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "InfluxDB refused the write: {}{}",
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}
