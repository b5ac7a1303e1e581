//! TLS to PostgreSQL over rustls (the TLS stack the rest of Flotilla uses).
//!
//! | connection string `sslmode` | `tls_root_cert` | connection |
//! | --- | --- | --- |
//! | `disable` | — | plain |
//! | `prefer` (libpq's default) | unset | plain (as before: no certificate could be checked) |
//! | `prefer` | set | TLS when the server offers it, certificate checked |
//! | `require` | unset | TLS, certificate checked against the system's roots |
//! | `require` | set | TLS, certificate checked against that CA |
//!
//! A checked certificate must name the host connected to. Unlike libpq's `require`, an
//! unverifiable certificate is always refused: an encrypted connection to anyone is not what a
//! federation engine holding database credentials should make.

use flotilla_common::{Error, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_rustls::TlsConnector;

/// Makes TLS connections to PostgreSQL servers, checking certificates against fixed roots.
#[derive(Clone)]
pub(crate) struct RustlsConnect {
    config: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for RustlsConnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RustlsConnect")
    }
}

impl RustlsConnect {
    /// Trusting the CA certificates in the PEM file `root_cert`, or the system's roots.
    pub(crate) fn new(root_cert: Option<&Path>) -> Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        match root_cert {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    Error::invalid(format!("cannot read tls_root_cert {}: {e}", path.display()))
                })?;
                let mut found = 0;
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    let cert = cert.map_err(|e| {
                        Error::invalid(format!("tls_root_cert {}: {e}", path.display()))
                    })?;
                    roots.add(cert).map_err(|e| {
                        Error::invalid(format!("tls_root_cert {}: {e}", path.display()))
                    })?;
                    found += 1;
                }
                if found == 0 {
                    return Err(Error::invalid(format!(
                        "tls_root_cert {} holds no PEM certificate",
                        path.display()
                    )));
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    // A system certificate rustls cannot use is skipped, like other clients do.
                    let _ = roots.add(cert);
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::internal(format!("TLS setup: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            config: Arc::new(config),
        })
    }
}

impl<S> MakeTlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnectOne;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(
        &mut self,
        domain: &str,
    ) -> std::result::Result<RustlsConnectOne, Self::Error> {
        Ok(RustlsConnectOne {
            connector: TlsConnector::from(Arc::clone(&self.config)),
            name: ServerName::try_from(domain.to_string())?,
        })
    }
}

/// One TLS handshake with a named server.
pub(crate) struct RustlsConnectOne {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsConnectOne
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let stream = self.connector.connect(self.name, stream).await?;
            Ok(RustlsStream(stream))
        })
    }
}

/// A TLS connection to PostgreSQL.
pub(crate) struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
