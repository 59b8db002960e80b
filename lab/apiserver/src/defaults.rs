//! Server-side defaulting that clients can observe: Service spec defaults and allocated
//! cluster IPs / node ports, Namespace phase. Values are allocated from counters (not
//! checked for collisions with user-chosen values; see README).

use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{Map, Value, json};

/// Allocators for Service cluster IPs (10.96.0.0/12) and node ports (30000-32767).
#[derive(Debug, Default)]
pub struct Allocators {
    next_ip: AtomicU32,
    next_port: AtomicU32,
}

impl Allocators {
    fn cluster_ip(&self) -> String {
        // Skip 10.96.0.0 and .1 (the `kubernetes` Service in a real cluster).
        let n = self.next_ip.fetch_add(1, Ordering::Relaxed) % ((1 << 20) - 3) + 2;
        let ip = (10u32 << 24) | (96 << 16) | n;
        format!(
            "{}.{}.{}.{}",
            ip >> 24,
            (ip >> 16) & 0xff,
            (ip >> 8) & 0xff,
            ip & 0xff
        )
    }

    fn node_port(&self) -> u32 {
        30000 + self.next_port.fetch_add(1, Ordering::Relaxed) % 2768
    }
}

fn set_default(m: &mut Map<String, Value>, k: &str, v: Value) {
    if m.get(k).is_none_or(Value::is_null) {
        m.insert(k.to_string(), v);
    }
}

/// Default a Service `spec` in place; `old` is the stored object on update (immutable
/// allocations are carried over when the client omits them).
pub fn service(alloc: &Allocators, obj: &mut Value, old: Option<&Value>) {
    let old_spec = old.and_then(|o| o.get("spec"));
    let Some(obj) = obj.as_object_mut() else {
        return;
    };
    let spec = obj.entry("spec").or_insert_with(|| json!({}));
    let Some(spec) = spec.as_object_mut() else {
        return;
    };
    set_default(spec, "type", json!("ClusterIP"));
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    set_default(spec, "sessionAffinity", json!("None"));
    if ty == "ExternalName" {
        return;
    }
    if spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        let ip = old_spec
            .and_then(|s| s.get("clusterIP"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| alloc.cluster_ip());
        spec.insert("clusterIP".into(), json!(ip));
    }
    let cip = spec.get("clusterIP").cloned().unwrap_or(Value::Null);
    set_default(spec, "clusterIPs", json!([cip]));
    set_default(spec, "ipFamilies", json!(["IPv4"]));
    set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
    set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    let external = ty == "LoadBalancer" || ty == "NodePort";
    if external {
        set_default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    let alloc_ports = ty == "NodePort"
        || (ty == "LoadBalancer"
            && spec.get("allocateLoadBalancerNodePorts") != Some(&json!(false)));
    let old_ports = old_spec
        .and_then(|s| s.get("ports"))
        .and_then(Value::as_array);
    if let Some(Value::Array(ports)) = spec.get_mut("ports") {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            set_default(p, "protocol", json!("TCP"));
            if let Some(port) = p.get("port").cloned() {
                set_default(p, "targetPort", port);
            }
            if alloc_ports && p.get("nodePort").is_none_or(Value::is_null) {
                let kept = old_ports.and_then(|ops| {
                    ops.iter()
                        .find(|o| {
                            o.get("port") == p.get("port")
                                && o.get("protocol").unwrap_or(&json!("TCP"))
                                    == p.get("protocol").unwrap_or(&json!("TCP"))
                        })
                        .and_then(|o| o.get("nodePort").cloned())
                });
                p.insert(
                    "nodePort".into(),
                    kept.unwrap_or_else(|| json!(alloc.node_port())),
                );
            }
        }
    }
}

/// A Service field the real API server would reject: (field, cause reason, detail).
pub type FieldError = (&'static str, &'static str, String);

/// Upstream's rules for a Service update where `type` or `loadBalancerClass` changes
/// (`dropTypeDependentFields`, `validateLoadBalancerClassField`): leaving LoadBalancer drops
/// an unchanged `allocateLoadBalancerNodePorts` and `loadBalancerClass`; the class may not
/// change while the Service stays a LoadBalancer, and only a LoadBalancer may have one.
pub fn service_update(new: &mut Value, old: Option<&Value>) -> Result<(), FieldError> {
    let spec_of = |v: &Value, k: &str| {
        v.pointer(&format!("/spec/{k}"))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let ty = |v: &Value| {
        v.pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string()
    };
    let new_lb = ty(new) == "LoadBalancer";
    if let Some(old) = old {
        let old_lb = ty(old) == "LoadBalancer";
        if old_lb
            && !new_lb
            && let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut)
        {
            for k in ["allocateLoadBalancerNodePorts", "loadBalancerClass"] {
                if spec.get(k).cloned().unwrap_or(Value::Null) == spec_of(old, k) {
                    spec.remove(k);
                }
            }
        }
        let class = spec_of(new, "loadBalancerClass");
        if old_lb && new_lb && class != spec_of(old, "loadBalancerClass") {
            let shown = class
                .as_str()
                .map_or("null".to_string(), |c| format!("{c:?}"));
            return Err((
                "spec.loadBalancerClass",
                "FieldValueInvalid",
                format!("Invalid value: {shown}: may not change once set"),
            ));
        }
    }
    if !new_lb && !spec_of(new, "loadBalancerClass").is_null() {
        return Err((
            "spec.loadBalancerClass",
            "FieldValueForbidden",
            "Forbidden: may only be used when `type` is 'LoadBalancer'".to_string(),
        ));
    }
    Ok(())
}

/// Default a Namespace: `spec.finalizers` and `status.phase`.
pub fn namespace(obj: &mut Value) {
    if let Some(o) = obj.as_object_mut() {
        if !o.contains_key("spec") {
            o.insert("spec".into(), json!({"finalizers": ["kubernetes"]}));
        }
        if !o.contains_key("status") {
            o.insert("status".into(), json!({"phase": "Active"}));
        }
    }
}
