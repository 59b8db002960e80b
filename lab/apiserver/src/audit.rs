//! A request audit log: what each client asked the server to do, in the terms of Kubernetes
//! authorization (verb, API group, resource, subresource, namespace, name).
//!
//! The lab server enforces no RBAC; recording requests lets a test replay every call a real
//! binary made against the RBAC rules in `manifests/` — so the rules are checked against what
//! the code does, not against what someone remembers it does. Requests are classified from
//! the URL alone (as the real API server's request-info resolver does, before routing), so a
//! call to a resource the lab does not serve is recorded too.

use std::collections::VecDeque;
use std::sync::Mutex;

use http::Method;

/// One request, as the Kubernetes authorizer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AuditRecord {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`
    /// for resource requests; the lowercase HTTP method for non-resource requests.
    pub verb: String,
    /// API group, `""` for core (`/api/v1`).
    pub api_group: String,
    /// Plural resource (`services`); empty for non-resource requests.
    pub resource: String,
    /// Subresource (`status`), empty if none.
    pub subresource: String,
    /// Namespace, empty for cluster-scoped or all-namespaces requests.
    pub namespace: String,
    /// Object name, empty for collection requests.
    pub name: String,
    /// The URL path of a non-resource request (`/version`, `/apis`); empty otherwise.
    pub non_resource_path: String,
    /// The client's User-Agent, to tell callers apart in failure messages.
    pub user_agent: String,
    /// The HTTP status code of the response (0 if it was not recorded).
    pub status: u16,
}

impl AuditRecord {
    /// Classify a request by method, URL path and query string (without the `?`), following
    /// the API server's `RequestInfoFactory`: `/api/v1/...` and `/apis/G/V/...` are resource
    /// requests, everything else (discovery, `/version`, health) is a non-resource request.
    pub fn classify(method: &Method, path: &str, query: Option<&str>) -> Self {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let (group, rest) = match segs.as_slice() {
            ["api", _v, rest @ ..] if !rest.is_empty() => ("", rest),
            ["apis", g, _v, rest @ ..] if !rest.is_empty() => (*g, rest),
            _ => return Self::non_resource(method, path),
        };
        // `/namespaces/NS/...` scopes the rest; `/namespaces` and `/namespaces/NS` (and its
        // subresources such as `/namespaces/NS/status`) are the namespaces resource itself.
        let (namespace, rest): (&str, &[&str]) = match rest {
            ["namespaces", ns, tail @ ..] if !tail.is_empty() && group.is_empty() => {
                // `/api/v1/namespaces/NS/status|finalize` are namespace subresources.
                if tail.len() == 1 && matches!(tail[0], "status" | "finalize") {
                    ("", rest)
                } else {
                    (ns, tail)
                }
            }
            ["namespaces", ns, tail @ ..] if !tail.is_empty() => (ns, tail),
            _ => ("", rest),
        };
        let (resource, name, subresource) = match rest {
            [r] => (*r, "", ""),
            [r, n] => (*r, *n, ""),
            [r, n, s, ..] => (*r, *n, *s),
            [] => ("", "", ""),
        };
        let watch = query.is_some_and(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
                .any(|(k, v)| k == "watch" && matches!(v, "1" | "true" | "True"))
        });
        let verb = match (method, name.is_empty()) {
            (&Method::GET | &Method::HEAD, _) if watch => "watch",
            (&Method::GET | &Method::HEAD, true) => "list",
            (&Method::GET | &Method::HEAD, false) => "get",
            (&Method::POST, _) => "create",
            (&Method::PUT, _) => "update",
            (&Method::PATCH, _) => "patch",
            (&Method::DELETE, true) => "deletecollection",
            (&Method::DELETE, false) => "delete",
            (m, _) => return Self::non_resource(m, path),
        };
        Self {
            verb: verb.to_string(),
            api_group: group.to_string(),
            resource: resource.to_string(),
            subresource: subresource.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            non_resource_path: String::new(),
            user_agent: String::new(),
            status: 0,
        }
    }

    fn non_resource(method: &Method, path: &str) -> Self {
        Self {
            verb: method.as_str().to_ascii_lowercase(),
            api_group: String::new(),
            resource: String::new(),
            subresource: String::new(),
            namespace: String::new(),
            name: String::new(),
            non_resource_path: path.to_string(),
            user_agent: String::new(),
            status: 0,
        }
    }

    /// True for `/api/...` and `/apis/G/V/...` object requests.
    pub fn is_resource_request(&self) -> bool {
        self.non_resource_path.is_empty()
    }

    /// `resource` or `resource/subresource`, as RBAC rules spell it.
    pub fn resource_path(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// How many records are kept; older ones are dropped so a long-running lab server
/// (`ferrolb-lab apiserver`) does not grow without bound. Tests stay far below this.
pub const AUDIT_LIMIT: usize = 200_000;

/// The server's request log (the newest [`AUDIT_LIMIT`] requests).
#[derive(Debug)]
pub struct AuditLog {
    records: Mutex<VecDeque<AuditRecord>>,
    limit: usize,
}

impl Default for AuditLog {
    fn default() -> Self {
        Self::with_limit(AUDIT_LIMIT)
    }
}

impl AuditLog {
    /// A log keeping at most `limit` records.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            records: Mutex::new(VecDeque::new()),
            limit,
        }
    }

    /// Append one record, dropping the oldest beyond the limit.
    pub fn push(&self, rec: AuditRecord) {
        // A panicked holder cannot leave the deque half-updated; keep recording.
        let mut g = self.records.lock().unwrap_or_else(|p| p.into_inner());
        g.push_back(rec);
        while g.len() > self.limit {
            g.pop_front();
        }
    }

    /// A copy of every kept record, in arrival order.
    pub fn snapshot(&self) -> Vec<AuditRecord> {
        let g = self.records.lock().unwrap_or_else(|p| p.into_inner());
        g.iter().cloned().collect()
    }

    /// Forget every record (e.g. after a test's own setup calls).
    pub fn clear(&self) {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(m: Method, path: &str, q: Option<&str>) -> (String, String, String, String, String) {
        let r = AuditRecord::classify(&m, path, q);
        let rp = r.resource_path();
        (r.verb, r.api_group, rp, r.namespace, r.name)
    }

    fn t(v: &str, g: &str, r: &str, ns: &str, n: &str) -> (String, String, String, String, String) {
        (v.into(), g.into(), r.into(), ns.into(), n.into())
    }

    #[test]
    fn verbs_follow_kubernetes_authorization() {
        assert_eq!(
            c(Method::GET, "/api/v1/services", None),
            t("list", "", "services", "", "")
        );
        assert_eq!(
            c(
                Method::GET,
                "/api/v1/services",
                Some("watch=true&resourceVersion=5")
            ),
            t("watch", "", "services", "", "")
        );
        assert_eq!(
            c(Method::GET, "/api/v1/services", Some("watch=false")),
            t("list", "", "services", "", "")
        );
        assert_eq!(
            c(
                Method::GET,
                "/api/v1/namespaces/a/configmaps",
                Some("fieldSelector=metadata.name%3Dconfig&watch=1")
            ),
            t("watch", "", "configmaps", "a", "")
        );
        assert_eq!(
            c(
                Method::GET,
                "/apis/coordination.k8s.io/v1/namespaces/m/leases/l",
                None
            ),
            t("get", "coordination.k8s.io", "leases", "m", "l")
        );
        assert_eq!(
            c(Method::POST, "/api/v1/namespaces/m/events", None),
            t("create", "", "events", "m", "")
        );
        assert_eq!(
            c(
                Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/m/leases/l",
                None
            ),
            t("update", "coordination.k8s.io", "leases", "m", "l")
        );
        assert_eq!(
            c(
                Method::PATCH,
                "/api/v1/namespaces/d/services/web/status",
                None
            ),
            t("patch", "", "services/status", "d", "web")
        );
        assert_eq!(
            c(Method::DELETE, "/api/v1/namespaces/d/services/web", None),
            t("delete", "", "services", "d", "web")
        );
        assert_eq!(
            c(Method::DELETE, "/api/v1/namespaces/d/services", None),
            t("deletecollection", "", "services", "d", "")
        );
        assert_eq!(
            c(Method::GET, "/api/v1/nodes/n1", None),
            t("get", "", "nodes", "", "n1")
        );
    }

    #[test]
    fn namespaces_are_a_cluster_resource() {
        assert_eq!(
            c(Method::GET, "/api/v1/namespaces/metallb-system", None),
            t("get", "", "namespaces", "", "metallb-system")
        );
        assert_eq!(
            c(Method::PUT, "/api/v1/namespaces/x/status", None),
            t("update", "", "namespaces/status", "", "x")
        );
        assert_eq!(
            c(Method::POST, "/api/v1/namespaces", None),
            t("create", "", "namespaces", "", "")
        );
    }

    #[test]
    fn discovery_is_non_resource() {
        for p in [
            "/api",
            "/api/v1",
            "/apis",
            "/apis/apps/v1",
            "/version",
            "/healthz",
        ] {
            let r = AuditRecord::classify(&Method::GET, p, None);
            assert!(!r.is_resource_request(), "{p}");
            assert_eq!(r.non_resource_path, p);
            assert_eq!(r.verb, "get");
        }
    }

    #[test]
    fn log_records_in_order_and_clears() {
        let log = AuditLog::default();
        log.push(AuditRecord::classify(&Method::GET, "/api/v1/nodes", None));
        log.push(AuditRecord::classify(&Method::POST, "/api/v1/nodes", None));
        let s = log.snapshot();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].verb, "list");
        assert_eq!(s[1].verb, "create");
        log.clear();
        assert!(log.snapshot().is_empty());
    }

    #[test]
    fn log_keeps_only_the_newest_records() {
        let log = AuditLog::with_limit(2);
        for p in ["/api/v1/nodes/a", "/api/v1/nodes/b", "/api/v1/nodes/c"] {
            log.push(AuditRecord::classify(&Method::GET, p, None));
        }
        let names: Vec<String> = log.snapshot().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["b", "c"]);
    }

    /// The hook in the server records real requests with their response status.
    #[tokio::test]
    async fn server_records_requests() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let server = crate::ApiServer::start().await.expect("start");
        for req in [
            "GET /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\nUser-Agent: audit-test/1\r\nConnection: close\r\n\r\n",
            "GET /api/v1/nodes/missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ] {
            let mut s = tokio::net::TcpStream::connect(server.addr())
                .await
                .expect("connect");
            s.write_all(req.as_bytes()).await.expect("write");
            let mut out = Vec::new();
            s.read_to_end(&mut out).await.expect("read");
        }
        let log = server.audit();
        assert_eq!(log.len(), 2, "{log:?}");
        assert_eq!(
            (
                log[0].verb.as_str(),
                log[0].resource.as_str(),
                log[0].namespace.as_str()
            ),
            ("list", "configmaps", "default")
        );
        assert_eq!(log[0].status, 200);
        assert_eq!(log[0].user_agent, "audit-test/1");
        assert_eq!(
            (log[1].verb.as_str(), log[1].name.as_str()),
            ("get", "missing")
        );
        assert_eq!(log[1].status, 404);
        server.clear_audit();
        assert!(server.audit().is_empty());
    }
}
