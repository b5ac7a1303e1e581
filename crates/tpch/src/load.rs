//! Scripts that load TPC-H CSV files (from [`Format::Csv`](crate::Format)) into PostgreSQL and
//! MariaDB/MySQL with each server's bulk path, so that every engine in a comparison holds the
//! same rows. Tables get their primary keys and no other index.

use crate::Table;
use arrow::datatypes::DataType;
use std::path::Path;

/// The server a load script is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// A `psql` script (`\copy … FROM` the files).
    Postgres,
    /// SQL for the `mariadb`/`mysql` client (`LOAD DATA LOCAL INFILE`; the server and client
    /// need `local_infile` enabled).
    MariaDb,
}

impl Server {
    fn column_type(self, data_type: &DataType) -> Option<String> {
        Some(match (self, data_type) {
            (_, DataType::Int64) => "BIGINT".into(),
            (Server::Postgres, DataType::Int32) => "INTEGER".into(),
            (Server::MariaDb, DataType::Int32) => "INT".into(),
            (Server::Postgres, DataType::Decimal128(p, s)) => format!("NUMERIC({p},{s})"),
            (Server::MariaDb, DataType::Decimal128(p, s)) => format!("DECIMAL({p},{s})"),
            (_, DataType::Date32) => "DATE".into(),
            (Server::Postgres, DataType::Utf8 | DataType::Utf8View) => "TEXT".into(),
            (Server::MariaDb, DataType::Utf8 | DataType::Utf8View) => "VARCHAR(255)".into(),
            (Server::Postgres, DataType::Float64) => "DOUBLE PRECISION".into(),
            (Server::MariaDb, DataType::Float64) => "DOUBLE".into(),
            _ => return None,
        })
    }
}

/// `CREATE TABLE schema.table (…)` with the table's primary key.
fn create_table(server: Server, schema: &str, table: Table) -> Result<String, String> {
    let mut columns = Vec::new();
    for field in table.schema().fields() {
        let declared = server
            .column_type(field.data_type())
            .ok_or_else(|| format!("no column type for {}", field.data_type()))?;
        columns.push(format!("{} {declared} NOT NULL", field.name()));
    }
    columns.push(format!("PRIMARY KEY ({})", table.primary_key().join(", ")));
    Ok(format!(
        "CREATE TABLE {schema}.{} ({})",
        table.name(),
        columns.join(", ")
    ))
}

/// A script that (re)creates `schema` (a database for MariaDB) and loads the 8 tables from
/// `<csv_dir>/<table>.csv` (comma-separated, header line).
pub fn load_script(server: Server, schema: &str, csv_dir: &Path) -> Result<String, String> {
    let csv = |table: Table| {
        csv_dir
            .join(format!("{}.csv", table.name()))
            .display()
            .to_string()
    };
    let mut script = match server {
        Server::Postgres => {
            format!("BEGIN;\nDROP SCHEMA IF EXISTS {schema} CASCADE;\nCREATE SCHEMA {schema};\n")
        }
        Server::MariaDb => {
            format!("DROP DATABASE IF EXISTS {schema};\nCREATE DATABASE {schema};\n")
        }
    };
    for table in Table::ALL {
        script.push_str(&create_table(server, schema, table)?);
        script.push_str(";\n");
        script.push_str(&match server {
            Server::Postgres => format!(
                "\\copy {schema}.{} FROM '{}' WITH (FORMAT csv, HEADER true)\n",
                table.name(),
                csv(table)
            ),
            Server::MariaDb => format!(
                "LOAD DATA LOCAL INFILE '{}' INTO TABLE {schema}.{} CHARACTER SET utf8mb4 \
                 FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' \
                 LINES TERMINATED BY '\\n' IGNORE 1 LINES;\n",
                csv(table),
                table.name()
            ),
        });
    }
    script.push_str(match server {
        Server::Postgres => "COMMIT;\nANALYZE;\n",
        Server::MariaDb => "",
    });
    Ok(script)
}
