//! gRPC endpoints from URLs: one place that knows what `grpc://` and `grpc+tls://` mean, for
//! every Flotilla client of a Flight service (the Flight SQL source, distributed workers).

use crate::{Error, Result};
use std::time::Duration;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

/// How long connecting to an endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest gRPC message any Flotilla server or client sends or accepts: the Flight SQL
/// port (whose clients, node-to-node calls included, share it), a standalone worker, the
/// distributed client and the Flight SQL source. Arrow Flight's encoders slice result batches
/// into messages of about 2 MB, so this bounds plans, tickets and single huge rows, and what a
/// client can make a node buffer.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// The URI tonic connects to, the `host:port` part, and whether to use TLS, for
/// `grpc://host:port` (also `grpc+tcp://`, `http://`) or `grpc+tls://host:port` (also `https://`).
///
/// # Errors
/// When `url` is not such a URL.
pub fn parse_url(url: &str) -> Result<(String, String, bool)> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| Error::invalid(format!("'{url}' is not a URL like grpc://host:50051")))?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(Error::invalid(format!("'{url}' names no host")));
    }
    match scheme {
        "grpc" | "grpc+tcp" | "http" => {
            Ok((format!("http://{authority}"), authority.to_string(), false))
        }
        "grpc+tls" | "https" => Ok((format!("https://{authority}"), authority.to_string(), true)),
        other => Err(Error::invalid(format!(
            "'{url}': unknown scheme '{other}' (use grpc://host:port or grpc+tls://host:port)"
        ))),
    }
}

/// HTTP/2 receive windows for streams of Arrow data (also what servers should offer).
pub const STREAM_WINDOW: u32 = 8 << 20;
pub const CONNECTION_WINDOW: u32 = 32 << 20;
// Generous: a peer busy with a heavy query may answer pings late (its runtime's threads run
// DataFusion operators), and a connection closed for a late ping fails every call on it. A
// peer that dies is noticed at once anyway (its socket is reset); these catch silent ones.
const KEEP_ALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
const KEEP_ALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// An endpoint for `url` (see [`parse_url`]): a 5 s connect timeout, no Nagle delay, large
/// receive windows, keep-alive pings while streams are open (a silent peer is noticed within
/// about 30 s; one whose process dies, at once), and for
/// TLS the server's certificate checked against `tls_root_cert` (PEM) or the system's roots.
///
/// # Errors
/// When `url` or the TLS settings are unusable.
pub fn endpoint(url: &str, tls_root_cert: Option<&[u8]>) -> Result<Endpoint> {
    let (uri, authority, tls) = parse_url(url)?;
    let mut endpoint = Endpoint::from_shared(uri)
        .map_err(|e| Error::invalid(format!("'{url}': {e}")))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        // Bulk Arrow data: HTTP/2's default 64 KiB receive window makes a sender wait for
        // window updates every few messages.
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        // A peer that vanishes mid-stream (no reset) is noticed within seconds.
        .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT);
    if tls {
        let host = authority
            .rsplit_once(':')
            .map_or(authority.as_str(), |(host, _)| host)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let config = match tls_root_cert {
            Some(pem) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)),
            None => ClientTlsConfig::new().with_native_roots(),
        };
        endpoint = endpoint
            .tls_config(config.domain_name(host))
            .map_err(|e| Error::invalid(format!("TLS for '{url}': {e}")))?;
    }
    Ok(endpoint)
}

/// The gRPC metadata key nodes of a cluster send their shared secret in, on the calls they
/// make to each other (task tickets, the end of a query). A node with a cluster secret takes
/// such calls only with it.
pub const CLUSTER_SECRET_HEADER: &str = "x-flotilla-cluster-secret";
