//! A throwaway MariaDB server.

use crate::server::{chown_to, is_root, on_free_port, output, run, spawn_server};
use crate::tpch::{TPCH_SF001_ROWS, TpchLoads, tpch_csv_dir, tpch_schema_name};
use crate::{SETUP_HINT, reaper};
use flotilla_tpch::load::{Server, load_script};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The user the kit creates, with all privileges, for connections over TCP.
pub const USER: &str = "flotilla";
/// That user's password.
pub const PASSWORD: &str = "flotilla";

/// A MariaDB server on 127.0.0.1 with a user [`USER`] / [`PASSWORD`] and a database `flotilla`.
#[derive(Debug)]
pub struct MariaDb {
    port: u16,
    pid: u32,
    dir: PathBuf,
    binary: PathBuf,
    loads: TpchLoads,
    /// The certificate and key the server offers TLS with, once [`MariaDb::enable_tls`] ran.
    tls: Option<(PathBuf, PathBuf)>,
}

/// The server of this test binary, started on first use.
///
/// # Panics
/// When the server cannot be started; the message says why and how to fix it.
pub fn mariadb() -> &'static MariaDb {
    match try_mariadb() {
        Ok(server) => server,
        Err(e) => panic!("{e}"),
    }
}

/// The server of this test binary, started on first use, or why it could not start.
pub fn try_mariadb() -> Result<&'static MariaDb, String> {
    static SERVER: OnceLock<Result<MariaDb, String>> = OnceLock::new();
    SERVER
        .get_or_init(|| MariaDb::start().map_err(|e| format!("MariaDB test server: {e}")))
        .as_ref()
        .map_err(Clone::clone)
}

fn find(name: &str, dirs: &[&str]) -> Result<PathBuf, String> {
    dirs.iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("'{name}' not found in {}; {SETUP_HINT}", dirs.join(", ")))
}

impl MariaDb {
    fn start() -> Result<MariaDb, String> {
        let server = find("mariadbd", &["/usr/sbin", "/usr/bin", "/usr/local/bin"])?;
        let install = find(
            "mariadb-install-db",
            &["/usr/bin", "/usr/local/bin", "/usr/sbin"],
        )?;
        find("mariadb", &["/usr/bin", "/usr/local/bin"])?;
        let dir = reaper::temp_dir("flotilla-mariadb-").map_err(|e| e.to_string())?;
        let data = dir.join("data");
        std::fs::create_dir(&data).map_err(|e| e.to_string())?;
        // Each server's temporary tables in its own directory: two servers bootstrapping at
        // once in /tmp were seen to trip over each other.
        std::fs::create_dir(dir.join("tmp")).map_err(|e| e.to_string())?;
        chown_to(&dir, "mysql")?;
        let mut command = Command::new(&install);
        command
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .env("TMPDIR", dir.join("tmp"));
        if is_root() {
            command.arg("--user=mysql");
        }
        {
            // One bootstrap at a time in this process.
            static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
            let _one = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
            run(&mut command)?;
        }
        on_free_port(|port| {
            let mut server = MariaDb {
                port,
                pid: 0,
                dir: dir.clone(),
                binary: server.clone(),
                loads: TpchLoads::default(),
                tls: None,
            };
            server.spawn()?;
            server.root(&format!(
                "CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'; \
                 GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'%'; \
                 CREATE DATABASE flotilla;"
            ))?;
            Ok(server)
        })
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("data").join("mysqld.sock")
    }

    /// Runs SQL as root over the socket.
    fn root(&self, sql: &str) -> Result<String, String> {
        output(
            Command::new("mariadb")
                .arg("--no-defaults")
                .arg(format!("--socket={}", self.socket().display()))
                .args(["-uroot", "-N", "-B", "-e", sql]),
        )
    }

    /// Runs mariadbd on the server's port and data directory and waits until it answers.
    fn spawn(&mut self) -> Result<(), String> {
        let data = self.dir.join("data");
        let mut command = Command::new(&self.binary);
        command
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!("--pid-file={}", data.join("mysqld.pid").display()))
            .arg(format!("--tmpdir={}", self.dir.join("tmp").display()))
            .args(["--local-infile=1", "--skip-name-resolve", "--skip-log-bin"])
            .args([
                "--innodb-buffer-pool-size=256M",
                "--innodb-flush-log-at-trx-commit=0",
            ])
            // Debian's default: case-insensitive and blank-padded, as most servers are, so
            // connector tests meet the comparisons they must get right.
            .args([
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_general_ci",
            ]);
        if let Some((cert, key)) = &self.tls {
            command
                .arg(format!("--ssl-cert={}", cert.display()))
                .arg(format!("--ssl-key={}", key.display()));
        }
        if is_root() {
            command.arg("--user=mysql");
        }
        let log = self.dir.join("server.log");
        self.pid = spawn_server(&mut command, &log, "TERM", || {
            self.root("SELECT 1").map(|_| ())
        })?;
        Ok(())
    }

    /// A server of the caller's own, not shared with other tests: one it may stop and restart.
    pub fn start_private() -> Result<MariaDb, String> {
        MariaDb::start().map_err(|e| format!("MariaDB test server: {e}"))
    }

    /// Restarts the server offering TLS with `pki`'s server certificate (clients that do not
    /// ask for TLS keep connecting in plain text).
    pub fn enable_tls(&mut self, pki: &crate::tls::TestPki) -> Result<(), String> {
        let (cert, key) = pki.server_files_in(&self.dir.join("tls"), "mysql")?;
        self.stop()?;
        self.tls = Some((cert, key));
        self.spawn()
    }

    /// Stops the server and waits until it is gone.
    pub fn stop(&mut self) -> Result<(), String> {
        crate::server::stop_process(self.pid, "TERM")
    }

    /// Starts the stopped server again, on the same port with the same data.
    pub fn restart(&mut self) -> Result<(), String> {
        self.spawn()
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The temp dir holding the data directory and log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A connection URL for the `flotilla` database.
    pub fn url(&self) -> String {
        format!("mysql://{USER}:{PASSWORD}@127.0.0.1:{}/flotilla", self.port)
    }

    /// Runs SQL with the `mariadb` client over TCP; returns tab-separated rows, one per line.
    pub fn query(&self, sql: &str) -> Result<String, String> {
        output(
            Command::new("mariadb")
                .arg("--no-defaults")
                .args(["-h", "127.0.0.1", "-P", &self.port.to_string()])
                .arg(format!("-u{USER}"))
                .arg(format!("-p{PASSWORD}"))
                .args([
                    "--local-infile=1",
                    "--connect-timeout=5",
                    "--default-character-set=utf8mb4",
                    "-N",
                    "-B",
                    "-e",
                    sql,
                ]),
        )
    }

    /// Loads TPC-H at `scale` into the database [`tpch_schema_name`]`(scale)` with
    /// `LOAD DATA LOCAL INFILE`, once per scale; returns the database name.
    pub fn load_tpch(&self, scale: f64) -> Result<String, String> {
        self.loads.once(scale, || {
            let csv = tpch_csv_dir(scale)?;
            let db = tpch_schema_name(scale);
            let mut sql = load_script(Server::MariaDb, &db, &csv)?;
            sql.push_str("SHOW WARNINGS;");
            let warnings = self.query(&sql)?;
            if !warnings.trim().is_empty() {
                return Err(format!("LOAD DATA reported warnings:\n{warnings}"));
            }
            // Statistics as a loaded database has them, not as InnoDB's background sampler
            // left them mid-load: the cost model reads row counts and sizes from them, and a
            // test's plan must not depend on whether the sampler has run yet.
            let tables: Vec<String> = TPCH_SF001_ROWS
                .iter()
                .map(|(table, _)| format!("`{db}`.`{table}`"))
                .collect();
            self.query(&format!("ANALYZE TABLE {};", tables.join(", ")))?;
            Ok(db)
        })
    }
}
