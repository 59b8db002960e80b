//! kube-apiserver's audit log (`audit.k8s.io/v1` Events, one JSON object per line) read as
//! data: who asked for what, and what the server answered.

use std::path::Path;

use serde::Deserialize;

/// One request as the audit log records it (stage `ResponseStarted` or
/// `ResponseComplete`; a watch has both).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// Unique per request (shared by its stages).
    #[serde(rename = "auditID", default)]
    pub audit_id: String,
    /// `ResponseStarted`, `ResponseComplete`, `Panic`.
    #[serde(default)]
    pub stage: String,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, ...
    #[serde(default)]
    pub verb: String,
    /// The path and query.
    #[serde(rename = "requestURI", default)]
    pub request_uri: String,
    /// Who made it.
    #[serde(default)]
    pub user: User,
    /// The client's User-Agent header.
    #[serde(default)]
    pub user_agent: String,
    /// The object, for resource requests.
    #[serde(default)]
    pub object_ref: Option<ObjectRef>,
    /// The answer.
    #[serde(default)]
    pub response_status: Option<ResponseStatus>,
}

/// `user`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct User {
    /// e.g. `system:serviceaccount:metallb-system:controller`.
    #[serde(default)]
    pub username: String,
    /// Groups.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// `objectRef`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// Resource (plural).
    #[serde(default)]
    pub resource: String,
    /// Subresource (`status`, `token`).
    #[serde(default)]
    pub subresource: String,
    /// Namespace (empty for cluster-scoped and all-namespaces requests).
    #[serde(default)]
    pub namespace: String,
    /// Object name (empty for list, watch, create).
    #[serde(default)]
    pub name: String,
    /// API group (empty for core).
    #[serde(default)]
    pub api_group: String,
}

/// `responseStatus`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ResponseStatus {
    /// HTTP status.
    #[serde(default)]
    pub code: u16,
    /// Reason (for errors).
    #[serde(default)]
    pub reason: String,
    /// Message (for errors).
    #[serde(default)]
    pub message: String,
}

impl AuditEvent {
    /// The HTTP status (0 if the log has none).
    pub fn code(&self) -> u16 {
        self.response_status.as_ref().map_or(0, |s| s.code)
    }

    /// The path without the query, for non-resource requests (`/api`, `/version`, ...).
    pub fn path(&self) -> &str {
        self.request_uri
            .split_once('?')
            .map_or(self.request_uri.as_str(), |(p, _)| p)
    }
}

/// Every event in `path` (unreadable lines are skipped; a missing file is empty).
pub fn read_log(path: &Path) -> Vec<AuditEvent> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    parse(&text)
}

/// Parses audit log lines.
pub fn parse(text: &str) -> Vec<AuditEvent> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<AuditEvent>(l).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_upstream_audit_line() {
        let line = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a1","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/services/web/status?fieldManager=x","verb":"patch","user":{"username":"system:serviceaccount:metallb-system:controller","uid":"u","groups":["system:serviceaccounts","system:authenticated"]},"sourceIPs":["127.0.0.1"],"userAgent":"ferrolb-controller/0.1.0","objectRef":{"resource":"services","namespace":"default","name":"web","apiVersion":"v1","subresource":"status"},"responseStatus":{"metadata":{},"code":200}}"#;
        let evs = parse(&format!("{line}\nnot json\n"));
        assert_eq!(evs.len(), 1);
        let e = &evs[0];
        assert_eq!(e.verb, "patch");
        assert_eq!(e.code(), 200);
        assert_eq!(
            e.user.username,
            "system:serviceaccount:metallb-system:controller"
        );
        let o = e.object_ref.as_ref().unwrap();
        assert_eq!(
            (o.resource.as_str(), o.subresource.as_str()),
            ("services", "status")
        );
        assert_eq!(e.path(), "/api/v1/namespaces/default/services/web/status");
    }
}
