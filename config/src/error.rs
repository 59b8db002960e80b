//! Errors and warnings, each naming the path, the line and the reason.
//!
//! Format (stable, asserted in tests, printed by `check-config`):
//!
//! ```text
//! PATH (line N): REASON                  line N of the file that was parsed
//! PATH (line N of data.config): REASON   inside a ConfigMap whose config is not a `|` block
//! PATH: REASON                           when no line is known
//! ```
//!
//! PATH is the location inside the config document, e.g. `address-pools[2].addresses[0]`
//! (list indexes are 0-based); `<document>` is the document itself.

use std::fmt;

/// Where a problem is, as far as the parser knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// No line is known.
    Unknown,
    /// A line of the text that was parsed (the config text, or the whole manifest file).
    At(u32),
    /// A line inside the `data.config` string of a ConfigMap, used when the string is not a
    /// literal block (`config: |`) so file lines cannot be computed.
    InDataConfig(u32),
}

impl Line {
    pub(crate) fn from_node_line(line: u32) -> Line {
        if line == 0 {
            Line::Unknown
        } else {
            Line::At(line)
        }
    }

    /// The line number, whatever it is relative to.
    pub fn number(&self) -> Option<u32> {
        match self {
            Line::Unknown => None,
            Line::At(n) | Line::InDataConfig(n) => Some(*n),
        }
    }
}

/// One problem in a configuration: rejects the whole configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Path inside the config document, e.g. `peers[1].hold-time`.
    pub path: String,
    pub line: Line,
    /// Why it is wrong.
    pub message: String,
}

/// Something accepted but worth telling the operator about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub path: String,
    pub line: Line,
    pub message: String,
}

fn write_located(f: &mut fmt::Formatter<'_>, path: &str, line: Line, message: &str) -> fmt::Result {
    match line {
        Line::Unknown => write!(f, "{path}: {message}"),
        Line::At(n) => write!(f, "{path} (line {n}): {message}"),
        Line::InDataConfig(n) => write!(f, "{path} (line {n} of data.config): {message}"),
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_located(f, &self.path, self.line, &self.message)
    }
}

impl std::error::Error for ConfigError {}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_located(f, &self.path, self.line, &self.message)
    }
}

/// Every problem found in one configuration (never empty), in document order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_list(.errors))]
pub struct ConfigErrors {
    pub errors: Vec<ConfigError>,
    /// Warnings found before the configuration was rejected, so they are not lost.
    pub warnings: Vec<Warning>,
}

fn render_list(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl ConfigErrors {
    /// The errors, one per line.
    pub fn lines(&self) -> Vec<String> {
        self.errors.iter().map(ToString::to_string).collect()
    }

    pub(crate) fn map_lines(&mut self, f: impl Fn(Line) -> Line) {
        for e in &mut self.errors {
            e.line = f(e.line);
        }
        for w in &mut self.warnings {
            w.line = f(w.line);
        }
    }
}

/// Collects errors and warnings while the decoder walks the document.
#[derive(Debug, Default)]
pub(crate) struct Diagnostics {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<Warning>,
}

impl Diagnostics {
    pub fn error(&mut self, path: &str, line: u32, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path: path.to_string(),
            line: Line::from_node_line(line),
            message: message.into(),
        });
    }

    /// Puts errors and warnings in line order (stable; unknown lines last), so the report
    /// reads top to bottom even though cross-references are checked out of order.
    pub fn sort(&mut self) {
        let key = |l: &Line| l.number().unwrap_or(u32::MAX);
        self.errors.sort_by_key(|e| key(&e.line));
        self.warnings.sort_by_key(|w| key(&w.line));
    }

    pub fn warn(&mut self, path: &str, line: u32, message: impl Into<String>) {
        self.warnings.push(Warning {
            path: path.to_string(),
            line: Line::from_node_line(line),
            message: message.into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_formats() {
        let mut e = ConfigError {
            path: "address-pools[2].addresses[0]".into(),
            line: Line::At(14),
            message: "bad".into(),
        };
        assert_eq!(
            e.to_string(),
            "address-pools[2].addresses[0] (line 14): bad"
        );
        e.line = Line::InDataConfig(3);
        assert_eq!(
            e.to_string(),
            "address-pools[2].addresses[0] (line 3 of data.config): bad"
        );
        e.line = Line::Unknown;
        assert_eq!(e.to_string(), "address-pools[2].addresses[0]: bad");
    }
}
