//! What an Event says, as plain data: the pure cores build these (no Kubernetes client
//! here), the writer ([`super::spawn`]) turns them into core/v1 Events.

/// Event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    /// `Normal`.
    Normal,
    /// `Warning`.
    Warning,
}

impl Severity {
    /// The `type` field's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Normal => "Normal",
            Severity::Warning => "Warning",
        }
    }
}

/// The object an Event is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Regarding {
    /// `Service`, `ConfigMap`, `IPAddressPool`, ... ([`api_version`] gives its group).
    pub kind: &'static str,
    /// Namespace (the Event is written there).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID, if known.
    pub uid: Option<String>,
}

/// One occurrence to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpec {
    /// What it is about.
    pub regarding: Regarding,
    /// Normal or Warning.
    pub severity: Severity,
    /// `IPAllocated`, `nodeAssigned`, ...
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
}
