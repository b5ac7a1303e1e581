//! Where a configuration error is: the file, the line and column, and the key's path.

use flotilla_common::Error;
use std::fmt;
use std::ops::Range;

/// An error in a configuration file, with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based line and column, when known.
    pub position: Option<(usize, usize)>,
    /// Dotted path of the key, e.g. `sources.shop.path`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        if self.key.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::invalid(e.to_string())
    }
}

/// The text being read and its file's name: builds errors located in it.
pub(super) struct Located<'a> {
    pub text: &'a str,
    pub file: &'a str,
}

impl Located<'_> {
    /// An error at the byte range `span` of the text (`None`: the file as a whole).
    pub fn error(&self, span: Option<Range<usize>>, key: String, message: String) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            position: span.map(|s| line_and_column(self.text, s.start)),
            key,
            message,
        }
    }
}

/// The dotted key path of a `serde_path_to_error` path, without the internal segments that
/// `Spanned` values add, and empty for the root.
pub(super) fn key_path(path: &str) -> String {
    path.split('.')
        .filter(|segment| !segment.is_empty() && !segment.starts_with("$__"))
        .collect::<Vec<_>>()
        .join(".")
}

/// Rewords serde's messages in the vocabulary of a configuration file.
pub(super) fn explain(message: &str) -> String {
    let message = first_line(message);
    message
        .replace("unknown field", "unknown key")
        .replace("missing field", "missing key")
        .replace("unknown variant", "unknown value")
        .replace(", expected one of ", " (expected one of: ")
        .replace(", expected ", " (expected ")
        .replace('`', "'")
        + if message.contains(", expected") {
            ")"
        } else {
            ""
        }
}

pub(super) fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or("").trim().to_string()
}

fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}
