//! Helpers shared by the MariaDB tests.

use datafusion::prelude::{SessionConfig, SessionContext};
use flotilla_connectors_mysql::{MysqlOptions, MysqlSource};
use flotilla_federation::config::Pushdown;
use flotilla_federation::{FederationConfig, Source, catalog_of};
use flotilla_testkit::MariaDb;
pub use flotilla_testkit::plans::{plan_text, pushed_whole, run};
use std::sync::Arc;

/// The test kit's server, started once per test binary.
pub fn server() -> &'static MariaDb {
    flotilla_testkit::mariadb()
}

/// The server's URL with `database` instead of the default one.
pub fn url(database: &str) -> String {
    let url = server().url();
    let base = url.rsplit_once('/').map(|(base, _)| base).unwrap_or(&url);
    format!("{base}/{database}")
}

/// A federated session with the database `database` of the test server as catalog `my`,
/// everything pushed it can run.
pub async fn context(database: &str) -> (SessionContext, Arc<MysqlSource>) {
    let source =
        Arc::new(MysqlSource::new("my", &url(database), None, MysqlOptions::default()).unwrap());
    let ctx = session_over(Arc::clone(&source) as Arc<dyn Source>, Pushdown::All).await;
    (ctx, source)
}

/// A federated session with `source` as catalog `my`, cut by `pushdown`.
pub async fn session_over(source: Arc<dyn Source>, pushdown: Pushdown) -> SessionContext {
    let ctx = flotilla_federation::federated_context(
        FederationConfig::pushing(pushdown).add_to(SessionConfig::new()),
    );
    ctx.register_catalog("my", catalog_of(source).await.unwrap());
    ctx
}
