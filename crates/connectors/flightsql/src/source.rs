//! [`FlightSqlSource`]: discovery and statements over a Flight SQL client.

use crate::dialect::FlightSqlDialect;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{CommandGetDbSchemas, CommandGetTables, SqlInfo};
use arrow_flight::{FlightEndpoint, FlightInfo, IpcMessage};
use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, AsArray, BinaryArray, RecordBatch, RecordBatchOptions, StringArray, UnionArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{Schema, SchemaRef, UInt32Type};
use datafusion::common::Result as DfResult;
use datafusion::datasource::TableType;
use datafusion::execution::SendableRecordBatchStream;
use flotilla_common::grpc::MAX_MESSAGE_BYTES;
use flotilla_common::{Error, ErrorKind, Result};
use flotilla_federation::stream::{BatchSender, RemoteStream};
use flotilla_federation::{Dialect, RemoteTable, Source, SourceIdentity, TableName};
use futures::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::sync::Arc;
use tonic::transport::Channel;

/// The session catalog every Flotilla node lists; it holds a session's own tables, never
/// anything another node should federate.
const SESSION_CATALOG: &str = "datafusion";

/// How to reach and read an endpoint.
#[derive(Debug, Clone, Default)]
pub struct FlightSqlOptions {
    /// The remote catalog this source exposes. Default: the endpoint's only catalog (a
    /// Flotilla node's session catalog, `datafusion`, does not count).
    pub catalog: Option<String>,
    /// Basic credentials for the handshake; the bearer token returned is used on every call.
    pub user: Option<String>,
    pub password: Option<String>,
    /// For `grpc+tls://` URLs: the CA certificate (PEM) to trust instead of the system's.
    pub tls_root_cert: Option<Vec<u8>>,
}

/// A remote Flight SQL endpoint as a source. Its schemas are the schemas of one remote
/// catalog.
pub struct FlightSqlSource {
    name: String,
    identity: SourceIdentity,
    dialect: FlightSqlDialect,
    client: FlightSqlServiceClient<Channel>,
    catalog: String,
    locations: Locations,
}

/// Clients for the other locations a result's endpoints name (say, the nodes of a Flotilla
/// cluster serving their part of it), made on first use with the source's TLS root and
/// presenting the source's token, as Flight SQL clients do.
#[derive(Clone, Default)]
struct Locations {
    tls_root_cert: Option<Arc<Vec<u8>>>,
    clients: Arc<std::sync::Mutex<HashMap<String, FlightSqlServiceClient<Channel>>>>,
}

impl Locations {
    /// The client to redeem `endpoint`'s ticket with: `home` unless the endpoint names
    /// another location (the first one listed is used).
    fn client_for(
        &self,
        home: &FlightSqlServiceClient<Channel>,
        endpoint: &FlightEndpoint,
    ) -> Result<FlightSqlServiceClient<Channel>> {
        let Some(location) = endpoint
            .location
            .first()
            .map(|location| location.uri.as_str())
            .filter(|uri| !uri.is_empty() && !uri.starts_with("arrow-flight-reuse-connection:"))
        else {
            return Ok(home.clone());
        };
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(client) = clients.get(location) {
            return Ok(client.clone());
        }
        let channel = flotilla_common::grpc::endpoint(
            location,
            self.tls_root_cert.as_deref().map(Vec::as_slice),
        )
        .map_err(|e| Error::invalid(format!("an endpoint's location: {e}")))?
        .connect_lazy();
        let mut client = FlightSqlServiceClient::new_from_inner(
            FlightServiceClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        );
        if let Some(token) = home.token() {
            client.set_token(token.clone());
        }
        clients.insert(location.to_string(), client.clone());
        Ok(client)
    }
}

impl std::fmt::Debug for FlightSqlSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlightSqlSource")
            .field("name", &self.name)
            .field("identity", &self.identity)
            .field("catalog", &self.catalog)
            .finish()
    }
}

/// A client error as a Flotilla error of the right kind, naming the source.
fn error(source: &str, what: &str, e: FlightError) -> Error {
    let (kind, message) = match e {
        FlightError::Tonic(status) => (
            ErrorKind::from_grpc_code(status.code()),
            status.message().to_string(),
        ),
        other => (ErrorKind::Internal, other.to_string()),
    };
    Error::new(kind, format!("{what}: {message}")).with_source(source)
}

/// Checks a URL without connecting.
///
/// # Errors
/// When it is not a `grpc://host:port` URL.
pub fn check_url(url: &str) -> Result<()> {
    flotilla_common::grpc::parse_url(url).map(|_| ())
}

impl FlightSqlSource {
    /// Connects to the endpoint at `url`, signs in when a user is given, reads its
    /// capabilities (GetSqlInfo) and picks the catalog.
    ///
    /// # Errors
    /// When the endpoint cannot be reached, refuses the credentials, or the catalog is
    /// ambiguous or unknown; the error names the source.
    pub async fn connect(name: &str, url: &str, options: FlightSqlOptions) -> Result<Self> {
        let (_, authority, _) =
            flotilla_common::grpc::parse_url(url).map_err(|e| e.with_source(name))?;
        let channel = flotilla_common::grpc::endpoint(url, options.tls_root_cert.as_deref())
            .map_err(|e| e.with_source(name))?
            .connect()
            .await
            .map_err(|e| {
                Error::unavailable(format!("cannot connect to {url}: {e}")).with_source(name)
            })?;
        let mut client = FlightSqlServiceClient::new_from_inner(
            FlightServiceClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        );
        if let Some(user) = &options.user {
            let token = handshake(&mut client, user, options.password.as_deref())
                .await
                .map_err(|status| {
                    error(name, "signing in", FlightError::Tonic(Box::new(status)))
                })?;
            client.set_token(token);
        }
        let mut source = Self {
            name: name.to_string(),
            identity: SourceIdentity {
                backend: "flightsql".into(),
                endpoint: authority,
                database: String::new(),
                principal: options.user.clone().unwrap_or_default(),
            },
            dialect: FlightSqlDialect::default(),
            client,
            catalog: String::new(),
            locations: Locations {
                tls_root_cert: options.tls_root_cert.clone().map(Arc::new),
                clients: Arc::default(),
            },
        };
        source.dialect = source.read_capabilities().await?;
        source.catalog = source.pick_catalog(options.catalog).await?;
        source.identity.database = source.catalog.clone();
        Ok(source)
    }

    /// Every batch of every endpoint of a metadata answer.
    async fn fetch(&self, info: FlightInfo, what: &str) -> Result<Vec<RecordBatch>> {
        let mut batches = Vec::new();
        for endpoint in info.endpoint {
            let Some(ticket) = endpoint.ticket else {
                continue;
            };
            let stream = self
                .client
                .clone()
                .do_get(ticket)
                .await
                .map_err(|e| error(&self.name, what, e))?;
            let mut part: Vec<RecordBatch> = stream
                .try_collect()
                .await
                .map_err(|e| error(&self.name, what, e))?;
            batches.append(&mut part);
        }
        Ok(batches)
    }

    /// The dialect the endpoint's GetSqlInfo describes.
    async fn read_capabilities(&self) -> Result<FlightSqlDialect> {
        let what = "reading the server's capabilities (GetSqlInfo)";
        let wanted = vec![
            SqlInfo::FlightSqlServerName,
            SqlInfo::SqlNumericFunctions,
            SqlInfo::SqlStringFunctions,
            SqlInfo::SqlDatetimeFunctions,
            SqlInfo::SqlOuterJoinsSupportLevel,
        ];
        let info = self
            .client
            .clone()
            .get_sql_info(wanted)
            .await
            .map_err(|e| error(&self.name, what, e))?;
        let mut dialect = FlightSqlDialect::default();
        for batch in self.fetch(info, what).await? {
            let (Some(names), Some(values)) = (
                batch.column(0).as_primitive_opt::<UInt32Type>(),
                batch.column(1).as_any().downcast_ref::<UnionArray>(),
            ) else {
                continue;
            };
            for row in 0..batch.num_rows() {
                let value = values.value(row);
                let code = names.value(row);
                if code == SqlInfo::FlightSqlServerName as u32 {
                    if let Some(text) = value.as_string_opt::<i32>() {
                        dialect.same_engine = text.value(0) == "Flotilla";
                    }
                } else if code == SqlInfo::SqlOuterJoinsSupportLevel as u32 {
                    if let Some(level) =
                        value.as_primitive_opt::<datafusion::arrow::datatypes::Int32Type>()
                    {
                        // SqlOuterJoinsSupportLevel::SqlFullOuterJoins
                        dialect.full_outer_joins = level.value(0) == 2;
                    }
                } else if let Some(list) = value.as_list_opt::<i32>() {
                    let names = list.value(0);
                    if let Some(names) = names.as_any().downcast_ref::<StringArray>() {
                        dialect
                            .functions
                            .extend(names.iter().flatten().map(str::to_ascii_lowercase));
                    }
                }
            }
        }
        Ok(dialect)
    }

    /// The remote catalog to expose: the configured one (which must exist), else the only one.
    async fn pick_catalog(&self, wanted: Option<String>) -> Result<String> {
        let what = "listing catalogs";
        let info = self
            .client
            .clone()
            .get_catalogs()
            .await
            .map_err(|e| error(&self.name, what, e))?;
        let mut catalogs = Vec::new();
        for batch in self.fetch(info, what).await? {
            if let Some(names) = batch.column(0).as_string_opt::<i32>() {
                catalogs.extend(names.iter().flatten().map(str::to_string));
            }
        }
        if let Some(wanted) = wanted {
            if catalogs.is_empty() || catalogs.contains(&wanted) {
                return Ok(wanted);
            }
            return Err(Error::not_found(format!(
                "the endpoint has no catalog '{wanted}' (it has: {})",
                catalogs.join(", ")
            ))
            .with_source(&self.name));
        }
        let candidates: Vec<&String> = catalogs.iter().filter(|c| *c != SESSION_CATALOG).collect();
        match candidates.as_slice() {
            [] => Ok(String::new()),
            [only] => Ok((*only).clone()),
            many => Err(Error::invalid(format!(
                "the endpoint has several catalogs ({}): name one with catalog = \"…\"",
                many.iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .with_source(&self.name)),
        }
    }

    fn catalog_filter(&self) -> Option<String> {
        (!self.catalog.is_empty()).then(|| self.catalog.clone())
    }

    async fn get_tables(&self, command: CommandGetTables) -> Result<Vec<RecordBatch>> {
        let what = "listing tables";
        let info = self
            .client
            .clone()
            .get_tables(command)
            .await
            .map_err(|e| error(&self.name, what, e))?;
        self.fetch(info, what).await
    }
}

/// Basic credentials in a Handshake; the bearer token the server returns.
async fn handshake(
    client: &mut FlightSqlServiceClient<Channel>,
    user: &str,
    password: Option<&str>,
) -> Result<String, tonic::Status> {
    use base64::Engine;
    let credentials = base64::engine::general_purpose::STANDARD
        .encode(format!("{user}:{}", password.unwrap_or_default()));
    let hello = arrow_flight::HandshakeRequest {
        protocol_version: 0,
        payload: Default::default(),
    };
    let mut request = tonic::Request::new(futures::stream::iter([hello]));
    let value = format!("Basic {credentials}")
        .parse()
        .map_err(|_| tonic::Status::invalid_argument("the user name cannot be sent in a header"))?;
    request.metadata_mut().insert("authorization", value);
    let response = client.inner_mut().handshake(request).await?;
    let token = response
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    token.ok_or_else(|| {
        tonic::Status::unauthenticated("the server accepted the handshake but returned no token")
    })
}

/// `text` as a LIKE pattern that matches only itself.
fn exact_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern
}

fn table_type(name: &str) -> TableType {
    match name {
        "VIEW" => TableType::View,
        "LOCAL TEMPORARY" => TableType::Temporary,
        _ => TableType::Base,
    }
}

#[async_trait]
impl Source for FlightSqlSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn identity(&self) -> &SourceIdentity {
        &self.identity
    }

    fn dialect(&self) -> &dyn Dialect {
        &self.dialect
    }

    async fn schemas(&self) -> Result<Vec<String>> {
        let what = "listing schemas";
        let command = CommandGetDbSchemas {
            catalog: self.catalog_filter(),
            db_schema_filter_pattern: None,
        };
        let info = self
            .client
            .clone()
            .get_db_schemas(command)
            .await
            .map_err(|e| error(&self.name, what, e))?;
        let mut schemas = Vec::new();
        for batch in self.fetch(info, what).await? {
            if let Some(names) = batch.column(1).as_string_opt::<i32>() {
                schemas.extend(names.iter().flatten().map(str::to_string));
            }
        }
        Ok(schemas)
    }

    async fn tables(&self) -> Result<Vec<TableName>> {
        let batches = self
            .get_tables(CommandGetTables {
                catalog: self.catalog_filter(),
                db_schema_filter_pattern: None,
                table_name_filter_pattern: None,
                table_types: vec![],
                include_schema: false,
            })
            .await?;
        let mut tables = Vec::new();
        for batch in batches {
            let (Some(schemas), Some(names), Some(types)) = (
                batch.column(1).as_string_opt::<i32>(),
                batch.column(2).as_string_opt::<i32>(),
                batch.column(3).as_string_opt::<i32>(),
            ) else {
                continue;
            };
            for row in 0..batch.num_rows() {
                tables.push(TableName {
                    schema: schemas.value(row).to_string(),
                    name: names.value(row).to_string(),
                    table_type: table_type(types.value(row)),
                });
            }
        }
        Ok(tables)
    }

    async fn describe(&self, schema: &str, table: &str) -> Result<Option<RemoteTable>> {
        let batches = self
            .get_tables(CommandGetTables {
                catalog: self.catalog_filter(),
                db_schema_filter_pattern: Some(exact_pattern(schema)),
                table_name_filter_pattern: Some(exact_pattern(table)),
                table_types: vec![],
                include_schema: true,
            })
            .await?;
        for batch in batches {
            let (Some(schemas), Some(names), Some(types), Some(encoded)) = (
                batch.column(1).as_string_opt::<i32>(),
                batch.column(2).as_string_opt::<i32>(),
                batch.column(3).as_string_opt::<i32>(),
                batch.column(4).as_any().downcast_ref::<BinaryArray>(),
            ) else {
                continue;
            };
            for row in 0..batch.num_rows() {
                if schemas.value(row) != schema || names.value(row) != table {
                    continue;
                }
                let arrow_schema = Schema::try_from(IpcMessage(encoded.value(row).to_vec().into()))
                    .map_err(|e| {
                        Error::internal(format!(
                            "the schema of {schema}.{table} is unreadable: {e}"
                        ))
                        .with_source(&self.name)
                    })?;
                let columns = arrow_schema.fields().len();
                return Ok(Some(RemoteTable {
                    schema: schema.to_string(),
                    name: table.to_string(),
                    arrow_schema: Arc::new(arrow_schema),
                    opaque: vec![false; columns],
                    indexed: None,
                    table_type: table_type(types.value(row)),
                    row_estimate: None,
                    bytes: None,
                    split_key: None,
                    column_estimates: Vec::new(),
                }));
            }
        }
        Ok(None)
    }

    fn execute(
        &self,
        sql: &str,
        schema: SchemaRef,
        _batch_size: usize,
    ) -> DfResult<SendableRecordBatchStream> {
        let client = self.client.clone();
        let locations = self.locations.clone();
        let name = self.name.clone();
        let sql = sql.to_string();
        let expected = Arc::clone(&schema);
        // Dropping the stream aborts the task, which resets the DoGet streams: the remote
        // node drops the query.
        Ok(Box::pin(RemoteStream::spawn(
            schema,
            |sender| async move {
                run(client, &locations, &name, &sql, &expected, &sender)
                    .await
                    .map_err(Error::into_datafusion)
            },
            || {},
        )))
    }
}

/// Runs `sql` on the endpoint and sends its batches, conformed to `schema`. The endpoints of
/// an unordered result are read concurrently, each where it says.
async fn run(
    client: FlightSqlServiceClient<Channel>,
    locations: &Locations,
    name: &str,
    sql: &str,
    schema: &SchemaRef,
    sender: &BatchSender,
) -> Result<()> {
    let info = client
        .clone()
        .execute(sql.to_string(), None)
        .await
        .map_err(|e| error(name, "planning the query", e))?;
    let mut streams = Vec::new();
    for endpoint in &info.endpoint {
        let Some(ticket) = endpoint.ticket.clone() else {
            continue;
        };
        let stream = locations
            .client_for(&client, endpoint)
            .map_err(|e| e.with_source(name))?
            .do_get(ticket)
            .await
            .map_err(|e| error(name, "fetching results", e))?;
        streams.push(stream);
    }
    let mut batches = if info.ordered {
        futures::stream::iter(streams).flatten().boxed()
    } else {
        futures::stream::select_all(streams).boxed()
    };
    while let Some(batch) = batches.next().await {
        let batch = batch.map_err(|e| error(name, "fetching results", e))?;
        let batch = conform(batch, schema).map_err(|e| e.with_source(name))?;
        if sender.send(Ok(batch)).await.is_err() {
            // The consumer is gone.
            return Ok(());
        }
    }
    Ok(())
}

/// `batch` with `schema`'s names and types (the remote may name columns differently and, for
/// the same values, choose another Arrow type, e.g. `Utf8` for `Utf8View`).
fn conform(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if batch.num_columns() != schema.fields().len() {
        return Err(Error::internal(format!(
            "the endpoint returned {} columns, {} were expected",
            batch.num_columns(),
            schema.fields().len()
        )));
    }
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (column, field) in batch.columns().iter().zip(schema.fields()) {
        if column.data_type() == field.data_type() {
            columns.push(Arc::clone(column));
        } else {
            columns.push(cast(column, field.data_type()).map_err(|e| {
                Error::internal(format!(
                    "column {}: the endpoint sent {}, {} was expected: {e}",
                    field.name(),
                    column.data_type(),
                    field.data_type()
                ))
            })?);
        }
    }
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(Arc::clone(schema), columns, &options)
        .map_err(|e| Error::internal(format!("the endpoint's rows do not fit the plan: {e}")))
}
