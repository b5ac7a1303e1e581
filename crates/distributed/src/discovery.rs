//! Worker discovery: where the workers of a cluster are, asked anew for every query.
//!
//! | implementation | workers |
//! | --- | --- |
//! | [`StaticWorkers`] | a fixed list of URLs |
//! | [`DnsWorkers`] | every address a DNS name resolves to (a Kubernetes headless service) |
//! | [`FileWorkers`] | the URLs in a file, one per line, re-read when the file changes |
//!
//! A worker is its Arrow Flight URL, `grpc://host:port` or `grpc+tls://host:port`. Lists come
//! back sorted and without duplicates, so the same cluster gives the same order (and the same
//! task placement) every time.

use flotilla_common::{Error, ErrorKind, Result};
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// Where the workers are.
pub trait WorkerDiscovery: Debug + Send + Sync {
    /// The workers' URLs now, sorted, without duplicates. An empty list is not an error here:
    /// the caller decides whether a query can run without workers.
    /// Called for every query as it is planned (DataFusion's planner is synchronous), so it
    /// should be quick.
    fn workers(&self) -> Result<Vec<String>>;
}

/// Checks that `url` is a worker URL: `grpc://host:port` or `grpc+tls://host:port`.
///
/// # Errors
/// When it is not; the message says what a worker URL looks like.
pub fn check_worker_url(url: &str) -> Result<()> {
    let rest = url
        .strip_prefix("grpc://")
        .or_else(|| url.strip_prefix("grpc+tls://"));
    let valid = rest.is_some_and(|rest| {
        let (host, port) = match rest.rsplit_once(':') {
            Some(parts) => parts,
            None => return false,
        };
        !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok_and(|p| p > 0)
    });
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "'{url}' is not a worker URL (expected grpc://host:port or grpc+tls://host:port)"
        )))
    }
}

fn sorted(mut urls: Vec<String>) -> Vec<String> {
    urls.sort();
    urls.dedup();
    urls
}

/// A fixed list of workers.
#[derive(Debug, Clone)]
pub struct StaticWorkers {
    urls: Vec<String>,
}

impl StaticWorkers {
    /// # Errors
    /// When a URL is not a worker URL (see [`check_worker_url`]).
    pub fn new(urls: impl IntoIterator<Item = impl Into<String>>) -> Result<Self> {
        let urls: Vec<String> = urls.into_iter().map(Into::into).collect();
        for url in &urls {
            check_worker_url(url)?;
        }
        Ok(Self { urls: sorted(urls) })
    }
}

impl WorkerDiscovery for StaticWorkers {
    fn workers(&self) -> Result<Vec<String>> {
        Ok(self.urls.clone())
    }
}

/// Every address a DNS name resolves to, each a worker on `port` (as a Kubernetes headless
/// service lists its pods).
#[derive(Debug, Clone)]
pub struct DnsWorkers {
    name: String,
    port: u16,
    tls: bool,
}

impl DnsWorkers {
    /// Workers at every address of `name`, on `port`; `tls` makes their URLs `grpc+tls://`.
    pub fn new(name: impl Into<String>, port: u16, tls: bool) -> Self {
        Self {
            name: name.into(),
            port,
            tls,
        }
    }
}

impl WorkerDiscovery for DnsWorkers {
    fn workers(&self) -> Result<Vec<String>> {
        use std::net::ToSocketAddrs;
        let addresses = (self.name.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| {
                Error::new(
                    ErrorKind::Unavailable,
                    format!("cannot resolve worker name '{}': {e}", self.name),
                )
            })?;
        let scheme = if self.tls { "grpc+tls" } else { "grpc" };
        Ok(sorted(
            addresses
                .map(|address| format!("{scheme}://{address}"))
                .collect(),
        ))
    }
}

/// The workers listed in a file, one URL per line (blank lines and `#` comments ignored),
/// re-read whenever the file's modification time changes.
#[derive(Debug)]
pub struct FileWorkers {
    path: PathBuf,
    /// The list as last read, with the modification time it was read at.
    cached: Mutex<Option<(SystemTime, Vec<String>)>>,
}

impl FileWorkers {
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            path: path.as_ref().to_path_buf(),
            cached: Mutex::new(None),
        }
    }

    fn read(&self) -> Result<Vec<String>> {
        let unreadable = |e: std::io::Error| {
            Error::new(
                ErrorKind::Unavailable,
                format!("cannot read the worker list {}: {e}", self.path.display()),
            )
        };
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .map_err(unreadable)?;
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, urls)) = cached.as_ref()
            && *at == modified
        {
            return Ok(urls.clone());
        }
        let text = std::fs::read_to_string(&self.path).map_err(unreadable)?;
        let mut urls = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            check_worker_url(line).map_err(|e| {
                Error::invalid(format!(
                    "{}:{}: {}",
                    self.path.display(),
                    number + 1,
                    e.message()
                ))
            })?;
            urls.push(line.to_string());
        }
        let urls = sorted(urls);
        *cached = Some((modified, urls.clone()));
        Ok(urls)
    }
}

impl WorkerDiscovery for FileWorkers {
    fn workers(&self) -> Result<Vec<String>> {
        self.read()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn worker_urls_are_checked() {
        for good in [
            "grpc://a:1",
            "grpc+tls://node-2.svc:50051",
            "grpc://[::1]:9",
        ] {
            assert!(check_worker_url(good).is_ok(), "{good}");
        }
        for bad in [
            "http://a:1",
            "grpc://a",
            "grpc://:1",
            "grpc://a:0",
            "grpc://a:x",
            "a:1",
        ] {
            let e = check_worker_url(bad).unwrap_err();
            assert!(e.message().contains("grpc://host:port"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_static_list_comes_back_sorted_and_once_each() {
        let workers = StaticWorkers::new(["grpc://b:2", "grpc://a:1", "grpc://b:2"]).unwrap();
        assert_eq!(workers.workers().unwrap(), ["grpc://a:1", "grpc://b:2"]);
        assert!(StaticWorkers::new(["b:2"]).is_err());
    }

    #[test]
    fn a_dns_name_gives_a_worker_per_address() {
        let workers = DnsWorkers::new("localhost", 50051, false)
            .workers()
            .unwrap();
        assert!(
            workers.contains(&"grpc://127.0.0.1:50051".to_string()),
            "{workers:?}"
        );
        let tls = DnsWorkers::new("127.0.0.1", 7, true).workers().unwrap();
        assert_eq!(tls, ["grpc+tls://127.0.0.1:7"]);
        let e = DnsWorkers::new("no-such-host.invalid", 1, false)
            .workers()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.message().contains("no-such-host.invalid"), "{e}");
    }

    #[test]
    fn a_file_is_reread_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("workers");
        std::fs::write(&path, "# the cluster\ngrpc://b:2\n\ngrpc://a:1  # first\n").unwrap();
        let workers = FileWorkers::new(&path);
        assert_eq!(workers.workers().unwrap(), ["grpc://a:1", "grpc://b:2"]);

        std::fs::write(&path, "grpc://c:3\n").unwrap();
        // A later modification time, whatever the file system's clock granularity.
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::now() + Duration::from_secs(5))
            .unwrap();
        assert_eq!(workers.workers().unwrap(), ["grpc://c:3"]);

        std::fs::write(&path, "grpc://c:3\nnot a url\n").unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::now() + Duration::from_secs(10))
            .unwrap();
        let e = workers.workers().unwrap_err();
        assert!(e.message().contains(":2:"), "names the line: {e}");

        std::fs::remove_file(&path).unwrap();
        let e = workers.workers().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
    }
}
