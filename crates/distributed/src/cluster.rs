//! Clusters for tests and examples: workers in this process over in-memory streams, or on
//! loopback TCP ports.

use flotilla_common::{Error, Result};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint, Server, Uri};

use crate::builder::Distribution;
use crate::channels::{ChannelCache, ChannelFactory};
use crate::discovery::StaticWorkers;
use crate::worker::Worker;

/// Workers in this process, reached over in-memory duplex streams (real tonic and Arrow
/// Flight, no sockets). Their URLs are `grpc://node-<i>.in-process:1`.
#[derive(Debug)]
pub struct InProcessCluster {
    urls: Vec<String>,
    workers: Vec<Worker>,
    channels: Arc<ChannelCache>,
}

/// Channels to in-process workers. The map is filled once the workers exist (they hold the
/// cache these channels live in: the cluster lives as long as the process).
#[derive(Debug, Default)]
struct InProcessChannels {
    workers: OnceLock<HashMap<String, Worker>>,
}

impl ChannelFactory for InProcessChannels {
    fn channel(&self, url: &str) -> Result<Channel> {
        let worker = self
            .workers
            .get()
            .and_then(|workers| workers.get(url))
            .ok_or_else(|| Error::not_found(format!("no in-process worker {url}")))?
            .clone();
        Ok(Endpoint::from_static("http://in-process.invalid")
            .connect_with_connector_lazy(DuplexConnector { worker }))
    }

    fn reachable<'a>(
        &'a self,
        url: &'a str,
    ) -> futures::future::BoxFuture<'a, std::result::Result<(), String>> {
        // In-process workers live as long as the process.
        let known = self
            .workers
            .get()
            .is_some_and(|workers| workers.contains_key(url));
        Box::pin(async move {
            if known {
                Ok(())
            } else {
                Err(format!("no in-process worker {url}"))
            }
        })
    }
}

/// Connects by serving the worker on one end of a new duplex stream.
#[derive(Debug, Clone)]
struct DuplexConnector {
    worker: Worker,
}

impl tower_service::Service<Uri> for DuplexConnector {
    type Response = TokioIo<tokio::io::DuplexStream>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let (client, server) = tokio::io::duplex(1 << 20);
        let service = self.worker.clone().into_service();
        tokio::spawn(async move {
            let incoming = futures::stream::iter([Ok::<_, std::io::Error>(server)]);
            let _ = Server::builder()
                .initial_stream_window_size(flotilla_common::grpc::STREAM_WINDOW)
                .initial_connection_window_size(flotilla_common::grpc::CONNECTION_WINDOW)
                .add_service(service)
                .serve_with_incoming(incoming)
                .await;
        });
        Box::pin(async move { Ok(TokioIo::new(client)) })
    }
}

impl InProcessCluster {
    /// `nodes` workers, the `i`-th made by `worker(i)`; their channels are replaced by the
    /// cluster's, so they reach each other in memory, and each knows its URL.
    pub fn new(nodes: usize, worker: impl Fn(usize) -> Worker) -> Self {
        let urls: Vec<String> = (0..nodes)
            .map(|i| format!("grpc://node-{i}.in-process:1"))
            .collect();
        let factory = Arc::new(InProcessChannels::default());
        let channels = Arc::new(ChannelCache::new(
            Arc::clone(&factory) as Arc<dyn ChannelFactory>
        ));
        let workers: Vec<Worker> = (0..nodes)
            .map(|i| {
                worker(i)
                    .with_channels(Arc::clone(&channels))
                    .with_address(urls[i].clone())
            })
            .collect();
        let _ = factory
            .workers
            .set(urls.iter().cloned().zip(workers.iter().cloned()).collect());
        Self {
            urls,
            workers,
            channels,
        }
    }

    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    pub fn workers(&self) -> &[Worker] {
        &self.workers
    }

    /// Distribution over every worker of the cluster.
    ///
    /// # Errors
    /// Never for the cluster's own URLs.
    pub fn distribution(&self) -> Result<Distribution> {
        Ok(
            Distribution::new(Arc::new(StaticWorkers::new(self.urls.iter().cloned())?))
                .with_channels(Arc::clone(&self.channels)),
        )
    }
}

/// Workers on loopback TCP ports picked by the system, each its own tonic server. A worker can
/// be killed — its port closed and its connections cut, as when its process dies — and started
/// again on the same port.
#[derive(Debug)]
pub struct LocalhostCluster {
    urls: Vec<String>,
    workers: Vec<Worker>,
    servers: Vec<Option<Serving>>,
}

/// A worker's server and the connections it accepted.
#[derive(Debug)]
struct Serving {
    task: JoinHandle<()>,
    connections: Arc<Mutex<Vec<std::net::TcpStream>>>,
}

impl Serving {
    /// Serves `worker` on `listener`, keeping a handle on each connection to cut it.
    fn start(worker: &Worker, listener: tokio::net::TcpListener) -> Self {
        let connections: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::default();
        let kept = Arc::clone(&connections);
        let incoming = futures::stream::unfold(listener, move |listener| {
            let kept = Arc::clone(&kept);
            async move {
                let accepted = listener.accept().await.and_then(|(stream, _)| {
                    let stream = stream.into_std()?;
                    kept.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(stream.try_clone()?);
                    tokio::net::TcpStream::from_std(stream)
                });
                Some((accepted, listener))
            }
        });
        let service = worker.clone().into_service();
        let task = tokio::spawn(async move {
            let _ = Server::builder()
                .initial_stream_window_size(flotilla_common::grpc::STREAM_WINDOW)
                .initial_connection_window_size(flotilla_common::grpc::CONNECTION_WINDOW)
                .add_service(service)
                .serve_with_incoming(incoming)
                .await;
        });
        Self { task, connections }
    }

    /// Stops accepting and cuts every connection.
    fn kill(self) {
        self.task.abort();
        for connection in self
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = connection.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl LocalhostCluster {
    /// Starts `nodes` workers, the `i`-th made by `worker(i)` and told its URL.
    ///
    /// # Errors
    /// When a port cannot be bound.
    pub async fn start(nodes: usize, worker: impl Fn(usize) -> Worker) -> Result<Self> {
        let mut cluster = Self {
            urls: Vec::new(),
            workers: Vec::new(),
            servers: Vec::new(),
        };
        for i in 0..nodes {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| Error::unavailable(format!("cannot bind a loopback port: {e}")))?;
            let address = listener
                .local_addr()
                .map_err(|e| Error::unavailable(format!("no local address: {e}")))?;
            let made = worker(i).with_address(format!("grpc://{address}"));
            cluster.servers.push(Some(Serving::start(&made, listener)));
            cluster.urls.push(format!("grpc://{address}"));
            cluster.workers.push(made);
        }
        Ok(cluster)
    }

    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    pub fn workers(&self) -> &[Worker] {
        &self.workers
    }

    /// Kills worker `i` as its process dying would: its port is closed and every connection
    /// to it cut. Nothing happens if it is not running.
    pub fn kill(&mut self, i: usize) {
        if let Some(serving) = self.servers.get_mut(i).and_then(Option::take) {
            serving.kill();
        }
    }

    /// Starts worker `i` again on its port (after [`Self::kill`]).
    ///
    /// # Errors
    /// When the port cannot be bound again.
    pub async fn restart(&mut self, i: usize) -> Result<()> {
        self.kill(i);
        let address = self.urls[i].trim_start_matches("grpc://").to_string();
        // The killed server lets go of its port when its task has stopped.
        let mut waited = 0;
        let listener = loop {
            match tokio::net::TcpListener::bind(&address).await {
                Ok(listener) => break listener,
                Err(e) if waited >= 100 => {
                    return Err(Error::unavailable(format!(
                        "cannot bind {address} again: {e}"
                    )));
                }
                Err(_) => {
                    waited += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
        };
        self.servers[i] = Some(Serving::start(&self.workers[i], listener));
        Ok(())
    }

    /// Distribution over every worker of the cluster.
    ///
    /// # Errors
    /// Never for the cluster's own URLs.
    pub fn distribution(&self) -> Result<Distribution> {
        Ok(Distribution::new(Arc::new(StaticWorkers::new(
            self.urls.iter().cloned(),
        )?)))
    }
}

impl Drop for LocalhostCluster {
    fn drop(&mut self) {
        for serving in self.servers.iter_mut().filter_map(Option::take) {
            serving.task.abort();
        }
    }
}
