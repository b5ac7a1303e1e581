//! The session options the Flight SQL service acts on: the query limits
//! (`flotilla.statement_timeout`, `flotilla.query_memory_limit`) and how it serves results
//! (`flotilla.flight.*`).

/// `flotilla.flight.*`: how the Flight SQL service serves results (a section of the
/// `flotilla.*` options, added to every session by [`crate::SharedCatalogs`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlightOptions {
    /// `flotilla.flight.partitioned_results`: a result in several partitions (no order among
    /// them) is served as one endpoint per partition, which clients may read concurrently.
    /// Off by default: on a 2-core node it was no faster (`SELECT * FROM lineitem` at SF 1 to
    /// ADBC, 2.3–2.8 s either way: the cores are busy decoding and encoding already), and a
    /// client that reads endpoints one after the other makes the node buffer the partitions
    /// it has not reached yet.
    pub partitioned_results: bool,
}

const PARTITIONED_RESULTS_KEY: &str = "flight.partitioned_results";

impl FlightOptions {
    /// The options set in a session with `options` (the defaults where the section is not
    /// registered).
    pub fn of(options: &datafusion::config::ConfigOptions) -> FlightOptions {
        flotilla_common::options::section::<FlightOptions>(options)
            .cloned()
            .unwrap_or_default()
    }
}

impl datafusion::config::ExtensionOptions for FlightOptions {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    fn cloned(&self) -> Box<dyn datafusion::config::ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, value: &str) -> datafusion::common::Result<()> {
        match key {
            PARTITIONED_RESULTS_KEY => {
                self.partitioned_results =
                    flotilla_common::options::boolean(&format!("flotilla.{key}"), value)?;
                Ok(())
            }
            _ => datafusion::common::plan_err!("unknown option 'flotilla.{key}'"),
        }
    }

    fn entries(&self) -> Vec<datafusion::config::ConfigEntry> {
        vec![datafusion::config::ConfigEntry {
            key: format!("flotilla.{PARTITIONED_RESULTS_KEY}"),
            value: Some(self.partitioned_results.to_string()),
            description: "Serve a result in several partitions as one endpoint per partition \
                          (clients may read them concurrently); false (the default): one.",
        }]
    }
}

/// `config` with the options the service acts on (unless it has them): what every session
/// [`crate::SharedCatalogs`] opens has, and what a node adds before it applies its configured
/// session options.
pub fn with_service_options(
    config: datafusion::prelude::SessionConfig,
) -> datafusion::prelude::SessionConfig {
    let config = flotilla_common::options::with_section(
        config,
        flotilla_common::options::QueryLimits::default(),
    );
    flotilla_common::options::with_section(config, FlightOptions::default())
}
