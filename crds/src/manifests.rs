//! The CRD manifests, generated from the types in [`crate::types`].
//!
//! `kube`'s derive produces each `CustomResourceDefinition`; two normalisations then make
//! the schemas read like MetalLB's (controller-gen's) own:
//! - `nullable: true`, which the derive puts on every `Option` field, is dropped: MetalLB's
//!   schemas have none, so an explicit `null` is pruned and the field's default applies;
//!   so is schemars' root `title`;
//! - kinds whose spec may be empty (`BGPAdvertisement`, `L2Advertisement`, `BFDProfile`,
//!   `Community`) get `spec` out of the root `required` list and `default: {}`: MetalLB's own
//!   documentation applies a `BGPAdvertisement` with no spec at all ("advertise every
//!   pool"), and with the default the API server hands such an object back with an (empty)
//!   spec, which the typed structs need. `IPAddressPool` requires its spec, as in MetalLB;
//!   so does `BGPPeer` here (MetalLB's schema does not, its controller then refuses the peer:
//!   "missing local ASN"; a default `{}` is not possible, the API server refuses a default
//!   that lacks the required `myASN`).
//!
//! `manifests/crds/` holds the output (one file per CRD, MetalLB's file names); the test
//! `tests/manifests.rs` fails when it is stale, and
//! `cargo run -p ferrolb-crds --bin ferrolb-crd-manifests -- manifests/crds` rewrites it.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::Value;

use crate::types::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement,
};

/// One CRD and the file it is written to.
#[derive(Debug, Clone)]
pub struct CrdManifest {
    /// File name in `manifests/crds/` (MetalLB's: `metallb.io_<plural>.yaml`).
    pub file: String,
    /// The normalised definition.
    pub crd: CustomResourceDefinition,
}

/// Every CRD ferrolb serves, normalised as described above (built once).
pub fn crds() -> &'static [CrdManifest] {
    static ALL: std::sync::OnceLock<Vec<CrdManifest>> = std::sync::OnceLock::new();
    ALL.get_or_init(build)
}

fn build() -> Vec<CrdManifest> {
    [
        (BGPAdvertisement::crd(), false),
        (BFDProfile::crd(), false),
        (BGPPeer::crd(), true),
        (Community::crd(), false),
        (IPAddressPool::crd(), true),
        (L2Advertisement::crd(), false),
    ]
    .into_iter()
    .map(|(crd, spec_required)| {
        let file = format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural);
        CrdManifest {
            file,
            crd: normalise(crd, spec_required),
        }
    })
    .collect()
}

fn normalise(crd: CustomResourceDefinition, spec_required: bool) -> CustomResourceDefinition {
    let mut v = serde_json::to_value(&crd).expect("a CRD serialises");
    drop_nullable(&mut v);
    for version in v["spec"]["versions"].as_array_mut().into_iter().flatten() {
        let root = &mut version["schema"]["openAPIV3Schema"];
        root.as_object_mut().map(|o| o.remove("title"));
        if !spec_required {
            if let Some(req) = root.get_mut("required").and_then(Value::as_array_mut) {
                req.retain(|r| r != "spec");
                if req.is_empty() {
                    root.as_object_mut().map(|o| o.remove("required"));
                }
            }
            if let Some(spec) = root["properties"].get_mut("spec") {
                spec["default"] = Value::Object(Default::default());
            }
        }
    }
    serde_json::from_value(v).expect("the normalised CRD is still a CRD")
}

fn drop_nullable(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.remove("nullable");
            map.values_mut().for_each(drop_nullable);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nullable),
        _ => {}
    }
}

/// Whole-number bounds as integers (`JSONSchemaProps` holds them as `f64`, which would print
/// `minimum: 1.0`).
fn integral_bounds(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, x) in map.iter_mut() {
                if matches!(k.as_str(), "minimum" | "maximum")
                    && let Some(f) = x.as_f64()
                    && f.fract() == 0.0
                    && (0.0..=u32::MAX as f64).contains(&f.abs())
                {
                    *x = Value::from(f as i64);
                } else {
                    integral_bounds(x);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_bounds),
        _ => {}
    }
}

/// The text of one manifest file.
pub fn render(m: &CrdManifest) -> String {
    let mut v = serde_json::to_value(&m.crd).expect("a CRD serialises");
    integral_bounds(&mut v);
    let yaml = serde_saphyr::to_string(&v).expect("a CRD renders as YAML");
    format!(
        "# Generated from the types in crds/src/types by ferrolb-crds; do not edit.\n\
         # Regenerate: cargo run -p ferrolb-crds --bin ferrolb-crd-manifests -- manifests/crds\n\
         ---\n{yaml}"
    )
}

/// `kustomization.yaml` for the directory: every CRD file.
pub fn kustomization(manifests: &[CrdManifest]) -> String {
    let mut out = String::from(
        "# Generated by ferrolb-crds; do not edit. `kubectl apply -k manifests/crds/`.\n\
         apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n",
    );
    for m in manifests {
        out.push_str(&format!("  - {}\n", m.file));
    }
    out
}

/// Every file of `manifests/crds/`: (name, contents).
pub fn files() -> Vec<(String, String)> {
    let all = crds();
    let mut out: Vec<(String, String)> = all.iter().map(|m| (m.file.clone(), render(m))).collect();
    out.push(("kustomization.yaml".to_string(), kustomization(all)));
    out
}
