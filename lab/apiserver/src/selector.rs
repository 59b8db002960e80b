//! Label and field selectors (`labelSelector=`, `fieldSelector=`).
//!
//! The grammar is Kubernetes' (`k8s.io/apimachinery/pkg/labels`): comma-separated
//! requirements that must all hold; a malformed selector is a 400 BadRequest.

use serde_json::Value;

use crate::resources::ResourceType;
use crate::status::ApiError;

/// One label requirement.
#[derive(Debug, Clone, PartialEq)]
enum LabelReq {
    Exists(String),
    NotExists(String),
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Gt(String, i64),
    Lt(String, i64),
}

/// A parsed label selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<LabelReq>);

/// A parsed field selector: (JSON pointer of the field, equal?, value).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

fn parse_err(msg: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("unable to parse requirement: {msg}"))
}

/// Split at commas that are not inside parentheses.
fn split_top(s: &str) -> Result<Vec<&str>, ApiError> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(parse_err("found ')', expected: identifier"));
                }
            }
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(parse_err("found '', expected: ',' or ')'"));
    }
    out.push(&s[start..]);
    Ok(out)
}

/// `[prefix/]name` where name is <= 63 chars of `[A-Za-z0-9._-]`, alnum at both ends.
fn valid_key(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(p) = prefix
        && (p.is_empty()
            || p.len() > 253
            || !p
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'))
    {
        return false;
    }
    valid_value(name) && !name.is_empty()
}

/// A label value: empty, or <= 63 chars of `[A-Za-z0-9._-]` starting and ending alphanumeric.
fn valid_value(v: &str) -> bool {
    if v.is_empty() {
        return true;
    }
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && v.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
}

fn check_key(k: &str) -> Result<String, ApiError> {
    if valid_key(k) {
        Ok(k.to_string())
    } else {
        Err(parse_err(format!(
            "invalid label key \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        )))
    }
}

fn check_value(v: &str) -> Result<String, ApiError> {
    if valid_value(v) {
        Ok(v.to_string())
    } else {
        Err(parse_err(format!(
            "invalid label value: \"{v}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        )))
    }
}

fn parse_set(rest: &str) -> Result<Vec<String>, ApiError> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| parse_err(format!("found '{rest}', expected: '('")))?;
    inner
        .split(',')
        .map(|v| check_value(v.trim()))
        .collect::<Result<Vec<_>, _>>()
}

fn parse_req(r: &str) -> Result<LabelReq, ApiError> {
    let r = r.trim();
    if r.is_empty() {
        return Err(parse_err(
            "found '', expected: !, identifier, or 'end of string'",
        ));
    }
    if let Some(k) = r.strip_prefix('!') {
        return Ok(LabelReq::NotExists(check_key(k.trim())?));
    }
    if let Some((k, v)) = r.split_once("!=") {
        return Ok(LabelReq::NotEq(
            check_key(k.trim())?,
            check_value(v.trim())?,
        ));
    }
    if let Some((k, v)) = r.split_once("==") {
        return Ok(LabelReq::Eq(check_key(k.trim())?, check_value(v.trim())?));
    }
    if let Some((k, v)) = r.split_once('=') {
        return Ok(LabelReq::Eq(check_key(k.trim())?, check_value(v.trim())?));
    }
    for (op, is_gt) in [(">", true), ("<", false)] {
        if let Some((k, v)) = r.split_once(op) {
            let n: i64 = v.trim().parse().map_err(|_| {
                parse_err(format!(
                    "for 'Gt', 'Lt' operators, the value must be an integer, got {v}"
                ))
            })?;
            let k = check_key(k.trim())?;
            return Ok(if is_gt {
                LabelReq::Gt(k, n)
            } else {
                LabelReq::Lt(k, n)
            });
        }
    }
    // `key in (..)`, `key notin (..)` or a bare `key`.
    let mut it = r.splitn(2, char::is_whitespace);
    let key = it.next().unwrap_or_default();
    let rest = it.next().unwrap_or("").trim_start();
    if rest.is_empty() {
        if key.contains('(') || key.contains(')') {
            return Err(parse_err(format!("found '{key}', expected: identifier")));
        }
        return Ok(LabelReq::Exists(check_key(key)?));
    }
    if let Some(set) = rest.strip_prefix("notin") {
        return Ok(LabelReq::NotIn(check_key(key)?, parse_set(set)?));
    }
    if let Some(set) = rest.strip_prefix("in") {
        return Ok(LabelReq::In(check_key(key)?, parse_set(set)?));
    }
    Err(parse_err(format!(
        "found '{rest}', expected: in, notin, =, ==, !=, gt, lt"
    )))
}

impl LabelSelector {
    /// Parse a `labelSelector` query value.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        if s.trim().is_empty() {
            return Ok(Self::default());
        }
        split_top(s)?
            .into_iter()
            .map(parse_req)
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// True when the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Does `obj` (its `metadata.labels`) satisfy every requirement?
    pub fn matches(&self, obj: &Value) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::Gt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x > *n),
            LabelReq::Lt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x < *n),
        })
    }
}

impl FieldSelector {
    /// Parse a `fieldSelector` query value for resource type `rt`: `metadata.name`,
    /// `metadata.namespace` and the type's own field labels; others are a 400.
    pub fn parse(s: &str, rt: &ResourceType) -> Result<Self, ApiError> {
        let mut out = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self(out));
        }
        for part in s.split(',') {
            let part = part.trim();
            let (k, eq, v) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            let k = k.trim();
            let path = match k {
                "metadata.name" | "metadata.namespace" => k,
                other => rt
                    .field_labels()
                    .iter()
                    .find(|(label, _)| *label == other)
                    .map(|(_, path)| *path)
                    .ok_or_else(|| {
                        ApiError::bad_request(format!("field label not supported: {other}"))
                    })?,
            };
            out.push((
                format!("/{}", path.replace('.', "/")),
                eq,
                v.trim().to_string(),
            ));
        }
        Ok(Self(out))
    }

    /// True when the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Does `obj` satisfy every requirement? (Fields compare as their string form; a
    /// missing field is "".)
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(ptr, eq, v)| {
            let field = match obj.pointer(ptr) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (&field == v) == *eq
        })
    }
}

/// The part of an object any selector on type `rt` can look at (name, namespace, labels
/// and the type's field labels), kept for a changed object's previous version so filtered
/// watches can see it start or stop matching without keeping the whole old object.
pub fn selectable_summary(rt: &ResourceType, obj: &Value) -> Value {
    let mut out = serde_json::json!({"metadata": {
        "name": obj.pointer("/metadata/name"),
        "namespace": obj.pointer("/metadata/namespace"),
        "labels": obj.pointer("/metadata/labels"),
    }});
    for (_, path) in rt.field_labels() {
        let Some(v) = obj.pointer(&format!("/{}", path.replace('.', "/"))) else {
            continue;
        };
        let mut node = &mut out;
        let parts: Vec<&str> = path.split('.').collect();
        for (i, p) in parts.iter().enumerate() {
            let Some(m) = node.as_object_mut() else {
                break;
            };
            if i + 1 == parts.len() {
                m.insert((*p).to_string(), v.clone());
                break;
            }
            node = m
                .entry((*p).to_string())
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{RESOURCES, lookup};
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns1", "labels": labels}})
    }

    #[test]
    fn label_operators() {
        let o = obj(json!({"app": "web", "tier": "front", "n": "5"}));
        let m = |s: &str| LabelSelector::parse(s).map(|l| l.matches(&o));
        assert_eq!(m("app=web").ok(), Some(true));
        assert_eq!(m("app==web,tier=front").ok(), Some(true));
        assert_eq!(m("app!=web").ok(), Some(false));
        assert_eq!(m("app in (db, web)").ok(), Some(true));
        assert_eq!(m("app notin (db,web)").ok(), Some(false));
        assert_eq!(m("app,!missing").ok(), Some(true));
        assert_eq!(m("!app").ok(), Some(false));
        assert_eq!(m("n>4,n<6").ok(), Some(true));
        assert_eq!(m("missing!=x").ok(), Some(true));
        assert_eq!(m("").ok(), Some(true));
    }

    #[test]
    fn malformed_labels_rejected() {
        for bad in [
            "app in (a",
            "a b c",
            "=x",
            "app=in valid",
            "a,,b",
            "-bad-=x",
            "n>x",
        ] {
            let e = LabelSelector::parse(bad).err();
            assert_eq!(e.map(|e| e.code), Some(400), "{bad}");
        }
    }

    #[test]
    fn field_selector() {
        let o = obj(json!({}));
        let cm = &RESOURCES[lookup("", "v1", "configmaps").unwrap_or(0)];
        let f = FieldSelector::parse("metadata.name=a,metadata.namespace!=x", cm).ok();
        assert_eq!(f.map(|f| f.matches(&o)), Some(true));
        let f = FieldSelector::parse("metadata.name==b", cm).ok();
        assert_eq!(f.map(|f| f.matches(&o)), Some(false));
        assert!(FieldSelector::parse("spec.foo=1", cm).is_err());
        assert!(FieldSelector::parse("garbage", cm).is_err());
        let ev = &RESOURCES[lookup("", "v1", "events").unwrap_or(0)];
        let e = json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Service", "name": "web"}, "source": {"component": "c"}});
        let f = FieldSelector::parse(
            "involvedObject.kind=Service,involvedObject.name=web,source=c",
            ev,
        )
        .ok();
        assert_eq!(f.as_ref().map(|f| f.matches(&e)), Some(true));
        let summary = selectable_summary(ev, &e);
        assert_eq!(f.map(|f| f.matches(&summary)), Some(true));
    }
}
