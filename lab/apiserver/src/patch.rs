//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch.
//!
//! Strategic merge patch is a faithful subset of Kubernetes': lists listed in the resource's
//! merge rules ([`crate::resources::ListRule`]) merge items by their merge key (the first key,
//! as `patchMergeKey`) or as sets; all other lists are replaced. The directives `$patch`
//! (`replace`/`delete` on maps and on keyed list items), `$retainKeys`,
//! `$deleteFromPrimitiveList/<field>` and `$setElementOrder/<field>` (accepted, order not
//! enforced) are understood.

use serde_json::{Map, Value};

use crate::resources::{ListKind, ResourceType};
use crate::status::ApiError;

/// Apply an RFC 7386 merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// Apply an RFC 6902 JSON patch given as a JSON array of operations.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| ApiError::bad_request(format!("json: cannot unmarshal patch: {e}")))?;
    json_patch::patch(target, &ops.0).map_err(|e| {
        // The real server answers 422 for a failed `test` op and 500/422 otherwise; both are
        // "the patch could not be applied" from the client's point of view.
        ApiError::invalid_patch(&e.to_string())
    })
}

impl ApiError {
    /// 422 for a JSON patch that does not apply to the object.
    pub fn invalid_patch(msg: &str) -> Self {
        let mut e = ApiError::bad_request(format!(
            "the server rejected our request due to an error in our request: {msg}"
        ));
        e.code = 422;
        e.reason = "Invalid";
        e
    }
}

/// Dotted child path.
pub fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A copy of `v` with `$` directives and (inside maps) null values removed, for content that
/// is inserted rather than merged.
fn strip(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, v)| !k.starts_with('$') && !v.is_null())
                .map(|(k, v)| (k.clone(), strip(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip).collect()),
        other => other.clone(),
    }
}

/// Apply a strategic merge patch to `target` (an object of type `rt`).
pub fn strategic_merge(
    rt: &ResourceType,
    target: &mut Value,
    patch: &Value,
) -> Result<(), ApiError> {
    if !patch.is_object() {
        return Err(ApiError::bad_request(
            "strategic merge patch must be a JSON object",
        ));
    }
    smp_map(rt, target, patch, "");
    Ok(())
}

fn smp_map(rt: &ResourceType, target: &mut Value, patch: &Value, path: &str) {
    let Some(pm) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    match pm.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *target = strip(patch);
            return;
        }
        Some("delete") => {
            *target = Value::Object(Map::new());
            return;
        }
        _ => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Some(tm) = target.as_object_mut() else {
        return;
    };
    for (k, v) in pm {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Some(del)) = (tm.get_mut(field), v.as_array()) {
                list.retain(|x| !del.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        let cpath = child(path, k);
        match v {
            Value::Null => {
                tm.remove(k);
            }
            Value::Object(_) => {
                let slot = tm.entry(k.clone()).or_insert(Value::Null);
                if v.get("$patch").and_then(Value::as_str) == Some("delete") {
                    tm.remove(k);
                } else {
                    smp_map(rt, slot, v, &cpath);
                }
            }
            Value::Array(items) => match rt.list_rule(&cpath) {
                Some(ListKind::Map(keys)) => {
                    let key = keys.first().copied().unwrap_or("name");
                    let slot = tm.entry(k.clone()).or_insert(Value::Array(Vec::new()));
                    smp_keyed_list(rt, slot, items, key, &cpath);
                }
                Some(ListKind::Set) => {
                    let slot = tm.entry(k.clone()).or_insert(Value::Array(Vec::new()));
                    if !slot.is_array() {
                        *slot = Value::Array(Vec::new());
                    }
                    if let Some(list) = slot.as_array_mut() {
                        for item in items {
                            if !list.contains(item) {
                                list.push(item.clone());
                            }
                        }
                    }
                }
                None => {
                    tm.insert(k.clone(), strip(v));
                }
            },
            scalar => {
                tm.insert(k.clone(), scalar.clone());
            }
        }
    }
    if let Some(Value::Array(retain)) = pm.get("$retainKeys") {
        tm.retain(|k, _| retain.iter().any(|r| r.as_str() == Some(k)));
    }
}

fn smp_keyed_list(rt: &ResourceType, slot: &mut Value, items: &[Value], key: &str, path: &str) {
    if items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        *slot = Value::Array(
            items
                .iter()
                .filter(|i| i.get("$patch").is_none())
                .map(strip)
                .collect(),
        );
        return;
    }
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    let Some(list) = slot.as_array_mut() else {
        return;
    };
    for item in items {
        let kv = item.get(key);
        let pos = kv.and_then(|kv| list.iter().position(|t| t.get(key) == Some(kv)));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                list.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => {
                if let Some(t) = list.get_mut(i) {
                    smp_map(rt, t, item, path);
                }
            }
            (None, false) => list.push(strip(item)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{RESOURCES, lookup};
    use serde_json::json;

    fn svc() -> &'static ResourceType {
        &RESOURCES[lookup("", "v1", "services").unwrap_or(0)]
    }

    #[test]
    fn smp_merges_ports_by_port_and_replaces_atomic_lists() {
        let mut t = json!({"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}],
            "externalIPs": ["1.1.1.1"]}, "metadata": {"finalizers": ["a"]}});
        let p = json!({"spec": {"ports": [{"port": 80, "name": "web"}, {"port": 8080}, {"port": 443, "$patch": "delete"}],
            "externalIPs": ["2.2.2.2"], "$setElementOrder/ports": [{"port": 80}]},
            "metadata": {"finalizers": ["b", "a"]}});
        strategic_merge(svc(), &mut t, &p).ok();
        assert_eq!(
            t,
            json!({"spec": {"ports": [{"port": 80, "name": "web"}, {"port": 8080}],
            "externalIPs": ["2.2.2.2"]}, "metadata": {"finalizers": ["a", "b"]}})
        );
    }

    #[test]
    fn smp_null_deletes_and_retain_keys() {
        let mut t = json!({"spec": {"a": 1, "b": 2, "c": {"d": 1}}});
        let p = json!({"spec": {"a": null, "c": {"$retainKeys": ["e"], "e": 5}}});
        strategic_merge(svc(), &mut t, &p).ok();
        assert_eq!(t, json!({"spec": {"b": 2, "c": {"e": 5}}}));
    }

    #[test]
    fn json_patch_errors_are_422() {
        let mut t = json!({"a": 1});
        let e = json_patch(&mut t, &json!([{"op": "test", "path": "/a", "value": 2}])).err();
        assert_eq!(e.map(|e| e.code), Some(422));
        assert!(json_patch(&mut t, &json!({"op": "x"})).is_err());
        assert!(
            json_patch(
                &mut t,
                &json!([{"op": "replace", "path": "/a", "value": 3}])
            )
            .is_ok()
        );
        assert_eq!(t, json!({"a": 3}));
    }
}
