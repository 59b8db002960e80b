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
//! (list indexes are 0-based); `<document>` is the document itself. For a custom resource
//! (the CRD source, `ferrolb-crds`) it is the object and the field inside it:
//!
//! ```text
//! KIND/NAME FIELD: REASON                IPAddressPool/first-pool spec.addresses[0]: ...
//! KIND/NAME: REASON                      about the object as a whole
//! ```

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

/// The custom resource a problem is about (CRD source only).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    /// `IPAddressPool`, `BGPPeer`, ...
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// One problem in a configuration: rejects the whole configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The custom resource, when the configuration came from CRs (`None` for the ConfigMap).
    pub object: Option<ObjectRef>,
    /// Path inside the config document, e.g. `peers[1].hold-time`; for a CR the field path
    /// inside the object (`spec.addresses[0]`), empty for the object as a whole.
    pub path: String,
    pub line: Line,
    /// Why it is wrong.
    pub message: String,
}

/// Something accepted but worth telling the operator about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// As [`ConfigError::object`].
    pub object: Option<ObjectRef>,
    pub path: String,
    pub line: Line,
    pub message: String,
}

fn write_located(
    f: &mut fmt::Formatter<'_>,
    object: Option<&ObjectRef>,
    path: &str,
    line: Line,
    message: &str,
) -> fmt::Result {
    if let Some(o) = object {
        return if path.is_empty() {
            write!(f, "{o}: {message}")
        } else {
            write!(f, "{o} {path}: {message}")
        };
    }
    match line {
        Line::Unknown => write!(f, "{path}: {message}"),
        Line::At(n) => write!(f, "{path} (line {n}): {message}"),
        Line::InDataConfig(n) => write!(f, "{path} (line {n} of data.config): {message}"),
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_located(
            f,
            self.object.as_ref(),
            &self.path,
            self.line,
            &self.message,
        )
    }
}

impl ConfigError {
    /// A problem in a custom resource: `KIND/NAME PATH: MESSAGE`.
    pub fn on_object(
        object: ObjectRef,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError {
            object: Some(object),
            path: path.into(),
            line: Line::Unknown,
            message: message.into(),
        }
    }
}

impl Warning {
    /// A warning about a custom resource: `KIND/NAME PATH: MESSAGE`.
    pub fn on_object(
        object: ObjectRef,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Warning {
            object: Some(object),
            path: path.into(),
            line: Line::Unknown,
            message: message.into(),
        }
    }
}

impl std::error::Error for ConfigError {}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_located(
            f,
            self.object.as_ref(),
            &self.path,
            self.line,
            &self.message,
        )
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
            object: None,
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
            object: None,
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
            object: None,
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
        let object = ObjectRef {
            kind: "IPAddressPool".into(),
            name: "first-pool".into(),
        };
        let cr = ConfigError::on_object(object.clone(), "spec.addresses[0]", "bad");
        assert_eq!(
            cr.to_string(),
            "IPAddressPool/first-pool spec.addresses[0]: bad"
        );
        let whole = Warning::on_object(object, "", "odd");
        assert_eq!(whole.to_string(), "IPAddressPool/first-pool: odd");
    }
}
