//! The InfluxDB v1 HTTP API (`/query`), as served by InfluxDB 1.x and kept by 2.x and 3 for
//! compatibility: one pooled HTTP/1.1 client per source, with connect and answer timeouts.

use base64::Engine;
use bytes::{Buf, Bytes, BytesMut};
use flotilla_common::{Error, ErrorKind, Result};
use futures::Stream;
use futures::stream::BoxStream;
use http_body_util::{BodyExt, Full};
use hyper::body::Body as _;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::time::Duration;

/// How to sign in.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    None,
    /// InfluxDB 1.x users (`Authorization: Basic …`).
    User {
        name: String,
        password: String,
    },
    /// An InfluxDB 2.x or 3 token (`Authorization: Token …`).
    Token(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => write!(f, "None"),
            Credentials::User { name, .. } => write!(f, "User({name})"),
            Credentials::Token(_) => write!(f, "Token(…)"),
        }
    }
}

/// How long to wait for a connection, and for the first bytes of an answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const ANSWER_TIMEOUT: Duration = Duration::from_secs(300);

/// A client of one InfluxDB database.
#[derive(Clone)]
pub struct InfluxClient {
    /// The source's name, for errors.
    source: String,
    base: String,
    database: String,
    authorization: Option<http::HeaderValue>,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for InfluxClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InfluxClient")
            .field("source", &self.source)
            .field("base", &self.base)
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

/// `text` percent-encoded for a URL query (RFC 3986 unreserved characters kept).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

impl InfluxClient {
    /// A client of `database` at `url` (`http://host:port`).
    ///
    /// # Errors
    /// When `url` is not an `http://` URL or the credentials cannot be sent in a header.
    pub fn new(source: &str, url: &str, database: &str, credentials: &Credentials) -> Result<Self> {
        let base = url.trim_end_matches('/').to_string();
        let uri: http::Uri = base.parse().map_err(|e| {
            Error::invalid(format!("'{url}' is not a URL: {e}")).with_source(source)
        })?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(Error::invalid(format!(
                "'{url}' is not an http://host:port URL (https is not supported yet)"
            ))
            .with_source(source));
        }
        let authorization = match credentials {
            Credentials::None => None,
            Credentials::User { name, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{name}:{password}"))
            )),
            Credentials::Token(token) => Some(format!("Token {token}")),
        }
        .map(|value| {
            http::HeaderValue::from_str(&value).map_err(|_| {
                Error::invalid("the credentials hold characters a header cannot carry")
                    .with_source(source)
            })
        })
        .transpose()?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(Self {
            source: source.to_string(),
            base,
            database: database.to_string(),
            authorization,
            http,
        })
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    fn error(&self, kind: ErrorKind, message: impl Into<String>) -> Error {
        Error::new(kind, message).with_source(&self.source)
    }

    /// Sends `query` (with nanosecond epochs; chunked answers when `chunk` is given) and
    /// returns the answer's body, after checking its status.
    async fn send(&self, query: &str, chunk: Option<usize>) -> Result<hyper::body::Incoming> {
        let mut uri = format!(
            "{}/query?db={}&epoch=ns&q={}",
            self.base,
            encode(&self.database),
            encode(query)
        );
        if let Some(size) = chunk {
            uri.push_str(&format!("&chunked=true&chunk_size={size}"));
        }
        self.call(http::Method::GET, uri, Bytes::new()).await
    }

    /// Runs a statement that changes something (`CREATE DATABASE`, `DROP MEASUREMENT`, …).
    ///
    /// # Errors
    /// When InfluxDB cannot be reached, refuses, or reports an error.
    pub async fn execute(&self, statement: &str) -> Result<()> {
        let uri = format!(
            "{}/query?db={}&q={}",
            self.base,
            encode(&self.database),
            encode(statement)
        );
        let body = self.call(http::Method::POST, uri, Bytes::new()).await?;
        self.answer(body).await.map(drop)
    }

    /// A whole (not chunked) answer, checked for errors.
    async fn answer(&self, body: hyper::body::Incoming) -> Result<Value> {
        let bytes = body
            .collect()
            .await
            .map_err(|e| self.error(ErrorKind::Unavailable, format!("reading the answer: {e}")))?
            .to_bytes();
        let answer: Value = serde_json::from_slice(&bytes).map_err(|e| {
            self.error(
                ErrorKind::Unavailable,
                format!("InfluxDB sent malformed JSON: {e}"),
            )
        })?;
        self.check(&answer)?;
        Ok(answer)
    }

    /// Writes `lines` (line protocol, nanosecond timestamps) into the database.
    ///
    /// # Errors
    /// When InfluxDB cannot be reached or refuses the points.
    pub async fn write(&self, lines: Bytes) -> Result<()> {
        let uri = format!(
            "{}/write?db={}&precision=ns",
            self.base,
            encode(&self.database)
        );
        self.call(http::Method::POST, uri, lines).await.map(drop)
    }

    async fn call(
        &self,
        method: http::Method,
        uri: String,
        body: Bytes,
    ) -> Result<hyper::body::Incoming> {
        let mut request = http::Request::builder().method(method).uri(uri);
        if let Some(value) = &self.authorization {
            request = request.header(http::header::AUTHORIZATION, value.clone());
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| self.error(ErrorKind::Internal, format!("a bad request: {e}")))?;
        let response = tokio::time::timeout(ANSWER_TIMEOUT, self.http.request(request))
            .await
            .map_err(|_| {
                self.error(
                    ErrorKind::Unavailable,
                    format!(
                        "InfluxDB at {} did not answer within {ANSWER_TIMEOUT:?}",
                        self.base
                    ),
                )
            })?
            .map_err(|e| {
                let mut cause: &dyn std::error::Error = &e;
                while let Some(inner) = cause.source() {
                    cause = inner;
                }
                self.error(
                    ErrorKind::Unavailable,
                    format!("cannot connect to InfluxDB at {}: {cause}", self.base),
                )
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response.into_body());
        }
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let text = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
        let kind = match status.as_u16() {
            401 | 403 => ErrorKind::Unauthenticated,
            400 => ErrorKind::InvalidArgument,
            404 => ErrorKind::NotFound,
            _ => ErrorKind::Unavailable,
        };
        Err(self.error(kind, format!("InfluxDB answered {status}: {text}")))
    }

    /// Runs `query` and returns its whole answer (for small answers: metadata).
    ///
    /// # Errors
    /// When InfluxDB cannot be reached, refuses, or reports an error.
    pub async fn query(&self, query: &str) -> Result<Value> {
        let body = self.send(query, None).await?;
        self.answer(body).await
    }

    /// Fails when an answer (or chunk) reports an error.
    pub(crate) fn check(&self, answer: &Value) -> Result<()> {
        if let Some(error) = answer.get("error").and_then(Value::as_str) {
            return Err(self.error(ErrorKind::Unavailable, format!("InfluxDB: {error}")));
        }
        for result in answer
            .get("results")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(error) = result.get("error").and_then(Value::as_str) {
                return Err(self.error(ErrorKind::InvalidArgument, format!("InfluxQL: {error}")));
            }
        }
        Ok(())
    }

    /// Runs `query` with a chunked answer and streams its chunks (one JSON object each) as
    /// they arrive; a large answer is never held whole.
    ///
    /// # Errors
    /// When InfluxDB cannot be reached or refuses the query (errors inside chunks come in the
    /// stream).
    pub async fn query_chunks(
        &self,
        query: &str,
        chunk: usize,
    ) -> Result<BoxStream<'static, Result<Value>>> {
        let body = self.send(query, Some(chunk)).await?;
        Ok(Box::pin(Chunks {
            client: self.clone(),
            body,
            buffer: BytesMut::new(),
            done: false,
        }))
    }
}

/// The JSON objects of a chunked answer, one per line.
struct Chunks {
    client: InfluxClient,
    body: hyper::body::Incoming,
    buffer: BytesMut,
    done: bool,
}

impl Chunks {
    /// The next complete line in the buffer, parsed.
    fn next_line(&mut self, at_end: bool) -> Option<Result<Value>> {
        loop {
            let end = match self.buffer.iter().position(|b| *b == b'\n') {
                Some(end) => end,
                None if at_end && !self.buffer.is_empty() => self.buffer.len(),
                None => return None,
            };
            let line = self.buffer.split_to(end);
            if self.buffer.has_remaining() {
                self.buffer.advance(1);
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let parsed = serde_json::from_slice::<Value>(&line)
                .map_err(|e| {
                    self.client.error(
                        ErrorKind::Unavailable,
                        format!("InfluxDB sent malformed JSON: {e}"),
                    )
                })
                .and_then(|value| self.client.check(&value).map(|()| value));
            return Some(parsed);
        }
    }
}

impl Stream for Chunks {
    type Item = Result<Value>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        loop {
            let done = self.done;
            if let Some(line) = self.next_line(done) {
                return Poll::Ready(Some(line));
            }
            if done {
                return Poll::Ready(None);
            }
            let this = &mut *self;
            match std::pin::Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => this.done = true,
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    this.buffer.clear();
                    return Poll::Ready(Some(Err(this.client.error(
                        ErrorKind::Unavailable,
                        format!("the answer of InfluxDB broke off: {e}"),
                    ))));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        this.buffer.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}
