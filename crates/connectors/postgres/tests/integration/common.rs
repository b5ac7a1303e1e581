//! Helpers shared by the PostgreSQL tests.

use datafusion::prelude::{SessionConfig, SessionContext};
use flotilla_connectors_postgres::{PostgresOptions, PostgresSource};
use flotilla_federation::config::Pushdown;
use flotilla_federation::{FederationConfig, Source, catalog_of};
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

/// A federated session with the test server as catalog `pg`, everything pushed it can run.
pub async fn context() -> (SessionContext, Arc<PostgresSource>) {
    let source = source("pg");
    let ctx = session_over(Arc::clone(&source) as Arc<dyn Source>, Pushdown::All).await;
    (ctx, source)
}

/// A federated session with `source` as catalog `pg`, cut by `pushdown`.
pub async fn session_over(source: Arc<dyn Source>, pushdown: Pushdown) -> SessionContext {
    let ctx = flotilla_federation::federated_context(
        FederationConfig::pushing(pushdown).add_to(SessionConfig::new()),
    );
    ctx.register_catalog("pg", catalog_of(source).await.unwrap());
    ctx
}
