//! Server-side apply (`PATCH` with `application/apply-patch+yaml`), a faithful subset.
//!
//! Ownership is tracked per manager in `metadata.managedFields` as sets of leaf field paths
//! (see [`crate::fields`]). Applying a value to a field that another manager owns with a
//! different value is a 409 conflict unless `force=true`, which moves ownership to the
//! applier. Fields the applier owned before and no longer applies are removed unless some
//! other manager still owns them. Associative lists (e.g. `spec.ports` keyed by
//! port+protocol, `status.conditions` keyed by type) merge by key; other lists are atomic.

use serde_json::{Map, Value};

use crate::fields::{self, Elem, FieldSet, Manager};
use crate::patch::child;
use crate::resources::{ListKind, ResourceType};
use crate::status::ApiError;

/// Parameters of one apply request.
pub struct ApplyRequest<'a> {
    /// `fieldManager` query parameter.
    pub manager: &'a str,
    /// `force` query parameter.
    pub force: bool,
    /// `""` for the main resource, `"status"` for the status subresource.
    pub subresource: &'a str,
    /// Object name from the URL.
    pub name: &'a str,
    /// Timestamp recorded in managedFields.
    pub now: &'a str,
}

/// The part of an applied configuration this endpoint may change.
fn applicable_part(rt: &ResourceType, applied: &Value, subresource: &str) -> Value {
    let mut part = Map::new();
    if let Some(m) = applied.as_object() {
        for (k, v) in m {
            let keep = if subresource == "status" {
                k == "status"
            } else {
                !(rt.has_status && k == "status")
            };
            if keep {
                part.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(part)
}

/// Apply `applied` onto `base` (the live object, or a fresh skeleton when creating).
pub fn apply(
    rt: &ResourceType,
    mut base: Value,
    applied: &Value,
    req: &ApplyRequest<'_>,
) -> Result<Value, ApiError> {
    let part = applicable_part(rt, applied, req.subresource);
    let set = fields::leaves(rt, &part);
    let mut managers = fields::read_managers(&base);
    let is_me =
        |m: &Manager| m.manager == req.manager && m.apply && m.subresource == req.subresource;

    // Conflicts: another manager owns a field we set to a different value.
    let mut conflicts: Vec<(String, String)> = Vec::new();
    let mut conflicting: FieldSet = FieldSet::new();
    for p in &set {
        if matches!(p.last(), Some(Elem::K(_) | Elem::V(_))) {
            continue;
        }
        let differs = fields::get(rt, &base, p) != fields::get(rt, &part, p);
        if !differs {
            continue;
        }
        for m in managers.iter().filter(|m| !is_me(m)) {
            if m.fields.contains(p) {
                conflicts.push((m.manager.clone(), fields::render(p)));
                conflicting.insert(p.clone());
            }
        }
    }
    if !conflicts.is_empty() && !req.force {
        return Err(ApiError::apply_conflicts(rt, req.name, &conflicts));
    }
    for m in managers.iter_mut().filter(|m| !is_me(m)) {
        m.fields.retain(|p| !conflicting.contains(p));
    }

    // Fields we applied before and dropped now, owned by nobody else, are removed.
    let previous: FieldSet = managers
        .iter()
        .find(|m| is_me(m))
        .map(|m| m.fields.clone())
        .unwrap_or_default();
    let others: FieldSet = managers
        .iter()
        .filter(|m| !is_me(m))
        .flat_map(|m| m.fields.iter().cloned())
        .collect();
    for p in previous.difference(&set) {
        let owned_below = others
            .iter()
            .any(|o| o.len() >= p.len() && o[..p.len()] == p[..]);
        if !owned_below {
            fields::remove(rt, &mut base, p);
        }
    }

    merge(rt, &mut base, &part, "");

    match managers.iter_mut().find(|m| is_me(m)) {
        Some(m) => {
            m.fields = set;
            m.time = req.now.to_string();
        }
        None => managers.push(Manager {
            manager: req.manager.to_string(),
            apply: true,
            subresource: req.subresource.to_string(),
            api_version: rt.api_version(),
            time: req.now.to_string(),
            fields: set,
        }),
    }
    fields::write_managers(&mut base, &managers);
    Ok(base)
}

/// Merge applied values into `target`: maps recursively, keyed lists by key, sets as
/// unions, everything else replaced.
fn merge(rt: &ResourceType, target: &mut Value, applied: &Value, dotted: &str) {
    let Some(am) = applied.as_object() else {
        *target = applied.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Some(tm) = target.as_object_mut() else {
        return;
    };
    for (k, v) in am {
        let cpath = child(dotted, k);
        match v {
            Value::Null => {
                tm.remove(k);
            }
            Value::Object(_) => {
                let slot = tm
                    .entry(k.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                merge(rt, slot, v, &cpath);
            }
            Value::Array(items) => match rt.list_rule(&cpath) {
                Some(ListKind::Map(keys)) => {
                    let slot = tm
                        .entry(k.clone())
                        .or_insert_with(|| Value::Array(Vec::new()));
                    if !slot.is_array() {
                        *slot = Value::Array(Vec::new());
                    }
                    if let Some(list) = slot.as_array_mut() {
                        for item in items {
                            let key = fields::item_key(item, keys);
                            match list.iter_mut().find(|t| fields::item_key(t, keys) == key) {
                                Some(t) => merge(rt, t, item, &cpath),
                                None => list.push(item.clone()),
                            }
                        }
                    }
                }
                Some(ListKind::Set) => {
                    let slot = tm
                        .entry(k.clone())
                        .or_insert_with(|| Value::Array(Vec::new()));
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
                    tm.insert(k.clone(), v.clone());
                }
            },
            scalar => {
                tm.insert(k.clone(), scalar.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{RESOURCES, lookup};
    use serde_json::json;

    fn cm() -> &'static ResourceType {
        &RESOURCES[lookup("", "v1", "configmaps").unwrap_or(0)]
    }

    fn req<'a>(manager: &'a str, force: bool) -> ApplyRequest<'a> {
        ApplyRequest {
            manager,
            force,
            subresource: "",
            name: "c",
            now: "t",
        }
    }

    #[test]
    fn conflict_force_and_removal() {
        let base = json!({"metadata": {"name": "c"}});
        let a = apply(
            cm(),
            base,
            &json!({"data": {"x": "1", "y": "1"}}),
            &req("a", false),
        );
        let a = a.unwrap_or_default();
        // Same value: shared ownership, no conflict.
        let b = apply(
            cm(),
            a.clone(),
            &json!({"data": {"x": "1"}}),
            &req("b", false),
        );
        assert!(b.is_ok());
        // Different value: conflict naming manager and field.
        let e = apply(
            cm(),
            a.clone(),
            &json!({"data": {"y": "2"}}),
            &req("b", false),
        )
        .err();
        assert_eq!(e.as_ref().map(|e| e.code), Some(409));
        assert!(
            e.map(|e| e.message)
                .unwrap_or_default()
                .contains("conflict with \"a\": .data.y")
        );
        // Force takes ownership; then `a` dropping y does not remove it (b owns it).
        let f = apply(cm(), a, &json!({"data": {"y": "2"}}), &req("b", true)).unwrap_or_default();
        assert_eq!(f["data"]["y"], json!("2"));
        let g = apply(cm(), f, &json!({"data": {"x": "1"}}), &req("a", false)).unwrap_or_default();
        assert_eq!(g["data"], json!({"x": "1", "y": "2"}));
        // b stops applying y: nobody owns it any more, so it is removed.
        let h = apply(cm(), g, &json!({"data": {}}), &req("b", false)).unwrap_or_default();
        assert_eq!(h["data"], json!({"x": "1"}));
    }
}
