//! The operator-facing manifests in `manifests/`.
//!
//! * Every YAML document must be a valid object of its kind, strictly: k8s-openapi's types
//!   silently drop fields they do not know, so each document is deserialized into its typed
//!   struct, serialized back, and compared with the original; whatever the round trip lost
//!   or changed is a misspelled or mistyped field, reported with file, document and path.
//! * Security properties are asserted on the typed objects (non-root controller, speaker with
//!   exactly NET_ADMIN + NET_RAW, no RBAC wildcards, ...).
//! * `kustomization.yaml` lists every manifest, the pod-network overlay patches what it
//!   claims to, and (when `kubectl` is installed) `kubectl kustomize` builds both.
//! * The core/v1 objects (Namespace, ConfigMap) are applied to the lab API server (it does
//!   not serve apps/v1, rbac.authorization.k8s.io or flowcontrol), and **every** document
//!   to the real kube-apiserver v1.28.7 with strict field validation, so its own schemas,
//!   defaulting and admission accept them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, anyhow, bail, ensure};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Namespace, PodSpec, ServiceAccount};
use k8s_openapi::api::flowcontrol::v1::FlowSchema;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const NAMESPACE: &str = "metallb-system";

// ---------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent directory")
        .to_path_buf()
}

fn manifests_dir() -> PathBuf {
    repo_root().join("manifests")
}

/// One YAML document of one file.
#[derive(Debug, Clone)]
struct Doc {
    file: String,
    index: usize,
    value: Value,
}

impl Doc {
    fn kind(&self) -> &str {
        self.value.get("kind").and_then(Value::as_str).unwrap_or("")
    }

    fn name(&self) -> &str {
        self.value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    fn location(&self) -> String {
        format!(
            "{} document #{} ({} {})",
            self.file,
            self.index,
            self.kind(),
            self.name()
        )
    }
}

/// All documents of a multi-document YAML text; empty documents are skipped.
fn parse_docs(file: &str, text: &str) -> Result<Vec<Doc>> {
    let values: Vec<Value> =
        serde_saphyr::from_multiple(text).with_context(|| format!("{file}: not valid YAML"))?;
    Ok(values
        .into_iter()
        .enumerate()
        .filter(|(_, v)| !v.is_null())
        .map(|(index, value)| Doc {
            file: file.to_string(),
            index,
            value,
        })
        .collect())
}

/// The `*.yaml` files directly in `dir`, sorted, as names relative to it.
fn yaml_files(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_file() && (name.ends_with(".yaml") || name.ends_with(".yml")) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Every Kubernetes object in `manifests/*.yaml` (not the kustomization).
fn manifest_docs() -> Result<Vec<Doc>> {
    let dir = manifests_dir();
    let mut docs = Vec::new();
    for name in yaml_files(&dir)? {
        if name == "kustomization.yaml" {
            continue;
        }
        let text = std::fs::read_to_string(dir.join(&name))?;
        docs.extend(parse_docs(&format!("manifests/{name}"), &text)?);
    }
    Ok(docs)
}

fn find<'a>(docs: &'a [Doc], kind: &str, name: &str) -> Result<&'a Doc> {
    docs.iter()
        .find(|d| d.kind() == kind && d.name() == name)
        .ok_or_else(|| anyhow!("no {kind} named {name} in manifests/"))
}

fn typed<T: DeserializeOwned>(doc: &Doc) -> Result<T> {
    serde_json::from_value(doc.value.clone()).with_context(|| doc.location())
}

// ---------------------------------------------------------------------------------------
// The strict checker
// ---------------------------------------------------------------------------------------

/// Deserialize `original` as `T`, serialize it back, and list every difference: a field
/// k8s-openapi dropped is unknown (misspelled or at the wrong level), a changed value was
/// mistyped.
fn round_trip<T: DeserializeOwned + Serialize>(original: &Value) -> Vec<String> {
    let typed: T = match serde_json::from_value(original.clone()) {
        Ok(t) => t,
        Err(e) => return vec![format!("does not deserialize: {e}")],
    };
    let back = match serde_json::to_value(&typed) {
        Ok(v) => v,
        Err(e) => return vec![format!("does not serialize back: {e}")],
    };
    let mut problems = Vec::new();
    diff(original, &back, &mut String::new(), &mut problems);
    problems
}

fn diff(original: &Value, back: &Value, path: &mut String, out: &mut Vec<String>) {
    match (original, back) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, av) in a {
                let len = path.len();
                if path.is_empty() {
                    path.push_str(key);
                } else {
                    let _ = write!(path, ".{key}");
                }
                match b.get(key) {
                    None => out.push(format!("{path}: unknown field (not in the schema)")),
                    Some(bv) => diff(av, bv, path, out),
                }
                path.truncate(len);
            }
            for key in b.keys().filter(|k| !a.contains_key(*k)) {
                out.push(format!("{path}.{key}: added by the round trip"));
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (av, bv)) in a.iter().zip(b).enumerate() {
                let len = path.len();
                let _ = write!(path, "[{i}]");
                diff(av, bv, path, out);
                path.truncate(len);
            }
        }
        _ if original == back => {}
        _ => out.push(format!("{path}: {original} became {back} (wrong type?)")),
    }
}

/// Strict check of one document, dispatched on apiVersion + kind.
fn check_strict(doc: &Doc) -> Vec<String> {
    let api_version = doc
        .value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let problems = match (api_version, doc.kind()) {
        ("v1", "Namespace") => round_trip::<Namespace>(&doc.value),
        ("v1", "ServiceAccount") => round_trip::<ServiceAccount>(&doc.value),
        ("v1", "ConfigMap") => round_trip::<ConfigMap>(&doc.value),
        ("apps/v1", "Deployment") => round_trip::<Deployment>(&doc.value),
        ("apps/v1", "DaemonSet") => round_trip::<DaemonSet>(&doc.value),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => round_trip::<ClusterRole>(&doc.value),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            round_trip::<ClusterRoleBinding>(&doc.value)
        }
        ("rbac.authorization.k8s.io/v1", "Role") => round_trip::<Role>(&doc.value),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => round_trip::<RoleBinding>(&doc.value),
        ("flowcontrol.apiserver.k8s.io/v1", "FlowSchema") => round_trip::<FlowSchema>(&doc.value),
        // Generated from the typed kinds and checked by ferrolb-crds' `manifests` test (and
        // applied to the real server by `real_apiserver`); a typed round trip would turn
        // their integer bounds into floats.
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => Vec::new(),
        (v, k) => vec![format!(
            "apiVersion {v:?} kind {k:?} is not a kind ferrolb ships"
        )],
    };
    problems
        .into_iter()
        .map(|p| format!("{}: {p}", doc.location()))
        .collect()
}

fn check_all_strict(docs: &[Doc]) -> Result<()> {
    let problems: Vec<String> = docs.iter().flat_map(check_strict).collect();
    if problems.is_empty() {
        Ok(())
    } else {
        bail!(
            "{} schema problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        )
    }
}

#[test]
fn every_manifest_document_is_strictly_valid() -> Result<()> {
    let docs = manifest_docs()?;
    // namespace, 2 ServiceAccounts, 2 ClusterRoles + bindings, 2 Roles + bindings,
    // FlowSchema, ConfigMap, Deployment, DaemonSet.
    assert_eq!(
        docs.len(),
        15,
        "documents: {:?}",
        docs.iter().map(Doc::location).collect::<Vec<_>>()
    );
    check_all_strict(&docs)
}

#[test]
fn strict_check_reports_misspelled_and_mistyped_fields() -> Result<()> {
    let base = find(&manifest_docs()?, "Deployment", "controller")?.clone();

    // A misspelled top-level spec field.
    let mut bad = base.clone();
    let spec = bad.value["spec"].as_object_mut().context("spec")?;
    spec.remove("replicas");
    spec.insert("replica".into(), json!(2));
    let problems = check_strict(&bad);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("spec.replica: unknown field")),
        "spec.replica not reported: {problems:?}"
    );
    assert!(
        problems[0].contains("manifests/controller.yaml document #"),
        "{problems:?}"
    );

    // A misspelled field deep inside a container.
    let mut bad = base.clone();
    bad.value["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystm"] =
        json!(true);
    let problems = check_strict(&bad);
    assert!(
        problems.iter().any(|p| p.contains(
            "spec.template.spec.containers[0].securityContext.readOnlyRootFilesystm: unknown field"
        )),
        "nested typo not reported: {problems:?}"
    );

    // A value of the wrong type.
    let mut bad = base.clone();
    bad.value["spec"]["replicas"] = json!("two");
    let problems = check_strict(&bad);
    assert!(
        problems.iter().any(|p| p.contains("does not deserialize")),
        "mistyped replicas not reported: {problems:?}"
    );

    // A kind we do not know.
    let mut bad = base;
    bad.value["kind"] = json!("Deploymnet");
    assert!(!check_strict(&bad).is_empty());
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Security and wiring of the two workloads
// ---------------------------------------------------------------------------------------

fn pod_spec_of_deployment(d: &Deployment) -> Result<&PodSpec> {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .context("Deployment without a pod spec")
}

fn only_container(spec: &PodSpec) -> Result<&Container> {
    match spec.containers.as_slice() {
        [c] => Ok(c),
        other => bail!("expected exactly one container, found {}", other.len()),
    }
}

/// The env var `name` is filled from the downward API field `field_path`.
fn env_from_field(c: &Container, name: &str, field_path: &str) -> bool {
    c.env.iter().flatten().any(|e| {
        e.name == name
            && e.value_from
                .as_ref()
                .and_then(|v| v.field_ref.as_ref())
                .is_some_and(|f| f.field_path == field_path)
    })
}

fn args(c: &Container) -> Vec<&str> {
    c.args.iter().flatten().map(String::as_str).collect()
}

/// Path and port number of an HTTP probe, resolving a named port through the container.
fn http_probe(
    c: &Container,
    probe: Option<&k8s_openapi::api::core::v1::Probe>,
) -> Result<(String, i32)> {
    let get = probe
        .and_then(|p| p.http_get.as_ref())
        .with_context(|| format!("container {} lacks an httpGet probe", c.name))?;
    let port = match &get.port {
        IntOrString::Int(p) => *p,
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port)
            .with_context(|| format!("probe port {name} is not a named container port"))?,
    };
    Ok((get.path.clone().unwrap_or_default(), port))
}

fn capabilities(c: &Container) -> (BTreeSet<String>, BTreeSet<String>) {
    let caps = c
        .security_context
        .as_ref()
        .and_then(|s| s.capabilities.as_ref());
    let add = caps
        .and_then(|c| c.add.clone())
        .unwrap_or_default()
        .into_iter()
        .collect();
    let drop = caps
        .and_then(|c| c.drop.clone())
        .unwrap_or_default()
        .into_iter()
        .collect();
    (add, drop)
}

fn assert_resources(c: &Container) -> Result<()> {
    let res = c.resources.as_ref().context("no resources")?;
    let requests = res.requests.as_ref().context("no resource requests")?;
    let limits = res.limits.as_ref().context("no resource limits")?;
    assert!(
        requests.contains_key("cpu") && requests.contains_key("memory"),
        "{}: requests {requests:?}",
        c.name
    );
    assert!(
        limits.contains_key("memory"),
        "{}: limits {limits:?}",
        c.name
    );
    Ok(())
}

#[test]
fn controller_runs_locked_down() -> Result<()> {
    let docs = manifest_docs()?;
    let doc = find(&docs, "Deployment", "controller")?;
    let deployment: Deployment = typed(doc)?;
    assert_eq!(deployment.metadata.namespace.as_deref(), Some(NAMESPACE));
    let replicas = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    assert!((1..=2).contains(&replicas), "replicas {replicas}");

    let pod = pod_spec_of_deployment(&deployment)?;
    assert_eq!(pod.service_account_name.as_deref(), Some("controller"));
    assert_ne!(
        pod.host_network,
        Some(true),
        "the controller needs no host network"
    );
    let c = only_container(pod)?;

    let sc = c
        .security_context
        .as_ref()
        .context("no container securityContext")?;
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.run_as_user, Some(65534));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.privileged, None);
    let seccomp = sc
        .seccomp_profile
        .as_ref()
        .or(pod
            .security_context
            .as_ref()
            .and_then(|p| p.seccomp_profile.as_ref()))
        .context("no seccomp profile")?;
    assert_eq!(seccomp.type_, "RuntimeDefault");
    let (add, drop) = capabilities(c);
    assert_eq!(drop, BTreeSet::from(["ALL".to_string()]));
    assert!(add.is_empty(), "controller adds capabilities {add:?}");

    assert_eq!(
        c.command.as_deref(),
        Some(&["ferrolb-controller".to_string()][..])
    );
    let a = args(c);
    assert!(a.contains(&"--namespace=$(METALLB_NAMESPACE)"), "{a:?}");
    assert!(a.contains(&"--config=config"), "{a:?}");
    assert!(a.contains(&"--port=7472"), "{a:?}");
    assert!(env_from_field(c, "METALLB_NAMESPACE", "metadata.namespace"));
    assert!(env_from_field(c, "POD_NAME", "metadata.name"));

    assert_eq!(
        http_probe(c, c.liveness_probe.as_ref())?,
        ("/healthz".to_string(), 7472)
    );
    assert_eq!(
        http_probe(c, c.readiness_probe.as_ref())?,
        ("/readyz".to_string(), 7472)
    );
    let monitoring = c
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("monitoring"));
    assert_eq!(monitoring.map(|p| p.container_port), Some(7472));
    assert_resources(c)?;

    let annotations = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref())
        .context("no pod annotations")?;
    assert_eq!(
        annotations.get("prometheus.io/scrape").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        annotations.get("prometheus.io/port").map(String::as_str),
        Some("7472")
    );
    Ok(())
}

#[test]
fn speaker_has_host_network_and_only_net_admin_net_raw() -> Result<()> {
    let docs = manifest_docs()?;
    let ds: DaemonSet = typed(find(&docs, "DaemonSet", "speaker")?)?;
    assert_eq!(ds.metadata.namespace.as_deref(), Some(NAMESPACE));
    let pod = ds
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .context("DaemonSet without a pod spec")?;
    assert_eq!(pod.host_network, Some(true));
    assert_eq!(pod.service_account_name.as_deref(), Some("speaker"));
    let grace = pod
        .termination_grace_period_seconds
        .context("no termination grace period")?;
    assert!(
        (1..=10).contains(&grace),
        "grace period {grace}s: the speaker only needs to send Cease"
    );

    // Runs on every node: one toleration with operator Exists and no key tolerates every
    // taint; the control-plane one is spelled out as well.
    let tolerations = pod.tolerations.as_ref().context("no tolerations")?;
    assert!(
        tolerations
            .iter()
            .any(|t| t.operator.as_deref() == Some("Exists")
                && t.key.is_none()
                && t.effect.is_none()),
        "no catch-all toleration: {tolerations:?}"
    );
    assert!(tolerations.iter().any(|t| {
        t.key.as_deref() == Some("node-role.kubernetes.io/control-plane")
            && t.effect.as_deref() == Some("NoSchedule")
    }));

    let c = only_container(pod)?;
    let (add, drop) = capabilities(c);
    assert_eq!(drop, BTreeSet::from(["ALL".to_string()]));
    assert_eq!(
        add,
        BTreeSet::from(["NET_ADMIN".to_string(), "NET_RAW".to_string()])
    );
    let sc = c.security_context.as_ref().context("no securityContext")?;
    assert_eq!(sc.privileged, None, "the speaker must not be privileged");
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));

    assert_eq!(
        c.command.as_deref(),
        Some(&["ferrolb-speaker".to_string()][..])
    );
    let a = args(c);
    assert!(a.contains(&"--node-name=$(METALLB_NODE_NAME)"), "{a:?}");
    assert!(env_from_field(c, "METALLB_NODE_NAME", "spec.nodeName"));
    assert!(a.contains(&"--namespace=$(METALLB_NAMESPACE)"), "{a:?}");
    assert!(env_from_field(c, "METALLB_NAMESPACE", "metadata.namespace"));
    assert!(
        a.contains(&"--config=config") && a.contains(&"--port=7472"),
        "{a:?}"
    );
    // Off by default, at the position the pod-network overlay's JSON patch tests for.
    assert_eq!(a.get(4), Some(&"--pod-cidr-mode=off"), "{a:?}");

    assert_eq!(
        http_probe(c, c.liveness_probe.as_ref())?,
        ("/healthz".to_string(), 7472)
    );
    assert_resources(c)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// RBAC
// ---------------------------------------------------------------------------------------

/// (apiGroup, resource, verb) triples a set of rules grants.
fn grants(rules: &[PolicyRule]) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in rules {
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    out.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    out
}

fn triples(spec: &[(&str, &[&str], &[&str])]) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for (group, resources, verbs) in spec {
        for r in *resources {
            for v in *verbs {
                out.insert((group.to_string(), r.to_string(), v.to_string()));
            }
        }
    }
    out
}

/// Watchers only (list + watch); tests/tests/rbac.rs checks the binaries' real calls.
/// The `metallb.io` kinds both daemons watch.
const METALLB_KINDS: &[&str] = &[
    "ipaddresspools",
    "bgpadvertisements",
    "l2advertisements",
    "bgppeers",
    "bfdprofiles",
    "communities",
];
const READ: &[&str] = &["list", "watch"];
/// A new Event, or a repeat counted into the existing one (client-go's aggregation).
const EVENTS: &[&str] = &["create", "patch"];

#[test]
fn rbac_is_least_privilege_without_wildcards() -> Result<()> {
    let docs = manifest_docs()?;
    let mut rules_by_role: BTreeMap<(String, String), Vec<PolicyRule>> = BTreeMap::new();
    for doc in &docs {
        let (kind, rules) = match doc.kind() {
            "ClusterRole" => (
                "ClusterRole",
                typed::<ClusterRole>(doc)?.rules.unwrap_or_default(),
            ),
            "Role" => {
                let role: Role = typed(doc)?;
                assert_eq!(
                    role.metadata.namespace.as_deref(),
                    Some(NAMESPACE),
                    "{}",
                    doc.location()
                );
                ("Role", role.rules.unwrap_or_default())
            }
            _ => continue,
        };
        for rule in &rules {
            let fields = [
                rule.api_groups.as_deref().unwrap_or_default(),
                rule.resources.as_deref().unwrap_or_default(),
                rule.verbs.as_slice(),
                rule.resource_names.as_deref().unwrap_or_default(),
            ];
            for value in fields.iter().flat_map(|f| f.iter()) {
                assert!(
                    !value.contains('*'),
                    "{}: wildcard {value:?} in {rule:?}",
                    doc.location()
                );
            }
            assert!(
                rule.non_resource_urls.is_none(),
                "{}: nonResourceURLs",
                doc.location()
            );
            assert!(
                rule.api_groups.is_some() && rule.resources.is_some(),
                "{}: {rule:?}",
                doc.location()
            );
        }
        rules_by_role.insert((kind.to_string(), doc.name().to_string()), rules);
    }

    let expect = |kind: &str, name: &str| -> Result<BTreeSet<(String, String, String)>> {
        Ok(grants(
            rules_by_role
                .get(&(kind.to_string(), name.to_string()))
                .with_context(|| format!("no {kind} {name}"))?,
        ))
    };
    assert_eq!(
        expect("ClusterRole", "metallb-system:controller")?,
        triples(&[
            ("", &["services"], READ),
            // Status and the ip-allocated-from-pool annotation, one patch of the status
            // subresource (controller/src/k8s/writer.rs).
            ("", &["services/status"], &["patch"]),
            ("", &["events"], EVENTS),
            // Namespace labels for serviceAllocation.namespaceSelectors (k8s/namespaces.rs).
            ("", &["namespaces"], READ),
            // Node labels for the configuration's node-dependent rules (config_source).
            ("", &["nodes"], READ),
        ])
    );
    assert_eq!(
        expect("Role", "controller")?,
        triples(&[
            ("", &["configmaps"], READ),
            // The metallb.io CRs (ferrolb_daemon::config_source) and each pool's status.
            ("metallb.io", METALLB_KINDS, READ),
            ("metallb.io", &["ipaddresspools/status"], &["patch"]),
            (
                "coordination.k8s.io",
                &["leases"],
                &["get", "create", "update"]
            ),
        ])
    );
    assert_eq!(
        expect("ClusterRole", "metallb-system:speaker")?,
        triples(&[
            ("", &["services", "nodes"], READ),
            ("discovery.k8s.io", &["endpointslices"], READ),
            ("", &["events"], EVENTS),
        ])
    );
    assert_eq!(
        expect("Role", "speaker")?,
        triples(&[
            ("", &["configmaps"], READ),
            ("metallb.io", METALLB_KINDS, READ),
            // BGPPeer passwordSecret (basic-auth Secrets only, by field selector).
            ("", &["secrets"], READ),
        ])
    );
    assert_eq!(
        rules_by_role.len(),
        4,
        "unexpected extra roles: {:?}",
        rules_by_role.keys()
    );

    // Every binding points at a role above and at a ServiceAccount of ours.
    let accounts: BTreeSet<&str> = docs
        .iter()
        .filter(|d| d.kind() == "ServiceAccount")
        .map(Doc::name)
        .collect();
    assert_eq!(accounts, BTreeSet::from(["controller", "speaker"]));
    let mut bound = BTreeSet::new();
    for doc in &docs {
        let (role_ref, subjects) = match doc.kind() {
            "ClusterRoleBinding" => {
                let b: ClusterRoleBinding = typed(doc)?;
                (b.role_ref, b.subjects.unwrap_or_default())
            }
            "RoleBinding" => {
                let b: RoleBinding = typed(doc)?;
                assert_eq!(b.metadata.namespace.as_deref(), Some(NAMESPACE));
                (b.role_ref, b.subjects.unwrap_or_default())
            }
            _ => continue,
        };
        assert!(
            rules_by_role.contains_key(&(role_ref.kind.clone(), role_ref.name.clone())),
            "{}: binds unknown {} {}",
            doc.location(),
            role_ref.kind,
            role_ref.name
        );
        for s in subjects {
            assert_eq!(s.kind, "ServiceAccount", "{}", doc.location());
            assert_eq!(
                s.namespace.as_deref(),
                Some(NAMESPACE),
                "{}",
                doc.location()
            );
            assert!(
                accounts.contains(s.name.as_str()),
                "{}: subject {}",
                doc.location(),
                s.name
            );
            bound.insert((role_ref.kind.clone(), role_ref.name.clone(), s.name));
        }
    }
    assert_eq!(
        bound.len(),
        4,
        "each role bound to its account once: {bound:?}"
    );
    Ok(())
}

/// The FlowSchema puts exactly the controller's Lease requests (the verbs its Role grants)
/// into the built-in `leader-election` priority level, ahead of `service-accounts`; the
/// copy for Kubernetes < 1.29 is the same object in v1beta3.
#[test]
fn flowschema_gives_the_controllers_lease_traffic_its_own_priority_level() -> Result<()> {
    let docs = manifest_docs()?;
    let doc = find(&docs, "FlowSchema", "ferrolb-controller-leader-election")?;
    let fs: FlowSchema = typed(doc)?;
    let spec = fs.spec.context("spec")?;
    assert_eq!(spec.priority_level_configuration.name, "leader-election");
    let precedence = spec.matching_precedence.context("matchingPrecedence")?;
    assert!(
        (201..9000).contains(&precedence),
        "after the system schemas, before service-accounts (9000): {precedence}"
    );
    let rules = spec.rules.unwrap_or_default();
    assert_eq!(rules.len(), 1);
    let subjects = &rules[0].subjects;
    assert_eq!(subjects.len(), 1);
    let sa = subjects[0]
        .service_account
        .as_ref()
        .context("serviceAccount")?;
    assert_eq!(
        (sa.namespace.as_str(), sa.name.as_str()),
        (NAMESPACE, "controller")
    );
    let rr = rules[0].resource_rules.as_deref().unwrap_or_default();
    assert_eq!(rr.len(), 1);
    assert_eq!(rr[0].api_groups, vec!["coordination.k8s.io"]);
    assert_eq!(rr[0].resources, vec!["leases"]);
    assert_eq!(
        rr[0].namespaces.as_deref(),
        Some(&[NAMESPACE.to_string()][..])
    );
    // The same verbs the controller's Role grants on leases.
    let role: Role = typed(find(&docs, "Role", "controller")?)?;
    let lease_verbs: Vec<String> = role
        .rules
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.resources.iter().flatten().any(|x| x == "leases"))
        .flat_map(|r| r.verbs)
        .collect();
    assert_eq!(rr[0].verbs, lease_verbs);

    let old = std::fs::read_to_string(manifests_dir().join("before-1.29/flowcontrol.yaml"))?;
    let old_docs = parse_docs("manifests/before-1.29/flowcontrol.yaml", &old)?;
    assert_eq!(old_docs.len(), 1);
    let mut old_value = old_docs[0].value.clone();
    assert_eq!(
        old_value["apiVersion"],
        json!("flowcontrol.apiserver.k8s.io/v1beta3")
    );
    old_value["apiVersion"] = json!("flowcontrol.apiserver.k8s.io/v1");
    assert_eq!(
        old_value, doc.value,
        "the two FlowSchemas differ beyond apiVersion"
    );
    Ok(())
}

#[test]
fn every_namespaced_object_is_in_metallb_system() -> Result<()> {
    for doc in manifest_docs()? {
        let namespaced = !matches!(
            doc.kind(),
            "Namespace" | "ClusterRole" | "ClusterRoleBinding" | "FlowSchema"
        );
        let ns = doc
            .value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str);
        if namespaced {
            assert_eq!(ns, Some(NAMESPACE), "{}", doc.location());
        } else {
            assert_eq!(
                ns,
                None,
                "{}: cluster-scoped object with a namespace",
                doc.location()
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The example ConfigMap
// ---------------------------------------------------------------------------------------

/// The ConfigMap is the seed lab's configuration, and agrees with the Vagrant lab's numbers.
#[test]
fn example_config_is_the_seed_labs() -> Result<()> {
    let docs = manifest_docs()?;
    let cm: ConfigMap = typed(find(&docs, "ConfigMap", "config")?)?;
    assert_eq!(cm.metadata.namespace.as_deref(), Some(NAMESPACE));
    let data = cm.data.as_ref().context("no data")?;
    assert_eq!(data.keys().collect::<Vec<_>>(), vec!["config"]);
    let config: Value =
        serde_saphyr::from_str(&data["config"]).context("data.config is not YAML")?;

    let lab_vars: Value = serde_saphyr::from_str(&std::fs::read_to_string(
        repo_root().join("lab/vagrant/group_vars/all.yml"),
    )?)?;
    let var = |k: &str| lab_vars.get(k).cloned().unwrap_or(Value::Null);
    assert_eq!(
        config,
        json!({
            "peers": [{
                "peer-address": var("router_cluster_ip"),
                "peer-asn": var("router_asn"),
                "my-asn": var("cluster_asn"),
            }],
            "address-pools": [{
                "name": "default",
                "protocol": "bgp",
                "avoid-buggy-ips": true,
                "addresses": [var("lb_pool")],
            }],
        })
    );
    // And those are the seed's numbers.
    assert_eq!(var("router_cluster_ip"), json!("172.17.0.1"));
    assert_eq!(var("router_asn"), json!(64512));
    assert_eq!(var("cluster_asn"), json!(64522));
    assert_eq!(var("lb_pool"), json!("172.17.254.0/24"));
    Ok(())
}

/// ferrolb's own configuration parser (strict, like MetalLB's) accepts the example as it is
/// shipped, without warnings, and reads the seed lab's values out of it.
#[test]
fn example_config_passes_ferrolbs_parser() -> Result<()> {
    let text = std::fs::read_to_string(manifests_dir().join("config.yaml"))?;
    let parsed = ferrolb_config::parse_configmap_manifest(&text)
        .map_err(|e| anyhow!("manifests/config.yaml rejected: {e}"))?;
    assert!(
        parsed.warnings.is_empty(),
        "warnings: {:?}",
        parsed.warnings
    );
    let config = parsed.config;
    assert_eq!(config.peers.len(), 1);
    let peer = &config.peers[0];
    assert_eq!(peer.address.to_string(), "172.17.0.1");
    assert_eq!((peer.peer_asn, peer.my_asn, peer.port), (64512, 64522, 179));
    assert_eq!(config.pools.len(), 1);
    let pool = &config.pools[0];
    assert_eq!(pool.name, "default");
    assert!(pool.avoid_buggy_ips && pool.auto_assign);
    assert!(pool.contains("172.17.254.1".parse()?));
    assert!(!pool.contains("172.17.253.1".parse()?));
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Kustomize
// ---------------------------------------------------------------------------------------

fn kustomization(dir: &Path) -> Result<Value> {
    let path = dir.join("kustomization.yaml");
    serde_saphyr::from_str(&std::fs::read_to_string(&path)?)
        .with_context(|| path.display().to_string())
}

fn string_list(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn kustomization_lists_every_manifest() -> Result<()> {
    let dir = manifests_dir();
    let k = kustomization(&dir)?;
    assert_eq!(k["kind"], json!("Kustomization"));
    let listed: BTreeSet<String> = string_list(&k, "resources").into_iter().collect();
    let mut present: BTreeSet<String> = yaml_files(&dir)?
        .into_iter()
        .filter(|n| n != "kustomization.yaml")
        .collect();
    // The generated CRDs, a kustomization of their own.
    ensure!(
        dir.join("crds/kustomization.yaml").is_file(),
        "manifests/crds/kustomization.yaml"
    );
    present.insert("crds".to_string());
    assert_eq!(
        listed, present,
        "manifests/kustomization.yaml resources vs files in manifests/"
    );
    // Namespace first, so `kubectl apply` never creates objects in a missing namespace.
    assert_eq!(
        string_list(&k, "resources").first().map(String::as_str),
        Some("namespace.yaml")
    );

    // The overlay lists the same files (one by one: kustomize refuses a base that contains
    // the overlay) and patches only the speaker.
    let overlay = kustomization(&dir.join("pod-network"))?;
    let expected: Vec<String> = string_list(&k, "resources")
        .iter()
        .map(|r| format!("../{r}"))
        .collect();
    assert_eq!(string_list(&overlay, "resources"), expected);
    let patches = overlay["patches"]
        .as_array()
        .context("overlay without patches")?;
    assert_eq!(patches.len(), 1);
    assert_eq!(patches[0]["target"]["kind"], json!("DaemonSet"));
    assert_eq!(patches[0]["target"]["name"], json!("speaker"));
    let patch_file = patches[0]["path"].as_str().context("patch path")?;
    assert!(dir.join("pod-network").join(patch_file).is_file());
    Ok(())
}

/// The overlay's JSON patch, applied with an RFC 6902 implementation, turns pod CIDR mode on,
/// and refuses to apply when the speaker's arguments have moved.
#[test]
fn pod_network_overlay_switches_pod_cidr_mode() -> Result<()> {
    let docs = manifest_docs()?;
    let speaker = find(&docs, "DaemonSet", "speaker")?;
    let patch_text =
        std::fs::read_to_string(manifests_dir().join("pod-network/speaker-pod-cidr-mode.yaml"))?;
    let patch: json_patch::Patch =
        serde_saphyr::from_str(&patch_text).context("patch is not an RFC 6902 list")?;

    let mut patched = speaker.value.clone();
    json_patch::patch(&mut patched, &patch)?;
    let patched_doc = Doc {
        file: "pod-network overlay".into(),
        index: 0,
        value: patched,
    };
    assert!(check_strict(&patched_doc).is_empty());
    let ds: DaemonSet = typed(&patched_doc)?;
    let pod = ds.spec.and_then(|s| s.template.spec).context("pod spec")?;
    let c = only_container(&pod)?;
    let a = args(c);
    assert_eq!(
        a.get(4),
        Some(&"--pod-cidr-mode=advertise-and-install"),
        "{a:?}"
    );
    assert_eq!(
        a.iter()
            .filter(|x| x.starts_with("--pod-cidr-mode"))
            .count(),
        1
    );

    // If someone reorders the args, the overlay's "test" op must stop the build.
    let mut moved = speaker.value.clone();
    let args = moved
        .pointer_mut("/spec/template/spec/containers/0/args")
        .and_then(Value::as_array_mut)
        .context("args")?;
    args.swap(3, 4);
    assert!(
        json_patch::patch(&mut moved, &patch).is_err(),
        "patch applied to moved args"
    );
    Ok(())
}

/// `kubectl kustomize` output for the base and the overlay, when kubectl is installed.
fn kustomize_build(args: &[&str]) -> Result<Option<Vec<Doc>>> {
    let out = match Command::new("kubectl").arg("kustomize").args(args).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if !out.status.success() {
        bail!(
            "kubectl kustomize {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8(out.stdout)?;
    Ok(Some(parse_docs(
        &format!("kustomize {}", args.join(" ")),
        &text,
    )?))
}

#[test]
fn kustomize_builds_base_and_overlay() -> Result<()> {
    let dir = manifests_dir();
    let base_dir = dir.to_string_lossy().into_owned();
    let Some(base) = kustomize_build(&[&base_dir])? else {
        eprintln!(
            "SKIP kustomize_builds_base_and_overlay: kubectl is not installed (apt-get install kubectl)"
        );
        return Ok(());
    };
    let overlay_dir = dir.join("pod-network").to_string_lossy().into_owned();
    let overlay = kustomize_build(&["--load-restrictor=LoadRestrictionsNone", &overlay_dir])?
        .context("kubectl vanished")?;

    check_all_strict(&base)?;
    check_all_strict(&overlay)?;
    // The build contains exactly the objects of the files.
    let key = |d: &Doc| (d.kind().to_string(), d.name().to_string());
    let mut from_files: Vec<_> = manifest_docs()?.iter().map(key).collect();
    // And the generated CRDs (`crds` in the resources).
    for name in yaml_files(&dir.join("crds"))? {
        if name == "kustomization.yaml" {
            continue;
        }
        let text = std::fs::read_to_string(dir.join("crds").join(&name))?;
        from_files.extend(
            parse_docs(&format!("manifests/crds/{name}"), &text)?
                .iter()
                .map(key),
        );
    }
    let mut built: Vec<_> = base.iter().map(key).collect();
    from_files.sort();
    built.sort();
    assert_eq!(built, from_files);

    // The overlay differs from the base in exactly one place.
    assert_eq!(base.len(), overlay.len());
    let mut differences = Vec::new();
    for (b, o) in base.iter().zip(&overlay) {
        diff(
            &b.value,
            &o.value,
            &mut format!("{} {}", b.kind(), b.name()),
            &mut differences,
        );
    }
    assert_eq!(differences.len(), 1, "{differences:?}");
    assert!(
        differences[0].starts_with("DaemonSet speaker.spec.template.spec.containers[0].args[4]")
            && differences[0].contains("advertise-and-install"),
        "{differences:?}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Applying to the lab API server
// ---------------------------------------------------------------------------------------

/// Server-side apply of the Namespace and the ConfigMap through a normal kube::Client built
/// from a kubeconfig, then read back. (The lab API server does not serve apps/v1 or rbac,
/// so the other objects cannot be applied there.)
#[tokio::test]
async fn namespace_and_config_apply_to_the_lab_api_server() -> Result<()> {
    use kube::api::{Api, Patch, PatchParams};

    let docs = manifest_docs()?;
    let ns: Namespace = typed(find(&docs, "Namespace", NAMESPACE)?)?;
    let cm: ConfigMap = typed(find(&docs, "ConfigMap", "config")?)?;

    let server = ferrolb_apiserver::ApiServer::start().await?;
    let client = server.client().await?;

    let params = PatchParams::apply("ferrolb-manifests-test").force();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .patch(NAMESPACE, &params, &Patch::Apply(&ns))
        .await?;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    configmaps
        .patch("config", &params, &Patch::Apply(&cm))
        .await?;

    let ns_back = namespaces.get(NAMESPACE).await?;
    let labels = ns_back.metadata.labels.unwrap_or_default();
    for (k, v) in ns.metadata.labels.iter().flatten() {
        assert_eq!(labels.get(k), Some(v), "namespace label {k}");
    }
    let cm_back = configmaps.get("config").await?;
    assert_eq!(cm_back.data, cm.data);
    assert_eq!(cm_back.metadata.namespace.as_deref(), Some(NAMESPACE));
    assert!(cm_back.metadata.resource_version.is_some());

    // Re-applying the same manifests changes nothing (what `kubectl apply` does on re-runs).
    let rv = cm_back.metadata.resource_version.clone();
    configmaps
        .patch("config", &params, &Patch::Apply(&cm))
        .await?;
    assert_eq!(
        configmaps.get("config").await?.metadata.resource_version,
        rv
    );

    server.shutdown().await;
    Ok(())
}

/// Every manifest applied to the real kube-apiserver v1.28.7 (server-side apply with strict
/// field validation: an unknown or misplaced field is a 4xx, not a silent drop), the
/// FlowSchema in its v1beta3 form, and read back: the FlowSchema's priority level exists
/// (not `Dangling`), the Deployment and DaemonSet keep their pod specs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_manifest_applies_to_the_real_kube_apiserver() -> Result<()> {
    use kube::api::{Api, DynamicObject, Patch, PatchParams, ValidationDirective};
    use kube::core::{ApiResource, GroupVersionKind};

    let Some(api) = ferrolb_kubeapi::TestApi::real(
        "manifests::every_manifest_applies_to_the_real_kube_apiserver",
    )
    .await
    else {
        return Ok(());
    };
    let client = api.client().await;
    let mut docs: Vec<Doc> = manifest_docs()?
        .into_iter()
        .filter(|d| d.kind() != "FlowSchema")
        .collect();
    let old = std::fs::read_to_string(manifests_dir().join("before-1.29/flowcontrol.yaml"))?;
    docs.extend(parse_docs("manifests/before-1.29/flowcontrol.yaml", &old)?);
    // The Namespace first: everything else lives in it.
    docs.sort_by_key(|d| d.kind() != "Namespace");
    let mut params = PatchParams::apply("ferrolb-manifests-test").force();
    params.field_validation = Some(ValidationDirective::Strict);
    for doc in &docs {
        let v = &doc.value;
        let api_version = v["apiVersion"].as_str().context("apiVersion")?;
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let plural = format!("{}s", doc.kind().to_lowercase());
        let ar = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(group, version, doc.kind()),
            &plural,
        );
        let objects: Api<DynamicObject> = match v["metadata"]["namespace"].as_str() {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        objects
            .patch(doc.name(), &params, &Patch::Apply(v))
            .await
            .with_context(|| format!("{} rejected by kube-apiserver", doc.location()))?;
    }
    let fs_api: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("flowcontrol.apiserver.k8s.io", "v1beta3", "FlowSchema"),
            "flowschemas",
        ),
    );
    // The API server's own controller fills in the condition shortly after the write.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let fs = fs_api.get("ferrolb-controller-leader-election").await?;
        let dangling = fs.data["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Dangling")
            .map(|c| c["status"].clone());
        if dangling == Some(json!("False")) {
            break;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "FlowSchema conditions: {}",
            fs.data["status"]
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let d = deployments.get("controller").await?;
    let want: Deployment = typed(find(&manifest_docs()?, "Deployment", "controller")?)?;
    assert_eq!(
        only_container(pod_spec_of_deployment(&d)?)?.args,
        only_container(pod_spec_of_deployment(&want)?)?.args
    );
    let daemonsets: Api<DaemonSet> = Api::namespaced(client, NAMESPACE);
    assert!(daemonsets.get("speaker").await?.spec.is_some());
    Ok(())
}

/// The same two objects through the operator's real tool: `kubectl apply --server-side`
/// (when kubectl is installed) against the lab API server, then read back with kubectl.
#[tokio::test]
async fn kubectl_applies_namespace_and_config_to_the_lab_api_server() -> Result<()> {
    if which_kubectl().is_none() {
        eprintln!(
            "SKIP kubectl_applies_namespace_and_config_to_the_lab_api_server: kubectl is not installed (apt-get install kubectl)"
        );
        return Ok(());
    }
    let server = ferrolb_apiserver::ApiServer::start().await?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig)?;
    let kubectl = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.env("KUBECONFIG", &kubeconfig).args(args);
        cmd
    };

    let manifests = manifests_dir();
    let ns_file = manifests
        .join("namespace.yaml")
        .to_string_lossy()
        .into_owned();
    let cm_file = manifests.join("config.yaml").to_string_lossy().into_owned();
    let out = kubectl(&["apply", "--server-side", "-f", &ns_file, "-f", &cm_file])
        .output()
        .await?;
    ensure!(
        out.status.success(),
        "kubectl apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("namespace/metallb-system serverside-applied")
            && stdout.contains("configmap/config serverside-applied"),
        "{stdout}"
    );

    let out = kubectl(&["-n", NAMESPACE, "get", "configmap", "config", "-o", "json"])
        .output()
        .await?;
    ensure!(
        out.status.success(),
        "kubectl get failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let back: ConfigMap = serde_json::from_slice(&out.stdout)?;
    let docs = manifest_docs()?;
    let shipped: ConfigMap = typed(find(&docs, "ConfigMap", "config")?)?;
    assert_eq!(back.data, shipped.data);

    server.shutdown().await;
    Ok(())
}

fn which_kubectl() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("kubectl"))
        .find(|candidate| candidate.is_file())
}

// ---------------------------------------------------------------------------------------
// The image
// ---------------------------------------------------------------------------------------

/// The Dockerfile cannot be built here (no Docker engine), so check what can be checked
/// without one: it builds, `--locked`, the packages whose binaries the manifests run, copies
/// exactly those binaries into a non-root runtime stage, and those packages exist in the
/// workspace with binaries of those names.
#[test]
fn dockerfile_ships_the_binaries_the_manifests_run() -> Result<()> {
    let dockerfile = std::fs::read_to_string(repo_root().join("Dockerfile"))?;
    let docs = manifest_docs()?;
    let deployment: Deployment = typed(find(&docs, "Deployment", "controller")?)?;
    let daemonset: DaemonSet = typed(find(&docs, "DaemonSet", "speaker")?)?;
    let controller_cmd = only_container(pod_spec_of_deployment(&deployment)?)?
        .command
        .clone()
        .unwrap_or_default();
    let speaker_cmd = daemonset
        .spec
        .and_then(|s| s.template.spec)
        .context("speaker pod spec")?
        .containers
        .first()
        .and_then(|c| c.command.clone())
        .unwrap_or_default();
    let binaries = [
        controller_cmd
            .first()
            .context("controller command")?
            .clone(),
        speaker_cmd.first().context("speaker command")?.clone(),
    ];

    let stages: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(
        stages,
        [
            "FROM rust:1.95-bookworm AS build",
            "FROM debian:bookworm-slim"
        ]
    );
    let build = dockerfile
        .lines()
        .find(|l| l.contains("cargo build"))
        .context("no cargo build")?;
    assert!(
        build.contains("--release") && build.contains("--locked"),
        "{build}"
    );
    for bin in &binaries {
        assert!(
            build.contains(&format!("-p {bin}")),
            "{build} does not build {bin}"
        );
        assert!(
            dockerfile.contains(&format!("target/release/{bin} /out/{bin}")),
            "{bin} not copied out of the build"
        );
        assert!(
            dockerfile.contains(&format!("/out/{bin}")),
            "{bin} not in the image"
        );
    }
    let runtime = dockerfile
        .rsplit_once("FROM debian:bookworm-slim")
        .map(|(_, rest)| rest)
        .context("runtime stage")?;
    assert!(
        runtime.lines().any(|l| l.trim() == "USER 65534:65534"),
        "runtime stage must default to a non-root user"
    );

    // The packages exist, and have binaries of those names (once they have binaries).
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(repo_root().join("Cargo.toml"))
        .output()?;
    ensure!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: Value = serde_json::from_slice(&out.stdout)?;
    for bin in &binaries {
        let package = metadata["packages"]
            .as_array()
            .context("packages")?
            .iter()
            .find(|p| p["name"] == bin.as_str())
            .with_context(|| format!("no workspace package {bin}"))?;
        let bins: Vec<&str> = package["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| {
                t["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "bin"))
            })
            .filter_map(|t| t["name"].as_str())
            .collect();
        if bins.is_empty() {
            eprintln!("NOTE: package {bin} has no binary target yet; the image build needs one");
        } else {
            assert!(bins.contains(&bin.as_str()), "{bin}: binaries {bins:?}");
        }
    }
    Ok(())
}
