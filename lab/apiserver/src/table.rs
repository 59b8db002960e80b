//! `meta.k8s.io/v1` Table responses, for `kubectl get`'s
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`.
//!
//! Columns follow upstream's printers for the resources ferrolb cares about (Service:
//! TYPE, CLUSTER-IP, EXTERNAL-IP, PORT(S)); every other resource gets NAME and AGE.

use serde_json::{Value, json};

use crate::resources::ResourceType;

/// Which object each row carries (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    /// No object.
    None,
    /// `PartialObjectMetadata` (the default).
    Metadata,
    /// The full object.
    Object,
}

impl Include {
    /// Parse the `includeObject` query parameter.
    pub fn parse(v: Option<&str>) -> Self {
        match v {
            Some("None") => Include::None,
            Some("Object") => Include::Object,
            _ => Include::Metadata,
        }
    }
}

/// Does the Accept header ask for a Table (kubectl lists JSON as a fallback after it)?
pub fn wanted(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').next().is_some_and(|first| {
            first.contains("as=Table") && first.contains("g=meta.k8s.io") && first.contains("v=v1")
        })
    })
}

fn col(name: &str, format: &str, priority: u32, description: &str) -> Value {
    json!({"name": name, "type": "string", "format": format, "description": description, "priority": priority})
}

fn columns(rt: &ResourceType) -> Vec<Value> {
    let name = col("Name", "name", 0, "Name must be unique within a namespace.");
    let age = col(
        "Age",
        "",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    );
    match rt.kind {
        "Service" => vec![
            name,
            col("Type", "", 0, "The type of the service."),
            col("Cluster-IP", "", 0, "The IP address of the service."),
            col(
                "External-IP",
                "",
                0,
                "External IP addresses of the service.",
            ),
            col("Port(s)", "", 0, "The ports exposed by the service."),
            age,
            col(
                "Selector",
                "",
                1,
                "Route service traffic to pods with label keys and values matching this selector.",
            ),
        ],
        "Node" => vec![
            name,
            col("Status", "", 0, "The status of the node."),
            age,
            col("Internal-IP", "", 1, "The node's internal IP."),
        ],
        "Namespace" => vec![
            name,
            col("Status", "", 0, "The status of the namespace."),
            age,
        ],
        "ConfigMap" => vec![name, col("Data", "", 0, "Number of data entries."), age],
        "Lease" => vec![
            name,
            col("Holder", "", 0, "The current holder of the lease."),
            age,
        ],
        "Event" => vec![
            col("Last Seen", "", 0, "Time when this event was last seen."),
            col("Type", "", 0, "Type of this event (Normal, Warning)."),
            col("Reason", "", 0, "Why the action was taken."),
            col("Object", "", 0, "The object this event is about."),
            col(
                "Message",
                "",
                0,
                "A human-readable description of the status of this operation.",
            ),
            col("Name", "name", 1, "Name must be unique within a namespace."),
        ],
        _ => vec![name, age],
    }
}

/// Upstream's `duration.HumanDuration`.
fn human_duration(secs: i64) -> String {
    if secs < 0 {
        return "0s".into();
    }
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        let s = secs % 60;
        if s == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{s}s")
        }
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        let mm = m % 60;
        if mm == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{mm}m")
        }
    } else if h < 48 {
        format!("{h}h")
    } else if d < 8 {
        let hh = h % 24;
        if hh == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{hh}h")
        }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else {
        format!("{}y", d / 365)
    }
}

fn age(obj: &Value) -> String {
    let created = obj
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<jiff::Timestamp>().ok());
    match created {
        Some(t) => human_duration(jiff::Timestamp::now().as_second() - t.as_second()),
        None => "<unknown>".into(),
    }
}

fn s<'a>(obj: &'a Value, ptr: &str) -> Option<&'a str> {
    obj.pointer(ptr).and_then(Value::as_str)
}

fn service_cells(obj: &Value) -> Vec<Value> {
    let ty = s(obj, "/spec/type").unwrap_or("ClusterIP");
    let cluster_ip = s(obj, "/spec/clusterIP")
        .filter(|c| !c.is_empty())
        .unwrap_or("<none>");
    let mut external: Vec<String> = obj
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|i| {
                    s(i, "/ip")
                        .or_else(|| s(i, "/hostname"))
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(ips) = obj.pointer("/spec/externalIPs").and_then(Value::as_array) {
        external.extend(ips.iter().filter_map(Value::as_str).map(str::to_string));
    }
    let external = if !external.is_empty() {
        external.join(",")
    } else if ty == "LoadBalancer" {
        "<pending>".into()
    } else if ty == "ExternalName" {
        s(obj, "/spec/externalName").unwrap_or("<none>").to_string()
    } else {
        "<none>".into()
    };
    let ports: Vec<String> = obj
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                    let proto = s(p, "/protocol").unwrap_or("TCP");
                    match p.get("nodePort").and_then(Value::as_i64) {
                        Some(np) => format!("{port}:{np}/{proto}"),
                        None => format!("{port}/{proto}"),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let ports = if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    };
    let selector = obj
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "<none>".into());
    vec![
        json!(s(obj, "/metadata/name").unwrap_or("")),
        json!(ty),
        json!(cluster_ip),
        json!(external),
        json!(ports),
        json!(age(obj)),
        json!(selector),
    ]
}

fn cells(rt: &ResourceType, obj: &Value) -> Vec<Value> {
    let name = json!(s(obj, "/metadata/name").unwrap_or(""));
    match rt.kind {
        "Service" => service_cells(obj),
        "Node" => {
            let ready = obj
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| cs.iter().find(|c| s(c, "/type") == Some("Ready")))
                .map(|c| {
                    if s(c, "/status") == Some("True") {
                        "Ready"
                    } else {
                        "NotReady"
                    }
                })
                .unwrap_or("Unknown");
            let ip = obj
                .pointer("/status/addresses")
                .and_then(Value::as_array)
                .and_then(|a| a.iter().find(|x| s(x, "/type") == Some("InternalIP")))
                .and_then(|x| s(x, "/address"))
                .unwrap_or("<none>");
            vec![name, json!(ready), json!(age(obj)), json!(ip)]
        }
        "Namespace" => vec![
            name,
            json!(s(obj, "/status/phase").unwrap_or("Active")),
            json!(age(obj)),
        ],
        "ConfigMap" => {
            let n = obj
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len())
                + obj
                    .get("binaryData")
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len());
            vec![name, json!(n), json!(age(obj))]
        }
        "Lease" => vec![
            name,
            json!(s(obj, "/spec/holderIdentity").unwrap_or("")),
            json!(age(obj)),
        ],
        "Event" => {
            // core/v1 and events.k8s.io/v1 name the same facts differently.
            let last = [
                "/lastTimestamp",
                "/deprecatedLastTimestamp",
                "/series/lastObservedTime",
                "/eventTime",
                "/metadata/creationTimestamp",
            ]
            .iter()
            .find_map(|p| s(obj, p))
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(|t| human_duration(jiff::Timestamp::now().as_second() - t.as_second()))
            .unwrap_or_else(|| "<unknown>".into());
            let regarding = obj.get("involvedObject").or_else(|| obj.get("regarding"));
            let object = regarding
                .map(|r| {
                    let kind = s(r, "/kind").unwrap_or("").to_lowercase();
                    format!("{kind}/{}", s(r, "/name").unwrap_or(""))
                })
                .unwrap_or_default();
            let message = s(obj, "/message").or_else(|| s(obj, "/note")).unwrap_or("");
            vec![
                json!(last),
                json!(s(obj, "/type").unwrap_or("")),
                json!(s(obj, "/reason").unwrap_or("")),
                json!(object),
                json!(message),
                name,
            ]
        }
        _ => vec![name, json!(age(obj))],
    }
}

fn row(rt: &ResourceType, obj: &Value, include: Include) -> Value {
    let mut r = json!({"cells": cells(rt, obj)});
    let object = match include {
        Include::None => None,
        Include::Object => Some(obj.clone()),
        Include::Metadata => Some(json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
        })),
    };
    if let (Some(o), Some(m)) = (object, r.as_object_mut()) {
        m.insert("object".into(), o);
    }
    r
}

/// A Table of `objs`.
pub fn table<'a>(
    rt: &ResourceType,
    objs: impl Iterator<Item = &'a Value>,
    rv: u64,
    include: Include,
) -> Value {
    let rows: Vec<Value> = objs.map(|o| row(rt, o, include)).collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv.to_string()},
        "columnDefinitions": columns(rt),
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_like_upstream() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(125), "2m5s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(4 * 3600 + 60), "4h1m");
        assert_eq!(human_duration(3 * 86400), "3d");
    }

    #[test]
    fn table_accept_header() {
        assert!(wanted(Some(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        )));
        assert!(!wanted(Some("application/json")));
        assert!(!wanted(None));
    }
}
