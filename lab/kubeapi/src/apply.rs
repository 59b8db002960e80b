//! `kubectl apply --server-side` for manifests, as a function: every document of a YAML
//! text, server-side applied with strict field validation (an unknown or misplaced field is
//! a 4xx, not a silent drop). Re-applying the same text is a no-op, so it can run against
//! the shared server of a test binary any number of times.

use kube::api::{DynamicObject, Patch, PatchParams, ValidationDirective};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, Client};
use serde_json::Value;

/// Why a document was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The text is not YAML, or a document lacks apiVersion/kind/metadata.name.
    #[error("{0}")]
    Document(String),
    /// The server refused the object.
    #[error("{kind} {name}: {source}")]
    Rejected {
        /// Kind.
        kind: String,
        /// Name.
        name: String,
        /// The server's answer.
        source: kube::Error,
    },
}

/// Applies one object (its plural is its kind, lowercased, plus `s`: true for every kind
/// ferrolb ships).
pub async fn apply_value(client: &Client, manager: &str, v: &Value) -> Result<(), ApplyError> {
    let field = |k: &str| {
        v.pointer(k)
            .and_then(Value::as_str)
            .ok_or_else(|| ApplyError::Document(format!("a document without {k}: {v}")))
    };
    let api_version = field("/apiVersion")?;
    let kind = field("/kind")?;
    let name = field("/metadata/name")?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, kind),
        &plural(kind),
    );
    let api: Api<DynamicObject> = match v.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    let mut params = PatchParams::apply(manager).force();
    params.field_validation = Some(ValidationDirective::Strict);
    api.patch(name, &params, &Patch::Apply(v))
        .await
        .map_err(|source| ApplyError::Rejected {
            kind: kind.to_string(),
            name: name.to_string(),
            source,
        })?;
    Ok(())
}

/// Applies every document of `yaml` in order; returns how many.
pub async fn apply_yaml(client: &Client, manager: &str, yaml: &str) -> Result<usize, ApplyError> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(yaml).map_err(|e| ApplyError::Document(e.to_string()))?;
    let mut n = 0;
    for d in docs.iter().filter(|d| !d.is_null()) {
        apply_value(client, manager, d).await?;
        n += 1;
    }
    Ok(n)
}

/// ferrolb's manifests a real cluster needs before the daemons run (Namespace,
/// ServiceAccounts, RBAC, the FlowSchema in the v1beta3 form v1.28 serves), as
/// (file, text) in apply order.
pub const RBAC_MANIFESTS: [(&str, &str); 4] = [
    (
        "manifests/namespace.yaml",
        include_str!("../../../manifests/namespace.yaml"),
    ),
    (
        "manifests/rbac-controller.yaml",
        include_str!("../../../manifests/rbac-controller.yaml"),
    ),
    (
        "manifests/rbac-speaker.yaml",
        include_str!("../../../manifests/rbac-speaker.yaml"),
    ),
    (
        "manifests/before-1.29/flowcontrol.yaml",
        include_str!("../../../manifests/before-1.29/flowcontrol.yaml"),
    ),
];

/// Applies [`RBAC_MANIFESTS`].
pub async fn apply_rbac_manifests(client: &Client, manager: &str) -> Result<(), ApplyError> {
    for (file, text) in RBAC_MANIFESTS {
        apply_yaml(client, manager, text)
            .await
            .map_err(|e| ApplyError::Document(format!("{file}: {e}")))?;
    }
    Ok(())
}

/// The resource name of `kind` (Kubernetes' default pluralisation, enough for every kind
/// ferrolb applies: `Community` -> `communities`).
pub fn plural(kind: &str) -> String {
    let lower = kind.to_lowercase();
    match lower.strip_suffix('y') {
        Some(stem) => format!("{stem}ies"),
        None => format!("{lower}s"),
    }
}

/// `manifests/crds/`: MetalLB's six `metallb.io` CRDs as ferrolb generates them.
pub const CRD_MANIFESTS: [(&str, &str); 6] = [
    (
        "manifests/crds/metallb.io_bfdprofiles.yaml",
        include_str!("../../../manifests/crds/metallb.io_bfdprofiles.yaml"),
    ),
    (
        "manifests/crds/metallb.io_bgpadvertisements.yaml",
        include_str!("../../../manifests/crds/metallb.io_bgpadvertisements.yaml"),
    ),
    (
        "manifests/crds/metallb.io_bgppeers.yaml",
        include_str!("../../../manifests/crds/metallb.io_bgppeers.yaml"),
    ),
    (
        "manifests/crds/metallb.io_communities.yaml",
        include_str!("../../../manifests/crds/metallb.io_communities.yaml"),
    ),
    (
        "manifests/crds/metallb.io_ipaddresspools.yaml",
        include_str!("../../../manifests/crds/metallb.io_ipaddresspools.yaml"),
    ),
    (
        "manifests/crds/metallb.io_l2advertisements.yaml",
        include_str!("../../../manifests/crds/metallb.io_l2advertisements.yaml"),
    ),
];

/// Applies [`CRD_MANIFESTS`] and waits (at most 30 s) until every CRD is `Established`, so
/// its objects can be created and watched right after. Real API server only: the lab API
/// server serves no CRDs.
pub async fn apply_crd_manifests(client: &Client, manager: &str) -> Result<(), ApplyError> {
    let mut names = Vec::new();
    for (file, text) in CRD_MANIFESTS {
        apply_yaml(client, manager, text)
            .await
            .map_err(|e| ApplyError::Document(format!("{file}: {e}")))?;
        let v: Value =
            serde_saphyr::from_str(text).map_err(|e| ApplyError::Document(e.to_string()))?;
        if let Some(n) = v.pointer("/metadata/name").and_then(Value::as_str) {
            names.push(n.to_string());
        }
    }
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
        "customresourcedefinitions",
    );
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    for name in names {
        loop {
            let established = api.get(&name).await.ok().is_some_and(|o| {
                o.data
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == "Established" && c["status"] == "True")
                    })
            });
            if established {
                break;
            }
            if std::time::Instant::now() > deadline {
                return Err(ApplyError::Document(format!(
                    "CRD {name} not Established within 30 s"
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    Ok(())
}
