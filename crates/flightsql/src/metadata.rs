//! Catalog metadata for Flight SQL clients: catalogs, schemas, tables (with their Arrow schemas),
//! table types, SqlInfo, XDBC type info and (empty) key listings.
//!
//! Filters follow the Flight SQL rules that ADBC and JDBC rely on: a missing catalog filter
//! means every catalog (never none), an empty one means "tables without a catalog" (there are
//! none here), and schema and table filters are `LIKE` patterns with `%`, `_` and `\` as escape.
//! Filters are applied before a table is described, so listing one table of a big database does
//! not describe the others.

use arrow_flight::sql::metadata::{
    GetCatalogsBuilder, GetDbSchemasBuilder, GetTablesBuilder, SqlInfoData, SqlInfoDataBuilder,
    XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder,
};
use arrow_flight::sql::{
    CommandGetDbSchemas, CommandGetTables, Nullable, Searchable, SqlInfo, SqlNullOrdering,
    SqlSupportedCaseSensitivity, XdbcDataType,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::TableType;
use datafusion::execution::context::SessionContext;
use flotilla_common::{Error, Result};
use std::sync::{Arc, LazyLock};

/// A metadata builder's result; its errors are bugs (it encodes what we gave it).
fn built<T>(result: std::result::Result<T, arrow_flight::error::FlightError>) -> Result<T> {
    result.map_err(|e| Error::internal(format!("building a metadata result: {e}")))
}

/// Catalog names, sorted.
pub(crate) fn catalogs(ctx: &SessionContext) -> Result<RecordBatch> {
    let mut names = ctx.catalog_names();
    names.sort();
    let mut builder = GetCatalogsBuilder::new();
    for name in names {
        builder.append(name);
    }
    built(builder.build())
}

/// `(catalog, schema)` pairs that pass a GetDbSchemas filter, sorted.
fn schemas_matching(
    ctx: &SessionContext,
    catalog: Option<&str>,
    schema_pattern: Option<&str>,
) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for catalog_name in ctx.catalog_names() {
        if catalog.is_some_and(|c| c != catalog_name) {
            continue;
        }
        let Some(provider) = ctx.catalog(&catalog_name) else {
            continue;
        };
        for schema_name in provider.schema_names() {
            if schema_pattern.is_none_or(|p| like(p, &schema_name)) {
                pairs.push((catalog_name.clone(), schema_name));
            }
        }
    }
    pairs.sort();
    pairs
}

pub(crate) fn db_schemas(ctx: &SessionContext, query: &CommandGetDbSchemas) -> Result<RecordBatch> {
    let mut builder = GetDbSchemasBuilder::new(None::<String>, None::<String>);
    let pairs = schemas_matching(
        ctx,
        query.catalog.as_deref(),
        query.db_schema_filter_pattern.as_deref(),
    );
    for (catalog, schema) in pairs {
        builder.append(catalog, schema);
    }
    built(builder.build())
}

/// The schema of a GetTables result.
pub(crate) fn tables_schema(query: &CommandGetTables) -> SchemaRef {
    GetTablesBuilder::new(
        None::<String>,
        None::<String>,
        None::<String>,
        Vec::<String>::new(),
        query.include_schema,
    )
    .schema()
}

pub(crate) async fn tables(ctx: &SessionContext, query: &CommandGetTables) -> Result<RecordBatch> {
    let mut builder = GetTablesBuilder::new(
        None::<String>,
        None::<String>,
        None::<String>,
        Vec::<String>::new(),
        query.include_schema,
    );
    let pairs = schemas_matching(
        ctx,
        query.catalog.as_deref(),
        query.db_schema_filter_pattern.as_deref(),
    );
    let empty = Schema::empty();
    for (catalog, schema_name) in pairs {
        let Some(schema) = ctx.catalog(&catalog).and_then(|c| c.schema(&schema_name)) else {
            continue;
        };
        let mut names = schema.table_names();
        names.sort();
        for name in names {
            if query
                .table_name_filter_pattern
                .as_deref()
                .is_some_and(|p| !like(p, &name))
            {
                continue;
            }
            let Some(table_type) = schema.table_type(&name).await? else {
                continue;
            };
            let table_type = table_type_name(table_type);
            if !query.table_types.is_empty() && !query.table_types.iter().any(|t| t == table_type) {
                continue;
            }
            if query.include_schema {
                let table = schema.table(&name).await?.ok_or_else(|| {
                    Error::not_found(format!("{catalog}.{schema_name}.{name} disappeared"))
                })?;
                built(builder.append(&catalog, &schema_name, &name, table_type, &table.schema()))?;
            } else {
                built(builder.append(&catalog, &schema_name, &name, table_type, &empty))?;
            }
        }
    }
    built(builder.build())
}

/// The Flight SQL name of a table type.
fn table_type_name(table_type: TableType) -> &'static str {
    match table_type {
        TableType::Base => "TABLE",
        TableType::View => "VIEW",
        TableType::Temporary => "LOCAL TEMPORARY",
    }
}

/// Every table type [`tables`] reports.
pub(crate) const TABLE_TYPES: [&str; 3] = ["LOCAL TEMPORARY", "TABLE", "VIEW"];

/// Whether `text` matches the SQL `LIKE` pattern (`%` any run, `_` one character, `\` escapes).
///
/// Runs in time proportional to pattern length × text length whatever the pattern (a client
/// controls it).
pub(crate) fn like(pattern: &str, text: &str) -> bool {
    enum Token {
        Any,
        One,
        Char(char),
    }
    let mut tokens = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '%' => Token::Any,
            '_' => Token::One,
            '\\' => Token::Char(chars.next().unwrap_or('\\')),
            c => Token::Char(c),
        });
    }
    let text: Vec<char> = text.chars().collect();
    // matched[i]: the tokens so far match text[..i].
    let mut matched = vec![false; text.len() + 1];
    matched[0] = true;
    for token in &tokens {
        let mut next = vec![false; text.len() + 1];
        match token {
            Token::Any => {
                let mut reachable = false;
                for i in 0..=text.len() {
                    reachable |= matched[i];
                    next[i] = reachable;
                }
            }
            Token::One => {
                next[1..].copy_from_slice(&matched[..text.len()]);
            }
            Token::Char(c) => {
                for i in 0..text.len() {
                    next[i + 1] = matched[i] && text[i] == *c;
                }
            }
        }
        matched = next;
    }
    matched[text.len()]
}

/// The schema of GetPrimaryKeys results.
pub(crate) static PRIMARY_KEYS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ]))
});

/// The schema of GetExportedKeys, GetImportedKeys and GetCrossReference results.
pub(crate) static FOREIGN_KEYS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("pk_catalog_name", DataType::Utf8, true),
        Field::new("pk_db_schema_name", DataType::Utf8, true),
        Field::new("pk_table_name", DataType::Utf8, false),
        Field::new("pk_column_name", DataType::Utf8, false),
        Field::new("fk_catalog_name", DataType::Utf8, true),
        Field::new("fk_db_schema_name", DataType::Utf8, true),
        Field::new("fk_table_name", DataType::Utf8, false),
        Field::new("fk_column_name", DataType::Utf8, false),
        Field::new("key_sequence", DataType::Int32, false),
        Field::new("fk_key_name", DataType::Utf8, true),
        Field::new("pk_key_name", DataType::Utf8, true),
        Field::new("update_rule", DataType::UInt8, false),
        Field::new("delete_rule", DataType::UInt8, false),
    ]))
});

/// What the server says about itself in GetSqlInfo. Every value is true of this server: SQL is
/// DataFusion's, there are no transactions, cancellation and bulk ingestion work.
pub(crate) fn sql_info() -> Result<SqlInfoData> {
    let mut info = SqlInfoDataBuilder::new();
    info.append(SqlInfo::FlightSqlServerName, "Flotilla");
    info.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    // The Arrow IPC format version Flotilla writes (arrow-rs writes metadata V5).
    info.append(SqlInfo::FlightSqlServerArrowVersion, "1.5.0");
    info.append(SqlInfo::FlightSqlServerReadOnly, false);
    info.append(SqlInfo::FlightSqlServerSql, true);
    info.append(SqlInfo::FlightSqlServerSubstrait, false);
    // SqlSupportedTransaction::None
    info.append(SqlInfo::FlightSqlServerTransaction, 0i32);
    info.append(SqlInfo::FlightSqlServerCancel, true);
    info.append(SqlInfo::FlightSqlServerBulkIngestion, true);
    info.append(SqlInfo::FlightSqlServerIngestTransactionsSupported, false);
    info.append(SqlInfo::FlightSqlServerStatementTimeout, 0i32);
    info.append(SqlInfo::FlightSqlServerTransactionTimeout, 0i32);
    info.append(SqlInfo::SqlDdlCatalog, false);
    info.append(SqlInfo::SqlDdlSchema, true);
    info.append(SqlInfo::SqlDdlTable, true);
    // Unquoted identifiers are folded to lower case; quoted ones are kept as written.
    info.append(
        SqlInfo::SqlIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityLowercase as i32,
    );
    info.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    info.append(
        SqlInfo::SqlQuotedIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityCaseInsensitive as i32,
    );
    info.append(SqlInfo::SqlAllTablesAreSelectable, true);
    // DataFusion sorts NULLs last in ascending order: they sort high.
    info.append(
        SqlInfo::SqlNullOrdering,
        SqlNullOrdering::SqlNullsSortedHigh as i32,
    );
    info.append(SqlInfo::SqlKeywords, KEYWORDS);
    info.append(SqlInfo::SqlNumericFunctions, NUMERIC_FUNCTIONS);
    info.append(SqlInfo::SqlStringFunctions, STRING_FUNCTIONS);
    info.append(SqlInfo::SqlSystemFunctions, &[] as &[&str]);
    info.append(SqlInfo::SqlDatetimeFunctions, DATETIME_FUNCTIONS);
    info.append(SqlInfo::SqlSearchStringEscape, "\\");
    info.append(SqlInfo::SqlExtraNameCharacters, "");
    info.append(SqlInfo::SqlSupportsColumnAliasing, true);
    info.append(SqlInfo::SqlNullPlusNullIsNull, true);
    info.append(SqlInfo::SqlSupportsTableCorrelationNames, true);
    info.append(SqlInfo::SqlSupportsDifferentTableCorrelationNames, false);
    info.append(SqlInfo::SqlSupportsExpressionsInOrderBy, true);
    info.append(SqlInfo::SqlSupportsOrderByUnrelated, true);
    // SqlSupportedGroupBy: unrelated columns (bit 0) and beyond select (bit 1).
    info.append(SqlInfo::SqlSupportedGroupBy, 0b11i32);
    info.append(SqlInfo::SqlSupportsLikeEscapeClause, true);
    info.append(SqlInfo::SqlSupportsNonNullableColumns, true);
    // SqlSupportedElementActions / grammar: core grammar only (bit 1 of minimum/core/extended).
    info.append(SqlInfo::SqlSupportedGrammar, 0b10i32);
    info.append(SqlInfo::SqlSupportsIntegrityEnhancementFacility, false);
    // SqlOuterJoinsSupportLevel::SqlFullOuterJoins
    info.append(SqlInfo::SqlOuterJoinsSupportLevel, 2i32);
    info.append(SqlInfo::SqlSchemaTerm, "schema");
    info.append(SqlInfo::SqlProcedureTerm, "procedure");
    info.append(SqlInfo::SqlCatalogTerm, "catalog");
    info.append(SqlInfo::SqlCatalogAtStart, true);
    info.append(SqlInfo::SqlSchemasSupportedActions, 0i32);
    info.append(SqlInfo::SqlCatalogsSupportedActions, 0i32);
    info.append(SqlInfo::SqlSupportedPositionedCommands, 0i32);
    info.append(SqlInfo::SqlSelectForUpdateSupported, false);
    info.append(SqlInfo::SqlStoredProceduresSupported, false);
    // Subqueries in comparisons, EXISTS, IN and quantified comparisons (bits 0–3).
    info.append(SqlInfo::SqlSupportedSubqueries, 0b1111i32);
    info.append(SqlInfo::SqlCorrelatedSubqueriesSupported, true);
    // UNION and UNION ALL.
    info.append(SqlInfo::SqlSupportedUnions, 0b11i32);
    // No fixed limits: 0 means "no limit or unknown" for every SqlMax* value.
    for limit in [
        SqlInfo::SqlMaxBinaryLiteralLength,
        SqlInfo::SqlMaxCharLiteralLength,
        SqlInfo::SqlMaxColumnNameLength,
        SqlInfo::SqlMaxColumnsInGroupBy,
        SqlInfo::SqlMaxColumnsInIndex,
        SqlInfo::SqlMaxColumnsInOrderBy,
        SqlInfo::SqlMaxColumnsInSelect,
        SqlInfo::SqlMaxColumnsInTable,
        SqlInfo::SqlMaxConnections,
        SqlInfo::SqlMaxCursorNameLength,
        SqlInfo::SqlMaxIndexLength,
        SqlInfo::SqlDbSchemaNameLength,
        SqlInfo::SqlMaxProcedureNameLength,
        SqlInfo::SqlMaxCatalogNameLength,
        SqlInfo::SqlMaxRowSize,
        SqlInfo::SqlMaxStatementLength,
        SqlInfo::SqlMaxStatements,
        SqlInfo::SqlMaxTableNameLength,
        SqlInfo::SqlMaxTablesInSelect,
        SqlInfo::SqlMaxUsernameLength,
    ] {
        info.append(limit, 0i64);
    }
    info.append(SqlInfo::SqlMaxRowSizeIncludesBlobs, true);
    // SqlTransactionIsolationLevel::SqlTransactionNone
    info.append(SqlInfo::SqlDefaultTransactionIsolation, 0i64);
    info.append(SqlInfo::SqlTransactionsSupported, false);
    info.append(SqlInfo::SqlSupportedTransactionsIsolationLevels, 0i32);
    info.append(SqlInfo::SqlDataDefinitionCausesTransactionCommit, false);
    info.append(SqlInfo::SqlDataDefinitionsInTransactionsIgnored, true);
    // Forward-only result sets (SqlSupportedResultSetType bit 1).
    info.append(SqlInfo::SqlSupportedResultSetTypes, 0b10i32);
    info.append(SqlInfo::SqlBatchUpdatesSupported, false);
    info.append(SqlInfo::SqlSavepointsSupported, false);
    info.append(SqlInfo::SqlNamedParametersSupported, false);
    info.append(SqlInfo::SqlLocatorsUpdateCopy, false);
    info.append(SqlInfo::SqlStoredFunctionsUsingCallSyntaxSupported, false);
    built(info.build())
}

const KEYWORDS: &[&str] = &[
    "ANALYZE", "ARRAY", "COPY", "EXPLAIN", "EXTERNAL", "FILTER", "ILIKE", "LIMIT", "OFFSET",
    "QUALIFY", "REPLACE", "SHOW", "STRUCT", "UNNEST", "VERBOSE", "WINDOW",
];

const NUMERIC_FUNCTIONS: &[&str] = &[
    "abs", "acos", "asin", "atan", "atan2", "cbrt", "ceil", "cos", "degrees", "exp", "floor", "ln",
    "log", "log10", "log2", "mod", "pi", "power", "radians", "random", "round", "signum", "sin",
    "sqrt", "tan", "trunc",
];

const STRING_FUNCTIONS: &[&str] = &[
    "ascii",
    "btrim",
    "char_length",
    "chr",
    "concat",
    "concat_ws",
    "initcap",
    "left",
    "length",
    "lower",
    "lpad",
    "ltrim",
    "octet_length",
    "position",
    "repeat",
    "replace",
    "reverse",
    "right",
    "rpad",
    "rtrim",
    "split_part",
    "starts_with",
    "strpos",
    "substr",
    "substring",
    "translate",
    "trim",
    "upper",
];

const DATETIME_FUNCTIONS: &[&str] = &[
    "current_date",
    "current_time",
    "date_bin",
    "date_part",
    "date_trunc",
    "extract",
    "now",
    "to_date",
    "to_timestamp",
];

/// The SQL types DataFusion accepts, for GetXdbcTypeInfo.
pub(crate) fn xdbc_type_info() -> Result<XdbcTypeInfoData> {
    let mut builder = XdbcTypeInfoDataBuilder::new();
    // name, type, column size, literal prefix, case sensitive, unsigned
    type Row = (
        &'static str,
        XdbcDataType,
        Option<i32>,
        Option<&'static str>,
        bool,
        bool,
    );
    let types: &[Row] = &[
        (
            "BOOLEAN",
            XdbcDataType::XdbcBit,
            Some(1),
            None,
            false,
            false,
        ),
        (
            "TINYINT",
            XdbcDataType::XdbcTinyint,
            Some(3),
            None,
            false,
            false,
        ),
        (
            "SMALLINT",
            XdbcDataType::XdbcSmallint,
            Some(5),
            None,
            false,
            false,
        ),
        (
            "INTEGER",
            XdbcDataType::XdbcInteger,
            Some(10),
            None,
            false,
            false,
        ),
        (
            "BIGINT",
            XdbcDataType::XdbcBigint,
            Some(19),
            None,
            false,
            false,
        ),
        (
            "REAL",
            XdbcDataType::XdbcFloat,
            Some(24),
            None,
            false,
            false,
        ),
        (
            "DOUBLE",
            XdbcDataType::XdbcDouble,
            Some(53),
            None,
            false,
            false,
        ),
        (
            "DECIMAL",
            XdbcDataType::XdbcDecimal,
            Some(38),
            None,
            false,
            false,
        ),
        (
            "VARCHAR",
            XdbcDataType::XdbcVarchar,
            None,
            Some("'"),
            true,
            false,
        ),
        (
            "BYTEA",
            XdbcDataType::XdbcVarbinary,
            None,
            Some("X'"),
            false,
            false,
        ),
        (
            "DATE",
            XdbcDataType::XdbcDate,
            Some(10),
            Some("DATE '"),
            false,
            false,
        ),
        (
            "TIME",
            XdbcDataType::XdbcTime,
            Some(15),
            Some("TIME '"),
            false,
            false,
        ),
        (
            "TIMESTAMP",
            XdbcDataType::XdbcTimestamp,
            Some(26),
            Some("TIMESTAMP '"),
            false,
            false,
        ),
        (
            "INTERVAL",
            XdbcDataType::XdbcInterval,
            None,
            Some("INTERVAL '"),
            false,
            false,
        ),
    ];
    for &(name, data_type, column_size, prefix, case_sensitive, unsigned) in types {
        let numeric = column_size.is_some() && prefix.is_none() && name != "BOOLEAN";
        builder.append(XdbcTypeInfo {
            type_name: name.to_string(),
            data_type,
            column_size,
            literal_prefix: prefix.map(str::to_string),
            literal_suffix: prefix.map(|_| "'".to_string()),
            create_params: (name == "DECIMAL")
                .then(|| vec!["precision".to_string(), "scale".to_string()]),
            nullable: Nullable::NullabilityNullable,
            case_sensitive,
            searchable: Searchable::Full,
            unsigned_attribute: numeric.then_some(unsigned),
            fixed_prec_scale: name == "DECIMAL",
            auto_increment: numeric.then_some(false),
            local_type_name: Some(name.to_string()),
            minimum_scale: (name == "DECIMAL").then_some(0),
            maximum_scale: (name == "DECIMAL").then_some(38),
            sql_data_type: data_type,
            datetime_subcode: None,
            num_prec_radix: numeric.then_some(10),
            interval_precision: None,
        });
    }
    built(builder.build())
}

#[cfg(test)]
mod tests {
    use super::like;

    #[test]
    fn like_patterns() {
        assert!(like("%", ""));
        assert!(like("line%", "lineitem"));
        assert!(like("%item", "lineitem"));
        assert!(like("l_neitem", "lineitem"));
        assert!(!like("l_item", "lineitem"));
        assert!(like("my\\_table", "my_table"));
        assert!(!like("my\\_table", "myxtable"));
        assert!(like("%é%", "café"));
        assert!(!like("orders", "Orders"));
        assert!(like("a%%%%b%", "axxbyy"));
        let long = "a".repeat(2000);
        assert!(!like(&"%a".repeat(500).replace("a", "b"), &long));
    }
}
