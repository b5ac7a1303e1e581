//! A small pool of read-only SQLite connections.
//!
//! SQLite connections are cheap but not free (each parses the schema on first use), and a
//! connection must not be used by two threads at once. The pool hands out one connection per
//! running statement and keeps a few idle ones.

use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// How many idle connections are kept.
const MAX_IDLE: usize = 8;

/// How long a statement waits for a lock held by a writer.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// A pool of read-only connections to one database file.
#[derive(Debug)]
pub struct Pool {
    path: PathBuf,
    /// Further database files attached to every connection: (schema name, file).
    attached: Vec<(String, PathBuf)>,
    idle: Mutex<Vec<Connection>>,
}

impl Pool {
    /// A pool for the database at `path` with the files of `attached` attached under their
    /// schema names. Opens one connection to check the files are databases.
    pub fn open(path: &Path, attached: &[(String, PathBuf)]) -> rusqlite::Result<Self> {
        let pool = Pool {
            path: path.to_path_buf(),
            attached: attached.to_vec(),
            idle: Mutex::new(Vec::new()),
        };
        let conn = pool.get()?;
        // Reading the schemas fails early when a file is not a SQLite database.
        conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))?;
        for (schema, _) in attached {
            let sql = format!(
                "SELECT count(*) FROM \"{}\".sqlite_schema",
                schema.replace('"', "\"\"")
            );
            conn.query_row(&sql, [], |_| Ok(()))?;
        }
        pool.put(conn);
        Ok(pool)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// An idle connection, or a new one.
    pub fn get(&self) -> rusqlite::Result<Connection> {
        if let Some(conn) = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(conn);
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(&self.path, flags)?;
        // A writer holding a lock makes readers wait this long before failing with "locked".
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // DataFusion's LIKE is case-sensitive; SQLite's is not unless asked.
        conn.execute_batch("PRAGMA case_sensitive_like = ON;")?;
        // Attached files open with the main file's flags: read-only too.
        for (schema, file) in &self.attached {
            conn.execute("ATTACH DATABASE ?1 AS ?2", (file.to_string_lossy(), schema))?;
        }
        Ok(conn)
    }

    /// How many connections are idle (not running a statement).
    pub fn idle_count(&self) -> usize {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Returns a connection that is no longer in use.
    pub fn put(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }
}
