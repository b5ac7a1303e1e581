//! Channels to workers: made by a [`ChannelFactory`] (the hook for custom TLS, proxies or
//! interceptors), one per worker URL, kept in a [`ChannelCache`] and shared by every query.
//!
//! A tonic [`Channel`] multiplexes any number of calls over one HTTP/2 connection and reconnects
//! by itself, so one per worker is all a node needs.

use flotilla_common::{Error, Result};
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

use crate::discovery::check_worker_url;

/// Makes the channel to one worker.
pub trait ChannelFactory: Debug + Send + Sync {
    /// A channel to the worker at `url` (`grpc://host:port` or `grpc+tls://host:port`). It may
    /// connect lazily: errors reaching the worker then come with the first call.
    ///
    /// # Errors
    /// When `url` or the factory's settings are unusable.
    fn channel(&self, url: &str) -> Result<Channel>;

    /// Whether the worker at `url` can be reached at all — the question asked of a worker
    /// whose stream has gone quiet. The default connects a TCP socket to its address (1.5 s at
    /// most): the kernel answers that even when the worker is too busy to answer calls, and
    /// a dead process or a cut link does not. `Err` says what failed.
    fn reachable<'a>(&'a self, url: &'a str) -> BoxFuture<'a, std::result::Result<(), String>> {
        Box::pin(tcp_reachable(url))
    }
}

/// How long a TCP connect to a quiet worker may take before the worker counts as unreachable.
const CONNECT_PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

async fn tcp_reachable(url: &str) -> std::result::Result<(), String> {
    let address = url
        .strip_prefix("grpc://")
        .or_else(|| url.strip_prefix("grpc+tls://"))
        .ok_or_else(|| format!("'{url}' is not a worker URL"))?;
    match tokio::time::timeout(
        CONNECT_PROBE_TIMEOUT,
        tokio::net::TcpStream::connect(address),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("cannot connect: {e}")),
        Err(_) => Err(format!("no connection within {CONNECT_PROBE_TIMEOUT:?}")),
    }
}

/// Plain channels for `grpc://`, TLS for `grpc+tls://` (checked against `tls_root_cert` or the
/// system's roots), connected on first use with a 5 s connect timeout.
#[derive(Debug, Clone, Default)]
pub struct DefaultChannels {
    /// A CA certificate (PEM) to check workers' certificates against.
    pub tls_root_cert: Option<Vec<u8>>,
}

impl ChannelFactory for DefaultChannels {
    fn channel(&self, url: &str) -> Result<Channel> {
        check_worker_url(url)?;
        let endpoint = flotilla_common::grpc::endpoint(url, self.tls_root_cert.as_deref())
            .map_err(|e| Error::invalid(format!("worker {}", e.message())))?;
        Ok(endpoint.connect_lazy())
    }
}

/// The first wait before a worker found unreachable is asked again whether it is back; each
/// unanswered probe doubles it, up to [`PROBE_BACKOFF_MAX`].
const PROBE_BACKOFF: Duration = Duration::from_millis(500);
const PROBE_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// One channel per worker URL, made on first use and shared after; workers found unreachable
/// are left out of new plans at once and probed, with backoff, until they answer again.
#[derive(Debug)]
pub struct ChannelCache {
    factory: Arc<dyn ChannelFactory>,
    channels: Mutex<HashMap<String, Channel>>,
    down: Arc<Mutex<HashMap<String, Down>>>,
    /// When each worker last answered.
    seen: Arc<Mutex<HashMap<String, SystemTime>>>,
    /// The cluster's shared secret, sent on every call to a worker.
    secret: Option<MetadataValue<Ascii>>,
}

/// A worker found unreachable.
#[derive(Debug, Clone)]
pub struct Down {
    /// When it was first found unreachable.
    pub at: SystemTime,
    /// What failed last (the first failure, then each unanswered probe's).
    pub error: String,
}

impl ChannelCache {
    pub fn new(factory: Arc<dyn ChannelFactory>) -> Self {
        Self {
            factory,
            channels: Mutex::new(HashMap::new()),
            down: Arc::default(),
            seen: Arc::default(),
            secret: None,
        }
    }

    /// Sends `secret` with every call to a worker (in the
    /// [`flotilla_common::grpc::CLUSTER_SECRET_HEADER`] metadata), for nodes that take calls
    /// of their cluster only.
    ///
    /// # Errors
    /// When `secret` is empty or not printable ASCII.
    pub fn with_secret(mut self, secret: &str) -> Result<Self> {
        let value = MetadataValue::try_from(secret)
            .ok()
            .filter(|_| !secret.is_empty() && secret.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| {
                Error::invalid("the cluster secret must be non-empty printable ASCII (no spaces)")
            })?;
        self.secret = Some(value);
        Ok(self)
    }

    /// The cluster's shared secret, if there is one (it also signs the result tickets
    /// clients present to workers, see the `results` module).
    pub fn secret(&self) -> Option<&str> {
        self.secret.as_ref().and_then(|value| value.to_str().ok())
    }

    /// A call carrying `message` and the cluster secret, if there is one.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(secret) = &self.secret {
            request
                .metadata_mut()
                .insert(flotilla_common::grpc::CLUSTER_SECRET_HEADER, secret.clone());
        }
        request
    }

    /// Notes that `url` could not be reached (`error` says how): its channel is dropped, it is
    /// left out of plans from now on, and a background probe re-admits it once it can be
    /// reached again (asking after 0.5 s, then twice as long each time, up to every 10 s).
    pub fn mark_down(&self, url: &str, error: &str) {
        self.forget(url);
        let first = {
            let mut down = self.down.lock().unwrap_or_else(|e| e.into_inner());
            let first = !down.contains_key(url);
            down.entry(url.to_string()).or_insert_with(|| Down {
                at: SystemTime::now(),
                error: error.to_string(),
            });
            first
        };
        if first && let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(probe_until_back(
                Arc::clone(&self.factory),
                Arc::clone(&self.down),
                url.to_string(),
            ));
        }
    }

    /// Notes that `url` answered just now.
    pub fn saw(&self, url: &str) {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(url.to_string(), SystemTime::now());
    }

    /// When `url` last answered, if it ever did.
    pub fn last_seen(&self, url: &str) -> Option<SystemTime> {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(url)
            .copied()
    }

    /// Whether `url` is not known to be unreachable.
    pub fn is_up(&self, url: &str) -> bool {
        !self
            .down
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(url)
    }

    /// The workers known to be unreachable now, and since when.
    pub fn down(&self) -> Vec<(String, Down)> {
        let down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<(String, Down)> = down
            .iter()
            .map(|(url, d)| (url.clone(), d.clone()))
            .collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list
    }

    /// Whether the worker at `url` can be reached (see [`ChannelFactory::reachable`]).
    pub async fn reachable(&self, url: &str) -> std::result::Result<(), String> {
        self.factory.reachable(url).await
    }

    /// Asks each of `urls` whether it can be reached (see [`ChannelFactory::reachable`]) and
    /// marks those that cannot down. After a query failed, so that the next one is not planned
    /// on a worker that died during it — whoever saw it die.
    pub async fn check(&self, urls: &[String]) {
        let probes = urls
            .iter()
            .filter(|url| self.is_up(url))
            .map(|url| async move { (url, self.factory.reachable(url).await) });
        for (url, answer) in futures::future::join_all(probes).await {
            match answer {
                Ok(()) => self.saw(url),
                Err(error) => self.mark_down(url, &error),
            }
        }
    }

    /// The channel to `url`, made by the factory the first time.
    ///
    /// # Errors
    /// As the factory's.
    pub fn get(&self, url: &str) -> Result<Channel> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(channel) = channels.get(url) {
            return Ok(channel.clone());
        }
        let channel = self.factory.channel(url)?;
        channels.insert(url.to_string(), channel.clone());
        Ok(channel)
    }

    /// Drops the channel to `url` (a worker that left the cluster); the next [`Self::get`]
    /// makes a new one.
    pub fn forget(&self, url: &str) {
        self.channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(url);
    }
}

/// Probes `url` with backoff until it can be reached, then re-admits it.
async fn probe_until_back(
    factory: Arc<dyn ChannelFactory>,
    down: Arc<Mutex<HashMap<String, Down>>>,
    url: String,
) {
    let mut wait = PROBE_BACKOFF;
    loop {
        tokio::time::sleep(wait).await;
        if !down
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&url)
        {
            return;
        }
        let answer = factory.reachable(&url).await;
        let mut down = down.lock().unwrap_or_else(|e| e.into_inner());
        match answer {
            Ok(()) => {
                down.remove(&url);
                return;
            }
            Err(error) => {
                if let Some(state) = down.get_mut(&url) {
                    state.error = error;
                }
            }
        }
        wait = (wait * 2).min(PROBE_BACKOFF_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug, Default)]
    struct Counting {
        made: AtomicUsize,
    }

    impl ChannelFactory for Counting {
        fn channel(&self, url: &str) -> Result<Channel> {
            self.made.fetch_add(1, Ordering::SeqCst);
            DefaultChannels::default().channel(url)
        }
    }

    #[tokio::test]
    async fn one_channel_per_worker_is_made_and_reused() {
        let factory = Arc::new(Counting::default());
        let cache = ChannelCache::new(Arc::clone(&factory) as Arc<dyn ChannelFactory>);
        cache.get("grpc://127.0.0.1:1").unwrap();
        cache.get("grpc://127.0.0.1:1").unwrap();
        cache.get("grpc+tls://localhost:2").unwrap();
        assert_eq!(factory.made.load(Ordering::SeqCst), 2);
        cache.forget("grpc://127.0.0.1:1");
        cache.get("grpc://127.0.0.1:1").unwrap();
        assert_eq!(factory.made.load(Ordering::SeqCst), 3);
        let e = cache.get("http://127.0.0.1:1").unwrap_err();
        assert!(e.message().contains("not a worker URL"), "{e}");
    }

    #[tokio::test]
    async fn a_worker_that_is_not_there_fails_the_first_call_clearly() {
        use arrow_flight::flight_service_client::FlightServiceClient;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let channel = DefaultChannels::default()
            .channel(&format!("grpc://127.0.0.1:{port}"))
            .unwrap();
        let status = FlightServiceClient::new(channel)
            .list_actions(arrow_flight::Empty {})
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status}");
    }
}
