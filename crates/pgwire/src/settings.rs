//! PostgreSQL's run-time settings that clients read on connecting (`SHOW search_path`,
//! `current_setting('server_version_num')`, `version()`), answered as a PostgreSQL 16 server
//! would. DataFusion's own options (`SHOW datafusion.…`, `SET flotilla.…`) are not among them
//! and keep DataFusion's answers.

use datafusion::arrow::array::{Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, ScalarValue, exec_err};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::sql::sqlparser::ast::Statement as Sql;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use std::sync::Arc;

/// The PostgreSQL version the port reports (the `server_version` parameter sent at startup).
pub(crate) const SERVER_VERSION: &str = "16.0";

/// The value of PostgreSQL setting `name` (case-insensitive), if it is one clients ask for.
pub(crate) fn setting(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "search_path" => "\"$user\", public",
        "server_version" => SERVER_VERSION,
        "server_version_num" => "160000",
        "server_encoding" | "client_encoding" => "UTF8",
        "standard_conforming_strings" | "integer_datetimes" => "on",
        "transaction_isolation" | "default_transaction_isolation" => "read committed",
        "transaction_read_only" | "default_transaction_read_only" => "off",
        "datestyle" => "ISO, MDY",
        "intervalstyle" => "postgres",
        "max_identifier_length" => "63",
        "lc_collate" | "lc_ctype" => "C.UTF-8",
        "is_superuser" => "off",
        _ => return None,
    })
}

/// `SHOW name` of a setting [`setting`] knows, as `SELECT 'value' AS name` (DataFusion knows
/// only its own options); any other statement is left as it is.
pub(crate) fn answer_show(statement: &mut Sql) {
    let Sql::ShowVariable { variable } = statement else {
        return;
    };
    let [name] = variable.as_slice() else {
        return;
    };
    let Some(value) = setting(&name.value) else {
        return;
    };
    let sql = format!(
        "SELECT '{}' AS \"{}\"",
        value.replace('\'', "''"),
        name.value.to_ascii_lowercase().replace('"', "\"\"")
    );
    if let Ok(mut parsed) = Parser::parse_sql(&PostgreSqlDialect {}, &sql)
        && let Some(select) = parsed.pop()
    {
        *statement = select;
    }
}

/// `current_setting(name)` and `version()` as PostgreSQL has them.
pub(crate) fn functions() -> Vec<ScalarUDF> {
    let current_setting = create_udf(
        "current_setting",
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(|args: &[ColumnarValue]| {
            let names = ColumnarValue::values_to_arrays(args)?;
            let Some(names) = names
                .first()
                .and_then(|a| a.as_any().downcast_ref::<StringArray>())
            else {
                return exec_err!("current_setting takes the name of a setting");
            };
            let values = names
                .iter()
                .map(|name| match name {
                    None => Ok(None),
                    Some(name) => setting(name).map(Some).ok_or_else(|| {
                        DataFusionError::Execution(format!(
                            "unrecognized configuration parameter \"{name}\""
                        ))
                    }),
                })
                .collect::<Result<StringArray, _>>()?;
            Ok(
                if names.len() == 1 && args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
                    ColumnarValue::Scalar(ScalarValue::try_from_array(&values, 0)?)
                } else {
                    ColumnarValue::Array(Arc::new(values))
                },
            )
        }),
    );
    let text = format!(
        "PostgreSQL {SERVER_VERSION} (Flotilla {} on Apache DataFusion {})",
        env!("CARGO_PKG_VERSION"),
        datafusion::DATAFUSION_VERSION
    );
    let version = create_udf(
        "version",
        vec![],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |_: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(text.clone()))))
        }),
    );
    vec![current_setting, version]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_of_a_postgresql_setting_becomes_a_select_and_others_stay() {
        let parse = |sql: &str| {
            let mut statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
                .unwrap()
                .pop()
                .unwrap();
            answer_show(&mut statement);
            statement.to_string()
        };
        assert_eq!(
            parse("SHOW search_path"),
            "SELECT '\"$user\", public' AS \"search_path\""
        );
        assert_eq!(
            parse("show Server_Version_Num"),
            "SELECT '160000' AS \"server_version_num\""
        );
        // DataFusion's own options are left to DataFusion.
        let mut own = Parser::parse_sql(
            &PostgreSqlDialect {},
            "SHOW datafusion.execution.batch_size",
        )
        .unwrap()
        .pop()
        .unwrap();
        let before = own.clone();
        answer_show(&mut own);
        assert_eq!(own, before);
    }
}
