//! Field paths and `metadata.managedFields` (the ownership record behind server-side apply).
//!
//! A field set is the set of *leaf* paths of an object: scalars, atomic lists, empty maps,
//! and for associative lists the presence of each item (`k:{"port":80,...}`) plus its fields;
//! set-lists contribute one `v:<value>` per element. The encoding in `managedFields` is
//! Kubernetes' `FieldsV1` (`f:`, `k:`, `v:` prefixes, `.` for an item itself).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::patch::child;
use crate::resources::{ListKind, ResourceType};

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Elem {
    /// A map field.
    F(String),
    /// An associative-list item, identified by its canonical key JSON.
    K(String),
    /// A set-list element, identified by its JSON.
    V(String),
}

/// A path from the object root.
pub type Path = Vec<Elem>;
/// A set of leaf paths.
pub type FieldSet = BTreeSet<Path>;

/// Top-level and metadata fields the server owns; they never appear in field sets.
fn is_system(path: &[Elem]) -> bool {
    match path {
        [Elem::F(a)] => a == "apiVersion" || a == "kind",
        [Elem::F(m), Elem::F(f), ..] if m == "metadata" => matches!(
            f.as_str(),
            "name"
                | "namespace"
                | "uid"
                | "resourceVersion"
                | "generation"
                | "creationTimestamp"
                | "managedFields"
                | "deletionTimestamp"
                | "selfLink"
                | "generateName"
        ),
        _ => false,
    }
}

/// The key JSON of an associative-list item (missing `protocol` defaults to `TCP`, as the
/// real schema's key default does for Service ports).
pub fn item_key(item: &Value, keys: &[&str]) -> String {
    let mut m = Map::new();
    for k in keys {
        match item.get(*k) {
            Some(v) => {
                m.insert((*k).to_string(), v.clone());
            }
            None if *k == "protocol" => {
                m.insert((*k).to_string(), json!("TCP"));
            }
            None => {}
        }
    }
    Value::Object(m).to_string()
}

/// All leaf paths of `v` for an object of type `rt`.
pub fn leaves(rt: &ResourceType, v: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    walk(rt, v, &mut Vec::new(), "", &mut out);
    out
}

fn walk(rt: &ResourceType, v: &Value, path: &mut Path, dotted: &str, out: &mut FieldSet) {
    if is_system(path) {
        return;
    }
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                path.push(Elem::F(k.clone()));
                walk(rt, c, path, &child(dotted, k), out);
                path.pop();
            }
        }
        Value::Array(items) => match rt.list_rule(dotted) {
            Some(ListKind::Map(keys)) => {
                for item in items {
                    path.push(Elem::K(item_key(item, keys)));
                    out.insert(path.clone());
                    if let Value::Object(m) = item {
                        for (k, c) in m {
                            path.push(Elem::F(k.clone()));
                            walk(rt, c, path, &child(dotted, k), out);
                            path.pop();
                        }
                    }
                    path.pop();
                }
            }
            Some(ListKind::Set) => {
                for item in items {
                    path.push(Elem::V(item.to_string()));
                    out.insert(path.clone());
                    path.pop();
                }
            }
            None => {
                out.insert(path.clone());
            }
        },
        _ => {
            if !path.is_empty() {
                out.insert(path.clone());
            }
        }
    }
}

/// The value at `path` in `v`, if present.
pub fn get<'a>(rt: &ResourceType, v: &'a Value, path: &[Elem]) -> Option<&'a Value> {
    let mut cur = v;
    let mut dotted = String::new();
    for e in path {
        cur = match e {
            Elem::F(k) => {
                dotted = child(&dotted, k);
                cur.get(k)?
            }
            Elem::K(key) => {
                let keys = match rt.list_rule(&dotted) {
                    Some(ListKind::Map(keys)) => keys,
                    _ => return None,
                };
                cur.as_array()?.iter().find(|i| &item_key(i, keys) == key)?
            }
            Elem::V(val) => cur.as_array()?.iter().find(|i| &i.to_string() == val)?,
        };
    }
    Some(cur)
}

/// Remove the field or list item at `path` from `v` (missing paths are ignored).
pub fn remove(rt: &ResourceType, v: &mut Value, path: &[Elem]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let dotted = parent_path
        .iter()
        .filter_map(|e| match e {
            Elem::F(k) => Some(k.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(".");
    let Some(parent) = get_mut(rt, v, parent_path) else {
        return;
    };
    match last {
        Elem::F(k) => {
            if let Some(m) = parent.as_object_mut() {
                m.remove(k);
            }
        }
        Elem::K(key) => {
            if let (Some(ListKind::Map(keys)), Some(a)) =
                (rt.list_rule(&dotted), parent.as_array_mut())
            {
                a.retain(|i| &item_key(i, keys) != key);
            }
        }
        Elem::V(val) => {
            if let Some(a) = parent.as_array_mut() {
                a.retain(|i| &i.to_string() != val);
            }
        }
    }
}

fn get_mut<'a>(rt: &ResourceType, v: &'a mut Value, path: &[Elem]) -> Option<&'a mut Value> {
    let mut cur = v;
    let mut dotted = String::new();
    for e in path {
        cur = match e {
            Elem::F(k) => {
                dotted = child(&dotted, k);
                cur.get_mut(k)?
            }
            Elem::K(key) => {
                let keys = match rt.list_rule(&dotted) {
                    Some(ListKind::Map(keys)) => keys,
                    _ => return None,
                };
                cur.as_array_mut()?
                    .iter_mut()
                    .find(|i| &item_key(i, keys) == key)?
            }
            Elem::V(val) => cur
                .as_array_mut()?
                .iter_mut()
                .find(|i| &i.to_string() == val)?,
        };
    }
    Some(cur)
}

/// `.spec.ports[port=80,protocol="TCP"].name`-style rendering, as in conflict messages.
pub fn render(path: &[Elem]) -> String {
    let mut s = String::new();
    for e in path {
        match e {
            Elem::F(k) => {
                s.push('.');
                s.push_str(k);
            }
            Elem::K(k) => {
                let inner = serde_json::from_str::<Map<String, Value>>(k)
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default();
                s.push_str(&format!("[{inner}]"));
            }
            Elem::V(v) => s.push_str(&format!("[={v}]")),
        }
    }
    s
}

/// Encode a field set as `FieldsV1` JSON.
pub fn encode(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for (i, e) in path.iter().enumerate() {
            let key = match e {
                Elem::F(k) => format!("f:{k}"),
                Elem::K(k) => format!("k:{k}"),
                Elem::V(v) => format!("v:{v}"),
            };
            let entry = node.entry(key).or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(m) = entry else {
                break;
            };
            if i + 1 == path.len() && matches!(e, Elem::K(_)) {
                m.insert(".".into(), Value::Object(Map::new()));
            }
            node = m;
        }
    }
    Value::Object(root)
}

/// Decode `FieldsV1` JSON into a field set (unknown keys are skipped).
pub fn decode(v: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    decode_into(v, &mut Vec::new(), &mut out);
    out
}

fn decode_into(v: &Value, path: &mut Path, out: &mut FieldSet) {
    let Some(m) = v.as_object() else {
        return;
    };
    if m.is_empty() && !path.is_empty() {
        out.insert(path.clone());
        return;
    }
    for (k, c) in m {
        if k == "." {
            out.insert(path.clone());
            continue;
        }
        let e = if let Some(f) = k.strip_prefix("f:") {
            Elem::F(f.to_string())
        } else if let Some(f) = k.strip_prefix("k:") {
            Elem::K(f.to_string())
        } else if let Some(f) = k.strip_prefix("v:") {
            Elem::V(f.to_string())
        } else {
            continue;
        };
        path.push(e);
        decode_into(c, path, out);
        path.pop();
    }
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Manager {
    /// Manager name.
    pub manager: String,
    /// `Apply` or `Update`.
    pub apply: bool,
    /// `""` or `"status"`.
    pub subresource: String,
    /// apiVersion of the entry.
    pub api_version: String,
    /// RFC 3339 time of the last change.
    pub time: String,
    /// The owned fields.
    pub fields: FieldSet,
}

/// Read `metadata.managedFields` of `obj`.
pub fn read_managers(obj: &Value) -> Vec<Manager> {
    let Some(list) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|e| {
            Some(Manager {
                manager: e.get("manager")?.as_str()?.to_string(),
                apply: e.get("operation").and_then(Value::as_str) == Some("Apply"),
                subresource: e
                    .get("subresource")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                api_version: e
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                time: e
                    .get("time")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                fields: e.get("fieldsV1").map(decode).unwrap_or_default(),
            })
        })
        .collect()
}

/// Write `managers` into `metadata.managedFields` of `obj` (entries owning nothing dropped).
pub fn write_managers(obj: &mut Value, managers: &[Manager]) {
    let list: Vec<Value> = managers
        .iter()
        .filter(|m| !m.fields.is_empty())
        .map(|m| {
            let mut e = json!({
                "manager": m.manager,
                "operation": if m.apply { "Apply" } else { "Update" },
                "apiVersion": m.api_version,
                "time": m.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": encode(&m.fields),
            });
            if !m.subresource.is_empty()
                && let Some(o) = e.as_object_mut()
            {
                o.insert("subresource".into(), json!(m.subresource));
            }
            e
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Record a non-apply write (`Update` operation) by `manager`: it takes every leaf that
/// changed between `old` and `new`, and those leaves leave every other manager.
pub fn record_update(
    rt: &ResourceType,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: &str,
    now: &str,
) {
    let mut managers = old.map(read_managers).unwrap_or_default();
    let old_leaves = old.map(|o| leaves(rt, o)).unwrap_or_default();
    let new_leaves = leaves(rt, new);
    let mut changed = FieldSet::new();
    for p in &new_leaves {
        let before = old.and_then(|o| get(rt, o, p));
        if !old_leaves.contains(p) || before != get(rt, new, p) {
            changed.insert(p.clone());
        }
    }
    let removed: FieldSet = old_leaves.difference(&new_leaves).cloned().collect();
    if changed.is_empty() && removed.is_empty() {
        write_managers(new, &managers);
        return;
    }
    for m in &mut managers {
        m.fields
            .retain(|p| !changed.contains(p) && !removed.contains(p));
    }
    let api_version = rt.api_version();
    match managers
        .iter_mut()
        .find(|m| m.manager == manager && !m.apply && m.subresource == subresource)
    {
        Some(m) => {
            m.fields.extend(changed);
            m.time = now.to_string();
        }
        None => managers.push(Manager {
            manager: manager.to_string(),
            apply: false,
            subresource: subresource.to_string(),
            api_version,
            time: now.to_string(),
            fields: changed,
        }),
    }
    write_managers(new, &managers);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{RESOURCES, lookup};

    fn svc() -> &'static ResourceType {
        &RESOURCES[lookup("", "v1", "services").unwrap_or(0)]
    }

    #[test]
    fn leaves_roundtrip_through_fields_v1() {
        let o = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "a", "labels": {"x": "1"}, "finalizers": ["f"]},
            "spec": {"ports": [{"port": 80, "name": "http"}], "externalIPs": ["1.2.3.4"]}});
        let l = leaves(svc(), &o);
        assert_eq!(decode(&encode(&l)), l);
        let rendered: Vec<String> = l.iter().map(|p| render(p)).collect();
        assert!(
            rendered.contains(&".spec.ports[port=80,protocol=\"TCP\"].name".to_string()),
            "{rendered:?}"
        );
        assert!(rendered.contains(&".spec.externalIPs".to_string()));
        assert!(!rendered.iter().any(|r| r.starts_with(".metadata.name")));
        let p = l
            .iter()
            .find(|p| render(p) == ".spec.ports[port=80,protocol=\"TCP\"].name");
        assert_eq!(p.and_then(|p| get(svc(), &o, p)), Some(&json!("http")));
    }

    #[test]
    fn update_takes_changed_fields_from_others() {
        let mut old = json!({"metadata": {"name": "a"}, "spec": {"a": 1, "b": 2}});
        record_update(svc(), None, &mut old, "one", "", "t");
        let mut new = json!({"metadata": old["metadata"].clone(), "spec": {"a": 1, "b": 3}});
        record_update(svc(), Some(&old), &mut new, "two", "", "t");
        let ms = read_managers(&new);
        assert_eq!(ms.len(), 2);
        assert_eq!(ms[0].fields.len(), 1);
        assert_eq!(
            ms[1].fields.iter().map(|p| render(p)).collect::<Vec<_>>(),
            vec![".spec.b"]
        );
    }
}
