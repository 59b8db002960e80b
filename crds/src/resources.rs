//! `metallb.io` objects from a YAML file (several documents, or a `kind: List`), strictly:
//! a field the CRD does not define is an error (the API server would silently prune it), and
//! so is a `metallb.io` kind ferrolb does not serve. Documents of other groups (a Namespace,
//! a ConfigMap) are skipped.

use ferrolb_config::{ConfigError, ConfigErrors, Line, ObjectRef, ROOT_PATH, Warning};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::manifests::crds;
use crate::to_model::Resources;
use crate::types::GROUP;

/// The objects of a file, with warnings (a deprecated version read as the current one).
pub fn parse_resources(text: &str) -> Result<(Resources, Vec<Warning>), ConfigErrors> {
    let docs: Vec<Value> = match serde_saphyr::from_str_multiple(text) {
        Ok(docs) => docs,
        Err(e) => {
            return Err(ConfigErrors {
                errors: vec![ConfigError {
                    object: None,
                    path: ROOT_PATH.to_string(),
                    line: Line::Unknown,
                    message: format!("invalid YAML: {e}"),
                }],
                warnings: Vec::new(),
            });
        }
    };
    let mut objects = Vec::new();
    for doc in docs {
        flatten(doc, &mut objects);
    }
    let mut r = Resources::default();
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    for mut v in objects {
        let api_version = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let Some((group, version)) = api_version.split_once('/') else {
            continue;
        };
        if group != GROUP {
            continue;
        }
        let version = version.to_string();
        let kind = v
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let name = v["metadata"]["name"].as_str().unwrap_or("").to_string();
        let o = ObjectRef {
            kind: kind.clone(),
            name,
        };
        if kind == "BGPPeer" && version == "v1beta1" {
            // MetalLB's deprecated version: its fields are a subset of v1beta2's, same names.
            warnings.push(Warning::on_object(
                o.clone(),
                "apiVersion",
                "metallb.io/v1beta1 BGPPeer is deprecated and not served by ferrolb's CRD; read \
                 as metallb.io/v1beta2 (same fields)",
            ));
            v["apiVersion"] = Value::from("metallb.io/v1beta2");
        } else if !crds().iter().any(|m| {
            m.crd.spec.names.kind == kind && m.crd.spec.versions.iter().any(|x| x.name == version)
        }) {
            errors.push(ConfigError::on_object(
                o,
                "apiVersion",
                format!("{api_version} {kind} is not a kind ferrolb serves"),
            ));
            continue;
        }
        let before = errors.len();
        unknown_fields(&o, &v, &kind, &mut errors);
        if errors.len() > before {
            continue;
        }
        // MetalLB does not require a spec; ferrolb's CRD defaults it to {} (see manifests).
        if v.get("spec").is_none() {
            v["spec"] = Value::Object(Default::default());
        }
        let e = &mut errors;
        match kind.as_str() {
            "IPAddressPool" => r.pools.extend(typed(&o, v, e)),
            "BGPAdvertisement" => r.bgp_advertisements.extend(typed(&o, v, e)),
            "L2Advertisement" => r.l2_advertisements.extend(typed(&o, v, e)),
            "BGPPeer" => r.peers.extend(typed(&o, v, e)),
            "BFDProfile" => r.bfd_profiles.extend(typed(&o, v, e)),
            "Community" => r.communities.extend(typed(&o, v, e)),
            _ => {}
        }
    }
    if errors.is_empty() {
        Ok((r, warnings))
    } else {
        Err(ConfigErrors { errors, warnings })
    }
}

fn flatten(doc: Value, out: &mut Vec<Value>) {
    if doc.get("kind").and_then(Value::as_str) == Some("List") {
        if let Some(Value::Array(items)) = doc.get("items") {
            for it in items.clone() {
                flatten(it, out);
            }
        }
        return;
    }
    if doc.is_object() {
        out.push(doc);
    }
}

fn typed<T: DeserializeOwned>(o: &ObjectRef, v: Value, errors: &mut Vec<ConfigError>) -> Option<T> {
    match serde_json::from_value(v) {
        Ok(t) => Some(t),
        Err(e) => {
            errors.push(ConfigError::on_object(o.clone(), "", format!("{e}")));
            None
        }
    }
}

/// Every field of `v` that the kind's CRD schema does not define.
fn unknown_fields(o: &ObjectRef, v: &Value, kind: &str, errors: &mut Vec<ConfigError>) {
    let Some(m) = crds().iter().find(|m| m.crd.spec.names.kind == kind) else {
        return;
    };
    let schema = m.crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .map(|s| serde_json::to_value(s).expect("schema serialises"))
        .unwrap_or_default();
    let Value::Object(root) = v else { return };
    for (key, value) in root {
        match key.as_str() {
            "apiVersion" | "kind" | "metadata" => {}
            _ => match schema["properties"].get(key) {
                Some(s) => walk(o, value, s, key, errors),
                None => errors.push(ConfigError::on_object(
                    o.clone(),
                    key.clone(),
                    "unknown field",
                )),
            },
        }
    }
}

fn walk(o: &ObjectRef, v: &Value, schema: &Value, path: &str, errors: &mut Vec<ConfigError>) {
    match v {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let extra = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, value) in map {
                let p = format!("{path}.{key}");
                match (props.and_then(|ps| ps.get(key)), extra) {
                    (Some(s), _) => walk(o, value, s, &p, errors),
                    (None, Some(s)) => walk(o, value, s, &p, errors),
                    (None, None) if props.is_some() => {
                        let known: Vec<&str> = props
                            .into_iter()
                            .flat_map(|ps| ps.keys())
                            .map(String::as_str)
                            .collect();
                        errors.push(ConfigError::on_object(
                            o.clone(),
                            p,
                            format!("unknown field; valid fields here: {}", known.join(", ")),
                        ));
                    }
                    (None, None) => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, it) in items.iter().enumerate() {
                    walk(o, it, s, &format!("{path}[{i}]"), errors);
                }
            }
        }
        _ => {}
    }
}
