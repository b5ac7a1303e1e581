//! Session options: parsing their values (`SET <key> = <value>`) the same way everywhere, the
//! `flotilla.*` extension every part of Flotilla adds its keys to, and the query limits.

use datafusion::common::{Result, plan_err};
use datafusion::config::{ConfigEntry, ConfigExtension, ConfigOptions, ExtensionOptions};
use datafusion::prelude::SessionConfig;
use std::any::Any;
use std::time::Duration;

/// `true`/`on`/`1` or `false`/`off`/`0` (any case); the error names the option `key`.
pub fn boolean(key: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "1" => Ok(true),
        "false" | "off" | "0" => Ok(false),
        other => plan_err!("{key} takes true or false, not '{other}'"),
    }
}

/// A count such as `500000` or `500_000`; `what` says what it counts in the error.
pub fn count(key: &str, value: &str, what: &str) -> Result<usize> {
    match value.trim().replace('_', "").parse() {
        Ok(count) => Ok(count),
        Err(_) => plan_err!("{key} takes {what}, not '{value}'"),
    }
}

/// A size such as `512M`, `8G`, `64 KiB` or `1048576` (bytes), in powers of 1024; zero is an
/// error (callers that take 0 for "none" check for it first).
pub fn size(text: &str) -> std::result::Result<usize, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: usize = number
        .parse()
        .map_err(|_| format!("'{text}' is not a size: write bytes or e.g. 512M, 8G"))?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        other => return Err(format!("'{other}' is not a unit of size: use K, M, G or T")),
    };
    number
        .checked_mul(1 << shift)
        .filter(|bytes| *bytes > 0)
        .ok_or_else(|| format!("'{text}' is not a usable size (zero or too large)"))
}

/// A duration such as `30s`, `500ms`, `2min`, `1h` or `1.5s`; a bare number is seconds.
pub fn duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration: write e.g. 30s, 500ms, 5min"))?;
    let seconds = match unit.trim().to_ascii_lowercase().as_str() {
        "ms" => number / 1e3,
        "" | "s" | "sec" => number,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        other => {
            return Err(format!(
                "'{other}' is not a unit of time: use ms, s, min or h"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("'{text}' is not a usable duration"))
}

/// A size or a duration as an option shows it back: `256M`, `30s`.
fn show_size(bytes: usize) -> String {
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

fn show_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// `flotilla.*` session options. DataFusion hands `SET <prefix>.<key>` to the one extension
/// registered under the key's first word, so this extension owns `flotilla` and each part of
/// Flotilla adds its own section of keys to it (`flotilla.federation.*`, the query limits).
/// A section is an [`ExtensionOptions`] whose entries are its full keys (`flotilla.…`) and
/// whose `set` takes a key without the `flotilla.` prefix.
#[derive(Debug, Default)]
pub struct FlotillaOptions {
    sections: Vec<Box<dyn ExtensionOptions>>,
}

impl Clone for FlotillaOptions {
    fn clone(&self) -> Self {
        Self {
            sections: self.sections.iter().map(|s| s.cloned()).collect(),
        }
    }
}

impl FlotillaOptions {
    /// The section of type `T`, if one was added.
    pub fn section<T: ExtensionOptions>(&self) -> Option<&T> {
        self.sections
            .iter()
            .find_map(|s| s.as_any().downcast_ref::<T>())
    }

    /// `section`, in place of one of the same type if there was one.
    pub fn put<T: ExtensionOptions>(&mut self, section: T) {
        self.sections.retain(|s| !s.as_any().is::<T>());
        self.sections.push(Box::new(section));
    }
}

/// The section `T` of the `flotilla.*` options of `options`, if registered.
pub fn section<T: ExtensionOptions>(options: &ConfigOptions) -> Option<&T> {
    options.extensions.get::<FlotillaOptions>()?.section::<T>()
}

/// Adds `section` to the `flotilla.*` options of `config` unless a section of its type is
/// there already (so a caller's own settings are kept).
pub fn with_section<T: ExtensionOptions>(config: SessionConfig, section: T) -> SessionConfig {
    let mut config = if config
        .options()
        .extensions
        .get::<FlotillaOptions>()
        .is_some()
    {
        config
    } else {
        config.with_option_extension(FlotillaOptions::default())
    };
    if let Some(options) = config.options_mut().extensions.get_mut::<FlotillaOptions>()
        && options.section::<T>().is_none()
    {
        options.put(section);
    }
    config
}

impl ExtensionOptions for FlotillaOptions {
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
        let full = format!("{}.{key}", FlotillaOptions::PREFIX);
        for section in &mut self.sections {
            if section.entries().iter().any(|entry| entry.key == full) {
                return section.set(key, value);
            }
        }
        let known: Vec<String> = self.entries().into_iter().map(|e| e.key).collect();
        plan_err!("unknown option '{full}' (known: {})", known.join(", "))
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        self.sections.iter().flat_map(|s| s.entries()).collect()
    }
}

impl ConfigExtension for FlotillaOptions {
    const PREFIX: &'static str = "flotilla";
}

/// The limits of one query on a node: `flotilla.statement_timeout` and
/// `flotilla.query_memory_limit` (defaults for every session from flotilla.toml's
/// `[session.options]`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryLimits {
    /// How long a query may run (waiting for its turn included) before it is stopped and
    /// fails with DEADLINE_EXCEEDED; `None`: no limit.
    pub statement_timeout: Option<Duration>,
    /// How much of the node's memory pool one query may hold; beyond it, operators that can
    /// spill do, and others fail the query with RESOURCE_EXHAUSTED; `None`: only the node's
    /// limit applies.
    pub query_memory_limit: Option<usize>,
}

const STATEMENT_TIMEOUT_KEY: &str = "statement_timeout";
const QUERY_MEMORY_LIMIT_KEY: &str = "query_memory_limit";

impl QueryLimits {
    /// The limits set in a session with `options` (none where the section is not registered).
    pub fn of(options: &ConfigOptions) -> QueryLimits {
        section::<QueryLimits>(options).cloned().unwrap_or_default()
    }

    /// What a query stopped by its statement `timeout` fails with.
    pub fn timed_out(timeout: Duration) -> String {
        format!(
            "the query ran longer than flotilla.statement_timeout ({timeout:?}) and was stopped"
        )
    }
}

/// `0`, `none` or `off`: no limit.
fn is_none(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "0" | "none" | "off" | ""
    )
}

impl ExtensionOptions for QueryLimits {
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
            STATEMENT_TIMEOUT_KEY if is_none(value) => self.statement_timeout = None,
            STATEMENT_TIMEOUT_KEY => match duration(value) {
                Ok(timeout) => self.statement_timeout = Some(timeout),
                Err(e) => return plan_err!("flotilla.{key}: {e} (0 for none)"),
            },
            QUERY_MEMORY_LIMIT_KEY if is_none(value) => self.query_memory_limit = None,
            QUERY_MEMORY_LIMIT_KEY => match size(value) {
                Ok(bytes) => self.query_memory_limit = Some(bytes),
                Err(e) => return plan_err!("flotilla.{key}: {e} (0 for none)"),
            },
            _ => return plan_err!("unknown option 'flotilla.{key}'"),
        }
        Ok(())
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        vec![
            ConfigEntry {
                key: format!("flotilla.{STATEMENT_TIMEOUT_KEY}"),
                value: Some(self.statement_timeout.map_or("0".into(), show_duration)),
                description: "How long a query may run, waiting for its turn included, before \
                              it is stopped (e.g. 30s, 5min; 0: no limit).",
            },
            ConfigEntry {
                key: format!("flotilla.{QUERY_MEMORY_LIMIT_KEY}"),
                value: Some(self.query_memory_limit.map_or("0".into(), show_size)),
                description: "How much memory one query may hold on a node (e.g. 256M; 0: only \
                              the node's memory_limit).",
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_read_in_powers_of_1024() {
        assert_eq!(size("512M"), Ok(512 << 20));
        assert_eq!(size("8GB"), Ok(8 << 30));
        assert_eq!(size("64 KiB"), Ok(64 << 10));
        assert_eq!(size("1048576"), Ok(1 << 20));
        assert!(size("0").is_err());
        assert!(size("8X").unwrap_err().contains("unit"));
        assert!(size("lots").unwrap_err().contains("not a size"));
        assert_eq!(show_size(256 << 20), "256M");
        assert_eq!(show_size(1000), "1000");
    }

    #[test]
    fn durations_take_units_and_bare_seconds() {
        assert_eq!(duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(duration("2min"), Ok(Duration::from_secs(120)));
        assert_eq!(duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(duration("soon").unwrap_err().contains("not a duration"));
        assert!(duration("3 weeks").unwrap_err().contains("unit of time"));
        assert_eq!(show_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn sections_share_the_flotilla_prefix_and_each_takes_its_keys() {
        let config = with_section(SessionConfig::new(), QueryLimits::default());
        let mut options = config.options().as_ref().clone();
        options.set("flotilla.statement_timeout", "2s").unwrap();
        options.set("flotilla.query_memory_limit", "64M").unwrap();
        let limits = QueryLimits::of(&options);
        assert_eq!(limits.statement_timeout, Some(Duration::from_secs(2)));
        assert_eq!(limits.query_memory_limit, Some(64 << 20));
        let e = options
            .set("flotilla.nothing", "1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("flotilla.statement_timeout"), "{e}");
        let e = options
            .set("flotilla.statement_timeout", "soon")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a duration"), "{e}");
        options.set("flotilla.statement_timeout", "0").unwrap();
        assert_eq!(QueryLimits::of(&options).statement_timeout, None);
        // A section added again keeps the settings it has.
        let config = with_section(
            SessionConfig::from(options),
            QueryLimits {
                statement_timeout: Some(Duration::from_secs(9)),
                query_memory_limit: None,
            },
        );
        assert_eq!(
            QueryLimits::of(config.options()).query_memory_limit,
            Some(64 << 20)
        );
    }
}
