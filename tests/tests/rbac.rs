//! The RBAC rules in `manifests/` cover every API call the binaries make — checked from what
//! the code does, not by hand (issue 5, item 2), on both API servers (issue 11).
//!
//! Each component's real binary runs through a scenario that drives its code paths:
//!
//! - against a fresh **lab API server** ([`ferrolb_apiserver`], which records every request
//!   as the Kubernetes authorizer would see it: verb, group, resource/subresource,
//!   namespace, name), with a kubeconfig that is not authorized at all;
//! - against the **real kube-apiserver** ([`ferrolb_kubeapi`]) with `manifests/namespace.yaml`,
//!   `rbac-*.yaml` and `before-1.29/flowcontrol.yaml` (v1.28 serves FlowSchemas as v1beta3)
//!   applied, the binary authenticating with its ServiceAccount's token (TokenRequest):
//!   RBAC is enforced by the server itself, any 403 fails the test, and its audit log
//!   provides the requests.
//!
//! Every recorded request is then evaluated against the Roles, ClusterRoles and bindings of
//! `manifests/rbac-*.yaml` for that component's ServiceAccount, with Kubernetes RBAC
//! semantics. The reverse is checked too: every (group, resource, verb) the manifests grant
//! must have been used by the scenario, so the manifests stay least-privilege.
//!
//! Binaries come from `ferrolb_lab::testing::bin_dir()` (built on first use; see there).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ferrolb_apiserver::AuditRecord;
use ferrolb_kubeapi::{AuditEvent, TestApi};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Service};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

const NAMESPACE: &str = "metallb-system";

// ---------------------------------------------------------------------------------------
// The RBAC evaluator
// ---------------------------------------------------------------------------------------

/// A ServiceAccount as `namespace:name`.
type Account = String;

/// One rule as bound to an account: where it applies and which role it came from.
#[derive(Debug, Clone)]
struct Grant {
    /// `None`: everywhere (ClusterRoleBinding); `Some(ns)`: only in `ns` (RoleBinding).
    scope: Option<String>,
    /// `ClusterRole/NAME` or `Role/NS/NAME`, for messages.
    role: String,
    rule: PolicyRule,
}

/// What a request asks for, in authorizer terms.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Request {
    verb: String,
    group: String,
    /// `resource` or `resource/subresource`.
    resource: String,
    /// Empty for cluster-scoped and all-namespaces requests.
    namespace: String,
    name: String,
}

/// One request a binary made, as the authorizer sees it, with the server's answer.
#[derive(Debug, Clone)]
struct Call {
    /// `None` for a non-resource request (discovery, `/version`).
    resource: Option<Request>,
    verb: String,
    /// The URL path of a non-resource request.
    path: String,
    status: u16,
    user_agent: String,
}

impl Call {
    /// From the lab API server's audit log.
    fn from_lab(r: &AuditRecord) -> Self {
        Call {
            resource: r.is_resource_request().then(|| Request {
                verb: r.verb.clone(),
                group: r.api_group.clone(),
                resource: r.resource_path(),
                namespace: r.namespace.clone(),
                name: r.name.clone(),
            }),
            verb: r.verb.clone(),
            path: r.non_resource_path.clone(),
            status: r.status,
            user_agent: r.user_agent.clone(),
        }
    }

    /// From kube-apiserver's audit log.
    fn from_real(e: &AuditEvent) -> Self {
        Call {
            resource: e.object_ref.as_ref().map(|o| Request {
                verb: e.verb.clone(),
                group: o.api_group.clone(),
                resource: if o.subresource.is_empty() {
                    o.resource.clone()
                } else {
                    format!("{}/{}", o.resource, o.subresource)
                },
                namespace: o.namespace.clone(),
                name: o.name.clone(),
            }),
            verb: e.verb.clone(),
            path: e.path().to_string(),
            status: e.code(),
            user_agent: e.user_agent.clone(),
        }
    }
}

/// (role, group, resource, verb): one permission a role grants.
type Permission = (String, String, String, String);

/// The Roles, ClusterRoles and bindings of a set of manifests.
#[derive(Debug, Default, Clone)]
struct Rbac {
    grants: BTreeMap<Account, Vec<Grant>>,
}

fn has(list: &[String], want: &str) -> bool {
    list.iter().any(|x| x == "*" || x == want)
}

/// A rule's `resources` entry matches `resource[/subresource]` exactly, by `*` (every
/// resource and subresource, as upstream's `ResourceMatches`), or by `*/sub` (that
/// subresource of any resource).
fn resource_matches(entry: &str, want: &str) -> bool {
    if entry == "*" || entry == want {
        return true;
    }
    match (entry.split_once('/'), want.split_once('/')) {
        (Some(("*", sub)), Some((_, want_sub))) => sub == want_sub,
        _ => false,
    }
}

fn rule_allows(rule: &PolicyRule, req: &Request) -> bool {
    let groups = rule.api_groups.as_deref().unwrap_or_default();
    let resources = rule.resources.as_deref().unwrap_or_default();
    let names = rule.resource_names.as_deref().unwrap_or_default();
    has(&rule.verbs, &req.verb)
        && has(groups, &req.group)
        && resources.iter().any(|e| resource_matches(e, &req.resource))
        // resourceNames restrict to named objects; a request without a name (list, watch
        // without a metadata.name field selector, create) never matches them.
        && (names.is_empty() || names.iter().any(|n| n == &req.name))
}

impl Rbac {
    /// Parse every document of `texts` (multi-document YAML).
    fn parse(texts: &[(&str, String)]) -> Result<Self> {
        let mut cluster_roles: BTreeMap<String, Vec<PolicyRule>> = BTreeMap::new();
        let mut roles: BTreeMap<(String, String), Vec<PolicyRule>> = BTreeMap::new();
        let mut cluster_bindings = Vec::new();
        let mut bindings = Vec::new();
        for (file, text) in texts {
            let docs: Vec<Value> = serde_saphyr::from_multiple(text)
                .with_context(|| format!("{file}: not valid YAML"))?;
            for doc in docs {
                if doc.is_null() {
                    continue;
                }
                let kind = doc["kind"].as_str().unwrap_or_default().to_string();
                let ctx = || format!("{file}: {kind} {}", doc["metadata"]["name"]);
                match kind.as_str() {
                    "ClusterRole" => {
                        let r: ClusterRole =
                            serde_json::from_value(doc.clone()).with_context(ctx)?;
                        let name = r.metadata.name.clone().with_context(ctx)?;
                        cluster_roles.insert(name, r.rules.unwrap_or_default());
                    }
                    "Role" => {
                        let r: Role = serde_json::from_value(doc.clone()).with_context(ctx)?;
                        let name = r.metadata.name.clone().with_context(ctx)?;
                        let ns = r.metadata.namespace.clone().with_context(ctx)?;
                        roles.insert((ns, name), r.rules.unwrap_or_default());
                    }
                    "ClusterRoleBinding" => cluster_bindings.push(
                        serde_json::from_value::<ClusterRoleBinding>(doc.clone())
                            .with_context(ctx)?,
                    ),
                    "RoleBinding" => bindings.push(
                        serde_json::from_value::<RoleBinding>(doc.clone()).with_context(ctx)?,
                    ),
                    _ => {}
                }
            }
        }
        let mut rbac = Self::default();
        let accounts = |subjects: &[k8s_openapi::api::rbac::v1::Subject], binding_ns: &str| {
            subjects
                .iter()
                .filter(|s| s.kind == "ServiceAccount")
                .map(|s| {
                    // A ServiceAccount subject without a namespace means the binding's own.
                    let ns = s.namespace.as_deref().unwrap_or(binding_ns);
                    format!("{ns}:{}", s.name)
                })
                .collect::<Vec<_>>()
        };
        for b in &cluster_bindings {
            ensure!(
                b.role_ref.kind == "ClusterRole",
                "ClusterRoleBinding {:?} must reference a ClusterRole",
                b.metadata.name
            );
            let rules = cluster_roles
                .get(&b.role_ref.name)
                .with_context(|| format!("ClusterRole {} not found", b.role_ref.name))?;
            for sa in accounts(b.subjects.as_deref().unwrap_or_default(), "") {
                for rule in rules {
                    rbac.grants.entry(sa.clone()).or_default().push(Grant {
                        scope: None,
                        role: format!("ClusterRole/{}", b.role_ref.name),
                        rule: rule.clone(),
                    });
                }
            }
        }
        for b in &bindings {
            let ns =
                b.metadata.namespace.clone().with_context(|| {
                    format!("RoleBinding {:?} has no namespace", b.metadata.name)
                })?;
            let (role, rules) = match b.role_ref.kind.as_str() {
                // A RoleBinding to a ClusterRole grants its rules in the binding's namespace.
                "ClusterRole" => (
                    format!("ClusterRole/{}", b.role_ref.name),
                    cluster_roles.get(&b.role_ref.name),
                ),
                "Role" => (
                    format!("Role/{ns}/{}", b.role_ref.name),
                    roles.get(&(ns.clone(), b.role_ref.name.clone())),
                ),
                other => bail!("RoleBinding references unknown kind {other}"),
            };
            let rules = rules.with_context(|| format!("{role} not found"))?;
            for sa in accounts(b.subjects.as_deref().unwrap_or_default(), &ns) {
                for rule in rules {
                    rbac.grants.entry(sa.clone()).or_default().push(Grant {
                        scope: Some(ns.clone()),
                        role: role.clone(),
                        rule: rule.clone(),
                    });
                }
            }
        }
        Ok(rbac)
    }

    /// A copy where `sa` loses every rule naming `resource` (to prove the check bites).
    fn without(&self, sa: &str, resource: &str) -> Self {
        let mut out = self.clone();
        if let Some(gs) = out.grants.get_mut(sa) {
            gs.retain(|g| !g.rule.resources.iter().flatten().any(|r| r == resource));
        }
        out
    }

    /// The grants of `sa` that allow `req` (empty: denied).
    fn allowing(&self, sa: &str, req: &Request) -> Vec<&Grant> {
        self.grants
            .get(sa)
            .into_iter()
            .flatten()
            .filter(|g| match &g.scope {
                None => true,
                // A RoleBinding never grants cluster-scoped or all-namespaces requests.
                Some(ns) => !req.namespace.is_empty() && &req.namespace == ns,
            })
            .filter(|g| rule_allows(&g.rule, req))
            .collect()
    }

    fn allowed(&self, sa: &str, req: &Request) -> bool {
        !self.allowing(sa, req).is_empty()
    }

    /// Every (role, group, resource, verb) bound to `sa`.
    fn permissions(&self, sa: &str) -> BTreeSet<Permission> {
        let mut out = BTreeSet::new();
        for g in self.grants.get(sa).into_iter().flatten() {
            for group in g.rule.api_groups.iter().flatten() {
                for res in g.rule.resources.iter().flatten() {
                    for verb in &g.rule.verbs {
                        out.insert((g.role.clone(), group.clone(), res.clone(), verb.clone()));
                    }
                }
            }
        }
        out
    }

    /// The permissions of `sa` that some request in `reqs` exercised.
    fn used(&self, sa: &str, reqs: &[Request]) -> BTreeSet<Permission> {
        let mut out = BTreeSet::new();
        for req in reqs {
            for g in self.allowing(sa, req) {
                for group in g.rule.api_groups.iter().flatten() {
                    for res in g.rule.resources.iter().flatten() {
                        for verb in &g.rule.verbs {
                            if (group == "*" || *group == req.group)
                                && resource_matches(res, &req.resource)
                                && (verb == "*" || *verb == req.verb)
                            {
                                out.insert((
                                    g.role.clone(),
                                    group.clone(),
                                    res.clone(),
                                    verb.clone(),
                                ));
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

/// Non-resource URLs every authenticated client may GET on a real cluster (the default
/// `system:discovery` and `system:public-info-viewer` ClusterRoles, bound to
/// `system:authenticated`), so discovery needs nothing in our manifests.
fn default_non_resource_allowed(r: &Call) -> bool {
    let p = r.path.trim_end_matches('/');
    r.verb == "get"
        && (matches!(
            p,
            "/api" | "/apis" | "/version" | "/healthz" | "/livez" | "/readyz" | "/openapi"
        ) || p.starts_with("/api/")
            || p.starts_with("/apis/")
            || p.starts_with("/openapi/"))
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn manifest_rbac() -> Result<Rbac> {
    let dir = repo_root().join("manifests");
    let mut texts = Vec::new();
    for f in ["rbac-controller.yaml", "rbac-speaker.yaml"] {
        let t = std::fs::read_to_string(dir.join(f)).with_context(|| format!("reading {f}"))?;
        texts.push((f, t));
    }
    Rbac::parse(&texts)
}

fn req(verb: &str, group: &str, resource: &str, ns: &str, name: &str) -> Request {
    Request {
        verb: verb.into(),
        group: group.into(),
        resource: resource.into(),
        namespace: ns.into(),
        name: name.into(),
    }
}

#[test]
fn evaluator_follows_kubernetes_semantics() -> Result<()> {
    let yaml = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: reader}
rules:
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list"]
- apiGroups: ["apps"]
  resources: ["*/scale"]
  verbs: ["update"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: reader}
subjects: [{kind: ServiceAccount, name: a, namespace: ns1}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: cm, namespace: ns1}
rules:
- apiGroups: [""]
  resources: ["configmaps"]
  resourceNames: ["config"]
  verbs: ["get", "update"]
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["get"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: cm, namespace: ns1}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: cm}
subjects: [{kind: ServiceAccount, name: a}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader-in-ns2, namespace: ns2}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: reader}
subjects: [{kind: ServiceAccount, name: b, namespace: ns1}]
"#;
    let rbac = Rbac::parse(&[("inline", yaml.to_string())])?;
    let a = "ns1:a";
    let b = "ns1:b";
    // ClusterRoleBinding: everywhere, including all-namespaces lists.
    assert!(rbac.allowed(a, &req("list", "", "services", "", "")));
    assert!(rbac.allowed(a, &req("get", "", "services", "x", "s")));
    // Denials: verb, group, subresource not covered by its resource.
    assert!(!rbac.allowed(a, &req("watch", "", "services", "", "")));
    assert!(!rbac.allowed(a, &req("get", "apps", "services", "x", "s")));
    assert!(!rbac.allowed(a, &req("get", "", "services/status", "x", "s")));
    // `*/scale` matches any resource's scale subresource, not the resource itself.
    assert!(rbac.allowed(a, &req("update", "apps", "deployments/scale", "x", "d")));
    assert!(!rbac.allowed(a, &req("update", "apps", "deployments", "x", "d")));
    // RoleBinding: only its namespace; resourceNames restrict to the named object.
    assert!(rbac.allowed(a, &req("get", "", "configmaps", "ns1", "config")));
    assert!(!rbac.allowed(a, &req("get", "", "configmaps", "ns1", "other")));
    assert!(!rbac.allowed(a, &req("get", "", "configmaps", "ns2", "config")));
    assert!(!rbac.allowed(a, &req("list", "", "configmaps", "ns1", "")));
    // A cluster-scoped resource is never granted by a RoleBinding.
    assert!(!rbac.allowed(a, &req("get", "", "nodes", "", "n1")));
    // A RoleBinding to a ClusterRole grants its rules in that namespace only.
    assert!(rbac.allowed(b, &req("list", "", "services", "ns2", "")));
    assert!(!rbac.allowed(b, &req("list", "", "services", "", "")));
    assert!(!rbac.allowed(b, &req("list", "", "services", "ns1", "")));
    // Unknown accounts get nothing.
    assert!(!rbac.allowed("ns1:c", &req("list", "", "services", "", "")));
    // Usage: which permissions a set of requests exercised.
    let used = rbac.used(a, &[req("list", "", "services", "", "")]);
    assert_eq!(
        used,
        BTreeSet::from([(
            "ClusterRole/reader".to_string(),
            String::new(),
            "services".to_string(),
            "list".to_string()
        )])
    );
    assert_eq!(rbac.permissions(a).len(), 2 + 1 + 2 + 1);
    Ok(())
}

#[test]
fn manifests_bind_both_accounts() -> Result<()> {
    let rbac = manifest_rbac()?;
    for sa in ["controller", "speaker"] {
        let account = format!("{NAMESPACE}:{sa}");
        ensure!(
            !rbac.permissions(&account).is_empty(),
            "{account} has no rules bound"
        );
    }
    // The speaker may not write Service status; the controller may not read Secrets (it
    // needs no BGP passwords), the speaker only in metallb-system.
    let speaker = format!("{NAMESPACE}:speaker");
    let controller = format!("{NAMESPACE}:controller");
    assert!(!rbac.allowed(&speaker, &req("patch", "", "services/status", "d", "web")));
    assert!(!rbac.allowed(&controller, &req("list", "", "secrets", NAMESPACE, "")));
    assert!(rbac.allowed(&speaker, &req("list", "", "secrets", NAMESPACE, "")));
    assert!(!rbac.allowed(&speaker, &req("list", "", "secrets", "default", "")));
    // The ConfigMap is readable only in metallb-system.
    assert!(rbac.allowed(&speaker, &req("watch", "", "configmaps", NAMESPACE, "")));
    assert!(!rbac.allowed(&speaker, &req("watch", "", "configmaps", "default", "")));
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The world and the binaries
// ---------------------------------------------------------------------------------------

/// The User-Agent of this test's own client, so its calls are told apart from the binary's
/// on the lab server (which authenticates nobody).
const TEST_AGENT: &str = "ferrolb-rbac-test";

/// The API server of one scenario, with the manifests applied where they mean something.
struct World {
    api: TestApi,
    kube: kube::Client,
    dir: tempfile::TempDir,
    /// Audit entries before this index belong to the setup.
    audit_from: usize,
}

impl World {
    async fn new(api: TestApi) -> Result<World> {
        let mut cfg = api.admin_config().await;
        cfg.headers.push((
            http::header::USER_AGENT,
            http::HeaderValue::from_static(TEST_AGENT),
        ));
        let kube = kube::Client::try_from(cfg)?;
        if api.is_real() {
            // The real thing: the manifests' Namespace, ServiceAccounts, RBAC and FlowSchema.
            ferrolb_kubeapi::apply::apply_rbac_manifests(&kube, TEST_AGENT).await?;
            // And the metallb.io CRDs, so the binaries watch them (and write pool status).
            ferrolb_kubeapi::apply::apply_crd_manifests(&kube, TEST_AGENT).await?;
        } else {
            create(
                &kube,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
            )
            .await?;
        }
        Ok(World {
            api,
            kube,
            dir: tempfile::tempdir()?,
            audit_from: 0,
        })
    }

    /// The kubeconfig the binary of ServiceAccount `sa` runs with: its own token on the real
    /// server, the (unauthorizing) lab server's otherwise.
    async fn kubeconfig(&self, sa: &str) -> Result<PathBuf> {
        let path = self.dir.path().join(format!("kubeconfig-{sa}"));
        std::fs::write(
            &path,
            self.api.service_account_kubeconfig(NAMESPACE, sa).await,
        )?;
        Ok(path)
    }

    /// Forget what was recorded so far (the setup's calls).
    fn clear_audit(&mut self) {
        match (self.api.lab_server(), self.api.real_server()) {
            (Some(lab), _) => lab.clear_audit(),
            (_, Some(real)) => self.audit_from = real.audit().len(),
            _ => {}
        }
    }

    /// The calls ServiceAccount `sa`'s binary made since [`Self::clear_audit`].
    fn binary_calls(&self, sa: &str) -> Vec<Call> {
        match (self.api.lab_server(), self.api.real_server()) {
            (Some(lab), _) => lab
                .audit()
                .iter()
                .filter(|r| r.user_agent != TEST_AGENT)
                .map(Call::from_lab)
                .collect(),
            (_, Some(real)) => {
                let user = format!("system:serviceaccount:{NAMESPACE}:{sa}");
                real.audit()
                    .iter()
                    .skip(self.audit_from)
                    .filter(|e| e.user.username == user)
                    .map(Call::from_real)
                    .collect()
            }
            _ => Vec::new(),
        }
    }
}

/// Create an object of any served type from JSON.
async fn create(client: &kube::Client, obj: Value) -> Result<()> {
    let api_version = obj["apiVersion"]
        .as_str()
        .context("apiVersion")?
        .to_string();
    let kind = obj["kind"].as_str().context("kind")?.to_string();
    let (group, version) = api_version
        .split_once('/')
        .unwrap_or(("", api_version.as_str()));
    let plural = match kind.as_str() {
        "EndpointSlice" => "endpointslices".to_string(),
        k => format!("{}s", k.to_lowercase()),
    };
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, &kind), &plural);
    let dynobj: DynamicObject = serde_json::from_value(obj.clone())?;
    let api: Api<DynamicObject> = match obj["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    api.create(&PostParams::default(), &dynobj)
        .await
        .with_context(|| format!("creating {kind} {}", obj["metadata"]["name"]))?;
    Ok(())
}

/// The shipped example ConfigMap (`manifests/config.yaml`).
fn shipped_config() -> Result<Value> {
    let text = std::fs::read_to_string(repo_root().join("manifests/config.yaml"))?;
    let v: Value = serde_saphyr::from_str(&text)?;
    Ok(v)
}

fn lb_service(name: &str, annotations: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "annotations": annotations},
        "spec": {"type": "LoadBalancer", "selector": {"app": name},
                 "allocateLoadBalancerNodePorts": false,
                 "ports": [{"port": 80, "targetPort": 8080}]}
    })
}

/// The world both components see: the ConfigMap, a Node, a LoadBalancer Service and its
/// EndpointSlice with a ready endpoint on that Node.
async fn seed(client: &kube::Client, node: &str) -> Result<()> {
    create(client, shipped_config()?).await?;
    create(
        client,
        json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node, "labels": {"kubernetes.io/hostname": node}},
            "spec": {"podCIDR": "10.244.1.0/24"},
            "status": {
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                "conditions": [{"type": "Ready", "status": "True"}]
            }
        }),
    )
    .await?;
    create(client, lb_service("web", json!({}))).await?;
    create(
        client,
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-abcde", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.244.1.5"], "nodeName": node,
                           "conditions": {"ready": true}}],
            "ports": [{"port": 8080, "protocol": "TCP"}]
        }),
    )
    .await?;
    Ok(())
}

/// A running binary; killed if the test fails before it exits, its log kept for messages.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(bin: &str, args: &[String], dir: &Path) -> Result<Self> {
        let path = ferrolb_lab::testing::bin_dir()?.join(bin);
        let log = dir.join(format!("{bin}.log"));
        let out = std::fs::File::create(&log)?;
        let child = Command::new(&path)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .with_context(|| format!("spawning {}", path.display()))?;
        Ok(Self { child, log })
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// SIGTERM and wait for a clean exit.
    async fn terminate(&mut self) -> Result<()> {
        let pid = i32::try_from(self.child.id())?;
        // SAFETY: plain kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        ensure!(rc == 0, "kill(SIGTERM) failed");
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait()? {
                ensure!(
                    st.success(),
                    "exit status {st:?}; log:\n{}",
                    self.log_tail()
                );
                return Ok(());
            }
            ensure!(
                start.elapsed() < Duration::from_secs(15),
                "no exit 15 s after SIGTERM; log:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `f` until it yields `Some`, for at most `secs`.
async fn wait_for<T, F, Fut>(what: &str, secs: u64, proc: &Proc, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        if start.elapsed() > Duration::from_secs(secs) {
            bail!("timed out waiting for {what}; log:\n{}", proc.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn ingress_ips(svc: &Service) -> Vec<String> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|v| v.iter().filter_map(|i| i.ip.clone()).collect())
        .unwrap_or_default()
}

async fn service_ips(client: &kube::Client, name: &str) -> Result<Option<Vec<String>>> {
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    Ok(api
        .get_opt(name)
        .await?
        .map(|s| ingress_ips(&s))
        .filter(|ips| !ips.is_empty()))
}

async fn events_with_reason(client: &kube::Client, ns: &str, reason: &str) -> Result<Vec<Event>> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    Ok(api
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .collect())
}

/// Waits for an Event with `reason` whose `count` reached `count` (an aggregated repeat).
async fn wait_event_count(
    kube: &kube::Client,
    ns: &str,
    reason: &str,
    count: i32,
    proc: &Proc,
) -> Result<()> {
    wait_for(
        &format!("a {reason} event with count {count}"),
        20,
        proc,
        || async {
            Ok(events_with_reason(kube, ns, reason)
                .await?
                .iter()
                .any(|e| e.count.unwrap_or(0) >= count)
                .then_some(()))
        },
    )
    .await
}

/// Check every call against `sa`'s rules; return the distinct resource requests (for the
/// reverse check). The failure lists each denied (verb, group, resource, namespace, name),
/// and every call the server answered 403.
fn check_calls(rbac: &Rbac, sa: &str, calls: &[Call]) -> Result<Vec<Request>> {
    let mut denied = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    for r in calls {
        if r.status == 403 {
            denied.insert(format!(
                "{} {} answered 403 by the API server ({:?}, user-agent {:?})",
                r.verb, r.path, r.resource, r.user_agent
            ));
        }
        let Some(q) = &r.resource else {
            if !default_non_resource_allowed(r) {
                denied.insert(format!(
                    "{} {} (non-resource URL, user-agent {:?})",
                    r.verb, r.path, r.user_agent
                ));
            }
            continue;
        };
        if !rbac.allowed(sa, q) {
            denied.insert(format!(
                "verb={} group={:?} resource={} namespace={:?} name={:?} (HTTP {}, user-agent {:?})",
                q.verb, q.group, q.resource, q.namespace, q.name, r.status, r.user_agent
            ));
        }
        kinds.insert(q.clone());
    }
    ensure!(
        denied.is_empty(),
        "{sa} made {} kind(s) of request(s) its RBAC rules do not allow:\n  {}",
        denied.len(),
        denied.into_iter().collect::<Vec<_>>().join("\n  ")
    );
    Ok(kinds.into_iter().collect())
}

/// Distinct (verb, group, resource) kinds of calls.
fn call_kinds(reqs: &[Request]) -> BTreeSet<(String, String, String)> {
    reqs.iter()
        .map(|r| (r.verb.clone(), r.group.clone(), r.resource.clone()))
        .collect()
}

fn print_kinds(who: &str, kinds: &BTreeSet<(String, String, String)>) {
    eprintln!("{who}: {} distinct kinds of API calls:", kinds.len());
    for (verb, group, resource) in kinds {
        eprintln!("  {verb:<7} {group:>20} {resource}");
    }
}

/// Every permission granted to `sa` was used by `reqs`. On the lab API server (`lab`), which
/// serves no CRDs and no Secrets, only the one-item list that finds a `metallb.io` kind or
/// Secrets absent can happen: their other verbs are checked on the real server.
fn check_all_used(rbac: &Rbac, sa: &str, reqs: &[Request], lab: bool) -> Result<()> {
    let used = rbac.used(sa, reqs);
    let unused: Vec<Permission> = rbac
        .permissions(sa)
        .into_iter()
        .filter(|p| !used.contains(p))
        .filter(|(_, group, resource, verb)| {
            let lab_cannot = (group == "metallb.io" || resource == "secrets") && verb != "list";
            !(lab && lab_cannot)
        })
        .collect();
    ensure!(
        unused.is_empty(),
        "{sa}: granted but never used by the binary (remove from manifests/ or exercise it):\n  {}",
        unused
            .iter()
            .map(|(role, g, r, v)| format!("{role}: group={g:?} resource={r} verb={v}"))
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The scenarios
// ---------------------------------------------------------------------------------------

/// Two different texts with the same errors: the second `InvalidConfig` repeats the first.
fn invalid_config(variant: &str) -> Value {
    json!({"data": {"config": format!(
        "address-pools:\n- name: bad\n  protocol: bgp\n  addresses: [10.0.0.0/33]\n# {variant}\n"
    )}})
}

/// Real API server only: CRs appear beside the ConfigMap, and win. The Services are
/// re-allocated from the CR pool (the ConfigMap's pools are gone) and the pool's status
/// shows it: web2 holds one of 8 addresses; extra asks for a pool that no longer exists.
async fn cr_phase(kube: &kube::Client, proc: &Proc) -> Result<()> {
    create(
        kube,
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
               "metadata": {"name": "cr-pool", "namespace": NAMESPACE},
               "spec": {"addresses": ["10.92.0.0/29"]}}),
    )
    .await?;
    create(
        kube,
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
               "metadata": {"name": "all", "namespace": NAMESPACE}}),
    )
    .await?;
    let ips = wait_for("web2 moved to the CR pool", 20, proc, || async {
        Ok(service_ips(kube, "web2")
            .await?
            .filter(|ips| ips.iter().all(|ip| ip.starts_with("10.92.0."))))
    })
    .await?;
    assert_eq!(ips, vec!["10.92.0.0"]);
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metallb.io", "v1beta1", "IPAddressPool"),
        "ipaddresspools",
    );
    let pools: Api<DynamicObject> = Api::namespaced_with(kube.clone(), NAMESPACE, &ar);
    wait_for("the IPAddressPool status", 20, proc, || async {
        let p = pools.get("cr-pool").await?;
        let st = &p.data["status"];
        Ok(
            (st["assignedIPv4"] == 1 && st["availableIPv4"] == 7 && st["assignedIPv6"] == 0)
                .then_some(()),
        )
    })
    .await
}

async fn controller_calls_are_all_allowed_and_all_rules_used(api: TestApi) {
    controller_scenario(api)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
}

async fn controller_scenario(api: TestApi) -> Result<()> {
    let rbac = manifest_rbac()?;
    let mut world = World::new(api).await?;
    let kube = world.kube.clone();
    seed(&kube, "node-1").await?;
    let kubeconfig = world.kubeconfig("controller").await?;
    // Only the binary's calls count.
    world.clear_audit();

    let args: Vec<String> = [
        "--kubeconfig",
        kubeconfig.to_str().context("path")?,
        "--namespace",
        NAMESPACE,
        "--config",
        "config",
        "--listen",
        "127.0.0.1:0",
        "--identity",
        "rbac-1",
        "--lease-duration",
        "3",
    ]
    .map(String::from)
    .to_vec();
    let mut proc = Proc::spawn("ferrolb-controller", &args, world.dir.path())?;

    // Initial sync + assignment: status and annotation write, event.
    let ips = wait_for("web's IP", 30, &proc, || service_ips(&kube, "web")).await?;
    // The shipped pool is 172.17.254.0/24 with avoid-buggy-ips: .0 is skipped.
    assert_eq!(ips, vec!["172.17.254.1"]);
    let svcs: Api<Service> = Api::namespaced(kube.clone(), "default");
    wait_for(
        "the ip-allocated-from-pool annotation",
        10,
        &proc,
        || async {
            let s = svcs.get("web").await?;
            Ok(s.metadata
                .annotations
                .and_then(|a| a.get("metallb.universe.tf/ip-allocated-from-pool").cloned()))
        },
    )
    .await?;
    wait_event_count(&kube, "default", "IPAllocated", 1, &proc).await?;

    // Leader election: the Lease exists with our identity, then is renewed.
    let leases: Api<Lease> = Api::namespaced(kube.clone(), NAMESPACE);
    let first_rv = wait_for("the Lease", 10, &proc, || async {
        let l = leases.get_opt("ferrolb-controller").await?;
        Ok(l.filter(|l| {
            l.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some("rbac-1")
        })
        .and_then(|l| l.metadata.resource_version))
    })
    .await?;
    wait_for("a Lease renewal", 15, &proc, || async {
        let l = leases.get("ferrolb-controller").await?;
        Ok((l.metadata.resource_version.as_deref() != Some(first_rv.as_str())).then_some(()))
    })
    .await?;

    // An invalid ConfigMap, twice with the same errors: one InvalidConfig Event whose count
    // is patched to 2 (the writer's aggregation).
    let cms: Api<ConfigMap> = Api::namespaced(kube.clone(), NAMESPACE);
    let valid_data = shipped_config()?["data"].clone();
    for variant in ["first", "second"] {
        cms.patch(
            "config",
            &PatchParams::default(),
            &Patch::Merge(invalid_config(variant)),
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    wait_event_count(&kube, NAMESPACE, "InvalidConfig", 2, &proc).await?;

    // A valid config change: a second pool, used by a new Service that asks for it.
    let text = valid_data["config"]
        .as_str()
        .context("config key")?
        .to_string();
    let text = format!("{text}- name: extra\n  protocol: bgp\n  addresses:\n  - 10.90.0.0/29\n");
    cms.patch(
        "config",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"config": text}})),
    )
    .await?;
    create(
        &kube,
        lb_service(
            "extra",
            json!({"metallb.universe.tf/address-pool": "extra"}),
        ),
    )
    .await?;
    let ips = wait_for("extra's IP", 20, &proc, || service_ips(&kube, "extra")).await?;
    assert_eq!(
        ips,
        vec!["10.90.0.0"],
        "the new pool from the changed config"
    );

    // A Service deletion frees its IP: the next Service gets it again.
    svcs.delete("web", &DeleteParams::default()).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    create(&kube, lb_service("web2", json!({}))).await?;
    let ips = wait_for("web2's IP", 20, &proc, || service_ips(&kube, "web2")).await?;
    assert_eq!(
        ips,
        vec!["172.17.254.1"],
        "web's IP was released on deletion"
    );

    if world.api.is_real() {
        cr_phase(&kube, &proc).await?;
    }

    // SIGTERM releases the Lease.
    proc.terminate().await?;
    let lease = leases.get("ferrolb-controller").await?;
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity),
        None,
        "lease not released on SIGTERM"
    );

    let account = format!("{NAMESPACE}:controller");
    let calls = world.binary_calls("controller");
    ensure!(!calls.is_empty(), "no calls of the controller recorded");
    let reqs = check_calls(&rbac, &account, &calls)?;
    let kinds = call_kinds(&reqs);
    print_kinds("controller", &kinds);
    // The check bites: without the services/status rule the same calls are denied, and the
    // message names the call.
    let err = check_calls(&rbac.without(&account, "services/status"), &account, &calls)
        .expect_err("status writes must need services/status");
    assert!(
        format!("{err}")
            .contains("verb=patch group=\"\" resource=services/status namespace=\"default\""),
        "{err}"
    );
    ensure!(
        kinds.len() >= 8,
        "expected at least 8 distinct kinds of calls (list/watch services and configmaps, \
         patch services/status, create/patch events, get/create/update leases), got {kinds:?}"
    );
    check_all_used(&rbac, &account, &reqs, !world.api.is_real())?;
    Ok(())
}

async fn speaker_calls_are_all_allowed_and_all_rules_used(api: TestApi) {
    speaker_scenario(api)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
}

async fn speaker_scenario(api: TestApi) -> Result<()> {
    let rbac = manifest_rbac()?;
    let mut world = World::new(api).await?;
    let kube = world.kube.clone();
    seed(&kube, "node-1").await?;
    // The controller's job, done here: web has an IP from the pool.
    let svcs: Api<Service> = Api::namespaced(kube.clone(), "default");
    svcs.patch_status(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": [{"ip": "172.17.254.1"}]}}})),
    )
    .await?;
    let kubeconfig = world.kubeconfig("speaker").await?;
    world.clear_audit();

    let args: Vec<String> = [
        "--kubeconfig",
        kubeconfig.to_str().context("path")?,
        "--namespace",
        NAMESPACE,
        "--config",
        "config",
        "--node-name",
        "node-1",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        // Pod CIDR announcement adds no API calls of its own (it reads spec.podCIDR from the
        // Node watch), but it is the overlay's mode, so it is part of what is checked.
        "--pod-cidr-mode",
        "advertise",
        // The exclusion label below must withdraw at once (no RFC 8326 drain): what this
        // test counts is the Events of leaving and coming back.
        "--drain-period",
        "0",
    ]
    .map(String::from)
    .to_vec();
    let mut proc = Proc::spawn("ferrolb-speaker", &args, world.dir.path())?;

    // Sync of Services, EndpointSlices, Nodes and the ConfigMap, then the announcement.
    let ev = wait_for("a nodeAssigned event", 30, &proc, || async {
        Ok(events_with_reason(&kube, "default", "nodeAssigned")
            .await?
            .into_iter()
            .next())
    })
    .await?;
    assert_eq!(ev.involved_object.name.as_deref(), Some("web"));
    // The node excluded and back: announced again, the same Event's count goes to 2.
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(kube.clone());
    let label = |v: Value| json!({"metadata": {"labels": {"node.kubernetes.io/exclude-from-external-load-balancers": v}}});
    nodes
        .patch(
            "node-1",
            &PatchParams::default(),
            &Patch::Merge(label(json!(""))),
        )
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    nodes
        .patch(
            "node-1",
            &PatchParams::default(),
            &Patch::Merge(label(Value::Null)),
        )
        .await?;
    wait_event_count(&kube, "default", "nodeAssigned", 2, &proc).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    proc.terminate().await?;

    let account = format!("{NAMESPACE}:speaker");
    let calls = world.binary_calls("speaker");
    ensure!(!calls.is_empty(), "no calls of the speaker recorded");
    let reqs = check_calls(&rbac, &account, &calls)?;
    let kinds = call_kinds(&reqs);
    print_kinds("speaker", &kinds);
    let err = check_calls(&rbac.without(&account, "endpointslices"), &account, &calls)
        .expect_err("the EndpointSlice watch must need endpointslices");
    assert!(
        format!("{err}").contains("resource=endpointslices"),
        "{err}"
    );
    ensure!(
        kinds.len() >= 6,
        "expected at least 6 distinct kinds of calls (list/watch of services, endpointslices, \
         nodes, configmaps; create/patch events), got {kinds:?}"
    );
    check_all_used(&rbac, &account, &reqs, !world.api.is_real())?;
    Ok(())
}

ferrolb_kubeapi::on_both_servers!(
    controller_calls_are_all_allowed_and_all_rules_used,
    speaker_calls_are_all_allowed_and_all_rules_used
);
