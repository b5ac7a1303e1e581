//! Session options of the federation engine: `flotilla.federation.*`.
//!
//! DataFusion routes `SET <prefix>.<key> = <value>` to the extension registered under the first
//! word of the key, so this extension owns the whole `flotilla` prefix and answers to
//! `federation.pushdown`.

use datafusion::common::{Result, plan_err};
use datafusion::config::{ConfigEntry, ConfigExtension, ExtensionOptions};
use std::any::Any;

/// `flotilla.*` session options.
#[derive(Debug, Clone, PartialEq)]
pub struct FederationConfig {
    /// `flotilla.federation.pushdown`: push sub-plans down to the sources. `false` reads every
    /// remote table whole and leaves all the work to DataFusion (for comparison and debugging).
    pub pushdown: bool,
}

impl Default for FederationConfig {
    fn default() -> Self {
        Self { pushdown: true }
    }
}

const PUSHDOWN_KEY: &str = "federation.pushdown";

impl ExtensionOptions for FederationConfig {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            PUSHDOWN_KEY => match value.trim().to_ascii_lowercase().as_str() {
                "true" | "on" | "1" => self.pushdown = true,
                "false" | "off" | "0" => self.pushdown = false,
                other => {
                    return plan_err!("flotilla.{PUSHDOWN_KEY} takes true or false, not '{other}'");
                }
            },
            _ => {
                return plan_err!(
                    "unknown option 'flotilla.{key}' (known: flotilla.{PUSHDOWN_KEY})"
                );
            }
        }
        Ok(())
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        vec![ConfigEntry {
            key: format!("flotilla.{PUSHDOWN_KEY}"),
            value: Some(self.pushdown.to_string()),
            description: "Push sub-plans down to the sources; false reads remote tables whole.",
        }]
    }
}

impl ConfigExtension for FederationConfig {
    const PREFIX: &'static str = "flotilla";
}
