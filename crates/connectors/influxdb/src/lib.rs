//! InfluxDB source for Flotilla: the measurements of one database as tables of a catalog,
//! read over the v1 HTTP API (`/query`, InfluxQL) that InfluxDB 1.x serves and 2.x and 3 keep.
//!
//! - A source is one database: catalog `<source>`, schema `<database>`, a table per
//!   measurement with `time` (UTC nanoseconds), its tags (text) and its fields (float,
//!   integer, unsigned, string, boolean), found with `SHOW MEASUREMENTS`, `SHOW TAG KEYS` and
//!   `SHOW FIELD KEYS` ([`discovery`], into a [`schema::MeasurementSchema`]).
//! - A scan is one InfluxQL `SELECT` ([`table`]): time ranges, tag equality, tag lists and
//!   regexes, field comparisons and `AND`/`OR` of them are sent in its `WHERE`
//!   ([`influxql`]); so is `LIMIT` when every condition went. The answer is read in chunks and
//!   streamed as Arrow batches. `EXPLAIN` shows the InfluxQL sent.
//! - An aggregate right over such a scan — `count`/`sum`/`avg`/`min`/`max` of fields by tags
//!   and one fixed-width time bucket — becomes InfluxQL `GROUP BY time(…), tags fill(none)`
//!   ([`aggregate::InfluxAggregatePushdown`], a logical optimizer rule the session must add).
//! - `INSERT INTO` a measurement writes line protocol (tags and fields by the table's columns)
//!   in batches as rows stream in ([`write`]); not atomic — InfluxDB has no transactions.
//! - `config`: [`InfluxConfig`], the keys of a `kind = "influxdb"` table in flotilla.toml.
//! - Everything else — joins, other functions — runs in DataFusion.
//! - Scans travel in distributed plans ([`codec::InfluxCodec`]: source name, InfluxQL, schema
//!   and where each column comes from), so a worker of a cluster runs them.

pub mod aggregate;
pub mod client;
pub mod codec;
mod config;
pub mod discovery;
pub mod influxql;
pub mod schema;
pub mod table;
pub mod write;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::common::{DataFusionError, Result as DfResult};
use flotilla_common::Result;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use aggregate::InfluxAggregatePushdown;
pub use client::{Credentials, InfluxClient};
pub use codec::InfluxCodec;
pub use config::InfluxConfig;
pub use table::{InfluxScanExec, InfluxTable};

/// The catalog of one InfluxDB source: one schema, named after the database.
#[derive(Debug)]
pub struct InfluxCatalog {
    schema: Arc<InfluxSchema>,
}

impl InfluxCatalog {
    /// Connects to `client`'s database and lists its measurements.
    ///
    /// # Errors
    /// When InfluxDB cannot be reached, refuses the credentials, or has no such database.
    pub async fn connect(client: InfluxClient) -> Result<Self> {
        let databases = client.query("SHOW DATABASES").await?;
        let known = databases["results"][0]["series"][0]["values"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|row| row[0].as_str() == Some(client.database()));
        if !known {
            return Err(flotilla_common::Error::not_found(format!(
                "InfluxDB has no database '{}'",
                client.database()
            ))
            .with_source(client.source()));
        }
        let measurements = discovery::measurements(&client).await?;
        Ok(Self {
            schema: Arc::new(InfluxSchema {
                client,
                measurements,
                tables: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The client of the source's database.
    pub fn client(&self) -> &InfluxClient {
        &self.schema.client
    }
}

impl CatalogProvider for InfluxCatalog {
    fn schema_names(&self) -> Vec<String> {
        vec![self.schema.client.database().to_string()]
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        (name == self.schema.client.database())
            .then(|| Arc::clone(&self.schema) as Arc<dyn SchemaProvider>)
    }
}

/// The measurements of the database; each described on first use.
#[derive(Debug)]
pub struct InfluxSchema {
    client: InfluxClient,
    measurements: Vec<String>,
    tables: Mutex<HashMap<String, Arc<InfluxTable>>>,
}

#[async_trait]
impl SchemaProvider for InfluxSchema {
    fn table_names(&self) -> Vec<String> {
        self.measurements.clone()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if let Some(table) = self
            .tables
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Ok(Some(Arc::clone(table) as Arc<dyn TableProvider>));
        }
        let Some(measurement) = discovery::describe(&self.client, name)
            .await
            .map_err(flotilla_common::Error::into_datafusion)?
        else {
            return Ok(None);
        };
        let table = Arc::new(InfluxTable::new(self.client.clone(), measurement));
        self.tables
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), Arc::clone(&table));
        Ok(Some(table))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.measurements.iter().any(|m| m == name)
    }

    fn register_table(
        &self,
        name: String,
        _: Arc<dyn TableProvider>,
    ) -> DfResult<Option<Arc<dyn TableProvider>>> {
        Err(DataFusionError::Plan(format!(
            "cannot create table '{name}' in InfluxDB source '{}': measurements appear when \
             points are written",
            self.client.source()
        )))
    }
}
