//! `[sources.<name>]`: the kinds of source this node knows, each read by the options type its
//! connector crate owns (see [`flotilla_common::source_kind`]).
//!
//! A table is read in three steps: its `kind` picks the type; serde reads the other keys into
//! it (an unknown key or a value of the wrong type is an error at its line); the type's
//! `check` looks at what types cannot say (a file exists, a URL parses), and its error is
//! placed at the key it names.

use super::ConfigError;
use super::located::{Located, explain, key_path};
use datafusion::catalog::{CatalogProvider, Session};
use flotilla_common::Result;
use flotilla_common::source_kind::SourceKind;
use std::path::Path;
use std::sync::Arc;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

/// Declares [`SourceConfig`] with one variant per kind of source: adding a kind is one line.
macro_rules! kinds {
    ($($variant:ident($options:ty),)*) => {
        /// One configured source: the options of its kind.
        #[derive(Debug, Clone, PartialEq)]
        pub enum SourceConfig {
            $($variant($options),)*
        }

        impl SourceConfig {
            /// Every `kind = "…"` value, in the order they are declared.
            pub const KINDS: &[&str] = &[$(<$options as SourceKind>::KIND,)*];

            /// The `kind` value of this source.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => <$options as SourceKind>::KIND,)*
                }
            }

            /// Opens the source, whose catalog is named `name`, in the runtime of `session`.
            ///
            /// # Errors
            /// When the source cannot be reached or its tables cannot be listed.
            pub async fn open(
                &self,
                name: &str,
                session: &dyn Session,
            ) -> Result<Arc<dyn CatalogProvider>> {
                match self {
                    $(Self::$variant(options) => options.open(name, session).await,)*
                }
            }

            /// Reads a table of kind `kind` (None: no kind has that name).
            fn read(
                kind: &str,
                table: &Table<'_, '_>,
            ) -> Option<std::result::Result<Self, ConfigError>> {
                $(
                    if kind == <$options as SourceKind>::KIND {
                        return Some(table.read::<$options>().map(Self::$variant));
                    }
                )*
                None
            }
        }
    };
}

kinds! {
    Sqlite(flotilla_connectors_sqlite::SqliteConfig),
    Parquet(crate::files::ParquetConfig),
    Csv(crate::files::CsvConfig),
    Postgres(flotilla_connectors_postgres::PostgresConfig),
    Mysql(flotilla_connectors_mysql::MysqlConfig),
    FlightSql(flotilla_connectors_flightsql::FlightSqlConfig),
    Influxdb(flotilla_connectors_influxdb::InfluxConfig),
}

/// The source `name`, from its table in the file.
pub(super) fn source(
    name: &str,
    value: Spanned<DeValue<'_>>,
    at: &Located<'_>,
    base: &Path,
) -> std::result::Result<SourceConfig, ConfigError> {
    let key = format!("sources.{name}");
    let span = value.span();
    let DeValue::Table(mut table) = value.into_inner() else {
        return Err(at.error(Some(span), key, "expected a table of keys".into()));
    };
    let Some(kind) = table.remove("kind") else {
        return Err(at.error(
            Some(span),
            key,
            format!(
                "missing key 'kind' (one of: {})",
                SourceConfig::KINDS.join(", ")
            ),
        ));
    };
    let kind_span = kind.span();
    let Some(kind) = kind.get_ref().as_str().map(str::to_string) else {
        return Err(at.error(
            Some(kind_span),
            format!("{key}.kind"),
            "expected a string".into(),
        ));
    };
    let table = Table {
        key,
        value: Spanned::new(span, table),
        at,
        base,
    };
    SourceConfig::read(&kind, &table).unwrap_or_else(|| {
        Err(at.error(
            Some(kind_span),
            format!("{}.kind", table.key),
            format!(
                "unknown source kind '{kind}' (expected one of: {})",
                SourceConfig::KINDS.join(", ")
            ),
        ))
    })
}

/// A source's table without its `kind`, where it is, and the directory paths are relative to.
struct Table<'a, 'i> {
    /// `sources.<name>`.
    key: String,
    value: Spanned<DeTable<'i>>,
    at: &'a Located<'a>,
    base: &'a Path,
}

impl Table<'_, '_> {
    /// The table read into `T` and checked.
    fn read<T: SourceKind>(&self) -> std::result::Result<T, ConfigError> {
        let span = self.value.span();
        let value = Spanned::new(span.clone(), DeValue::Table(self.value.get_ref().clone()));
        let mut options: T = serde_path_to_error::deserialize(ValueDeserializer::from(value))
            .map_err(|e| {
                let path = key_path(&e.path().to_string());
                let inner = e.into_inner();
                self.at.error(
                    inner.span().or(Some(span.clone())),
                    self.key_of(&path),
                    explain(inner.message()),
                )
            })?;
        options.check(self.base).map_err(|e| {
            self.at
                .error(Some(self.span_of(&e.key)), self.key_of(&e.key), e.message)
        })?;
        Ok(options)
    }

    /// The full path of `key` (relative to the table; empty: the table).
    fn key_of(&self, key: &str) -> String {
        match key {
            "" => self.key.clone(),
            key => format!("{}.{key}", self.key),
        }
    }

    /// Where the value of the dotted `key` is written (the table's span if it is not).
    fn span_of(&self, key: &str) -> std::ops::Range<usize> {
        let mut span = self.value.span();
        let mut table = Some(self.value.get_ref());
        for part in key.split('.').filter(|part| !part.is_empty()) {
            let Some(value) = table.and_then(|t| t.get(part)) else {
                break;
            };
            span = value.span();
            table = value.get_ref().as_table();
        }
        span
    }
}
