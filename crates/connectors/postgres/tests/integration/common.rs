//! Helpers shared by the PostgreSQL tests.

use datafusion::prelude::{SessionConfig, SessionContext};
use flotilla_connectors_postgres::{PostgresOptions, PostgresSource};
use flotilla_federation::{Source, catalog_of};
use flotilla_testkit::Postgres;
pub use flotilla_testkit::plans::{plan_text, pushed_whole, run};
use std::sync::Arc;

/// The test kit's server, started once per test binary.
pub fn server() -> &'static Postgres {
    flotilla_testkit::postgres()
}

/// The source `name` over the test server's `postgres` database.
pub fn source(name: &str) -> Arc<PostgresSource> {
    Arc::new(PostgresSource::new(name, &server().url(), PostgresOptions::default()).unwrap())
}

/// A federated session with the test server as catalog `pg`.
pub async fn context() -> (SessionContext, Arc<PostgresSource>) {
    let ctx = flotilla_federation::federated_context(
        flotilla_federation::FederationConfig::pushing(flotilla_federation::config::Pushdown::All)
            .add_to(SessionConfig::new()),
    );
    let source = source("pg");
    ctx.register_catalog(
        "pg",
        catalog_of(Arc::clone(&source) as Arc<dyn Source>)
            .await
            .unwrap(),
    );
    (ctx, source)
}
