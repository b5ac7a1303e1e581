//! `information_schema.columns` as PostgreSQL describes columns: `data_type` in SQL's names
//! (`bigint`, `text`, `timestamp with time zone`, `ARRAY`) and `udt_name` in PostgreSQL's
//! (`int8`, `text`, `timestamptz`, `_int4`) — the types the port sends each column as — rather
//! than DataFusion's Arrow names (`Int64`, `Utf8`). Tools decide by them which columns are
//! numbers and which are times (Grafana's query editor reads `data_type`).
//!
//! ```text
//!  … FROM information_schema.columns [AS c] …
//!  ──▶ … FROM (SELECT table_catalog, …, pg_sql_type(data_type) AS data_type, …,
//!              pg_udt_name(data_type) AS udt_name FROM information_schema.columns) AS c …
//! ```

use arrow_pg::datatypes::into_pg_type;
use datafusion::arrow::array::{ArrayRef, AsArray, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::sql::sqlparser::ast::{
    Ident, ObjectNamePart, Statement as Sql, TableAlias, TableFactor, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser as SqlParser;
use pgwire::api::Type;
use std::ops::ControlFlow;
use std::str::FromStr;
use std::sync::Arc;

/// The name of the function giving a column's SQL type name from its Arrow type's.
const SQL_TYPE: &str = "pg_sql_type";
/// The name of the function giving a column's PostgreSQL type name from its Arrow type's.
const UDT_NAME: &str = "pg_udt_name";

/// Reads of `information_schema.columns` in `statement` replaced by a derived table with
/// PostgreSQL's type names.
pub(crate) fn columns_as_postgres(statement: &mut Sql) {
    let _ = statement.visit(&mut Columns);
}

struct Columns;

impl VisitorMut for Columns {
    type Break = ();

    // After its children: the derived table written here is not visited again.
    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } = factor
            && is_columns(&name.0)
            && let Some(subquery) = derived(&name.to_string())
        {
            *factor = TableFactor::Derived {
                lateral: false,
                subquery: Box::new(subquery),
                alias: Some(alias.take().unwrap_or(TableAlias {
                    explicit: true,
                    name: Ident::new("columns"),
                    columns: Vec::new(),
                    at: None,
                })),
                sample: None,
            };
        }
        ControlFlow::Continue(())
    }
}

/// Whether a table name ends in `information_schema.columns` (any case, quoted or not).
fn is_columns(parts: &[ObjectNamePart]) -> bool {
    let idents: Vec<String> = parts
        .iter()
        .filter_map(|part| match part {
            ObjectNamePart::Identifier(ident) => Some(ident.value.to_lowercase()),
            _ => None,
        })
        .collect();
    idents.len() == parts.len()
        && idents.ends_with(&["information_schema".to_string(), "columns".to_string()])
}

/// The derived table over `table` (the name as written).
fn derived(table: &str) -> Option<datafusion::sql::sqlparser::ast::Query> {
    let sql = format!(
        "SELECT table_catalog, table_schema, table_name, column_name, ordinal_position, \
         column_default, is_nullable, {SQL_TYPE}(data_type) AS data_type, \
         character_maximum_length, character_octet_length, numeric_precision, \
         numeric_precision_radix, numeric_scale, datetime_precision, interval_type, \
         'pg_catalog' AS udt_schema, {UDT_NAME}(data_type) AS udt_name FROM {table}"
    );
    SqlParser::new(&PostgreSqlDialect {})
        .try_with_sql(&sql)
        .and_then(|mut parser| parser.parse_query())
        .ok()
        .map(|query| *query)
}

/// `pg_sql_type` and `pg_udt_name`, over DataFusion's Arrow type names.
pub(crate) fn functions() -> Vec<ScalarUDF> {
    let over_types = |name: &str, of: fn(&str) -> String| {
        create_udf(
            name,
            vec![DataType::Utf8],
            DataType::Utf8,
            Volatility::Immutable,
            Arc::new(move |args: &[ColumnarValue]| {
                let names = ColumnarValue::values_to_arrays(args)?;
                let names = names[0].as_string::<i32>();
                let mapped: StringArray = names.iter().map(|name| name.map(of)).collect();
                Ok(ColumnarValue::Array(Arc::new(mapped) as ArrayRef))
            }),
        )
    };
    vec![
        over_types(SQL_TYPE, sql_type),
        over_types(UDT_NAME, udt_name),
    ]
}

/// The PostgreSQL type the port sends a column of the Arrow type named `arrow` as.
fn pg_type(arrow: &str) -> Option<Type> {
    into_pg_type(&DataType::from_str(arrow).ok()?).ok()
}

/// SQL's name for the type, as PostgreSQL's `information_schema.columns.data_type` gives it.
fn sql_type(arrow: &str) -> String {
    let Some(pg) = pg_type(arrow) else {
        return "USER-DEFINED".into();
    };
    match pg.name() {
        "bool" => "boolean",
        "int2" => "smallint",
        "int4" => "integer",
        "int8" => "bigint",
        "float4" => "real",
        "float8" => "double precision",
        "numeric" => "numeric",
        "text" => "text",
        "varchar" => "character varying",
        "bpchar" => "character",
        "bytea" => "bytea",
        "date" => "date",
        "time" => "time without time zone",
        "timetz" => "time with time zone",
        "timestamp" => "timestamp without time zone",
        "timestamptz" => "timestamp with time zone",
        "interval" => "interval",
        "json" => "json",
        "jsonb" => "jsonb",
        "uuid" => "uuid",
        name if name.starts_with('_') => "ARRAY",
        _ => "USER-DEFINED",
    }
    .into()
}

/// PostgreSQL's name for the type (`udt_name`); the Arrow name for a type the port cannot send.
fn udt_name(arrow: &str) -> String {
    pg_type(arrow).map_or_else(|| arrow.to_string(), |pg| pg.name().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, TimeUnit};

    #[test]
    fn arrow_types_are_named_as_postgresql_names_the_types_they_are_sent_as() {
        let list = DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true)));
        for (data_type, sql, udt) in [
            (DataType::Int64, "bigint", "int8"),
            (DataType::Int32, "integer", "int4"),
            (DataType::Float64, "double precision", "float8"),
            (DataType::Utf8, "text", "text"),
            (DataType::Utf8View, "text", "text"),
            (DataType::Decimal128(15, 2), "numeric", "numeric"),
            (DataType::Date32, "date", "date"),
            (DataType::Boolean, "boolean", "bool"),
            (
                DataType::Timestamp(TimeUnit::Microsecond, None),
                "timestamp without time zone",
                "timestamp",
            ),
            (
                DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
                "timestamp with time zone",
                "timestamptz",
            ),
            (list, "ARRAY", "_int4"),
        ] {
            let arrow = data_type.to_string();
            assert_eq!(sql_type(&arrow), sql, "{arrow}");
            assert_eq!(udt_name(&arrow), udt, "{arrow}");
        }
        assert_eq!(sql_type("no such type"), "USER-DEFINED");
    }

    #[test]
    fn reads_of_information_schema_columns_are_rewritten_and_nothing_else() {
        let rewritten = |sql: &str| {
            let mut statements = SqlParser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
            columns_as_postgres(&mut statements[0]);
            statements[0].to_string()
        };
        let sql = rewritten(
            "SELECT c.column_name, c.data_type FROM INFORMATION_SCHEMA.\"columns\" AS c \
             WHERE c.table_name = 'orders'",
        );
        assert!(
            sql.contains("pg_sql_type(data_type) AS data_type")
                && sql.contains("FROM INFORMATION_SCHEMA.\"columns\") AS c WHERE"),
            "{sql}"
        );
        let sql = rewritten("SELECT data_type FROM shop.information_schema.columns");
        assert!(sql.contains(") AS columns"), "{sql}");
        for untouched in [
            "SELECT * FROM information_schema.tables",
            "SELECT * FROM public.columns",
            "SELECT * FROM columns",
        ] {
            assert_eq!(rewritten(untouched), untouched);
        }
    }
}
