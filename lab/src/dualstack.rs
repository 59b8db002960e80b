//! The dual-stack lab's Kubernetes objects, on top of the IPv4 ones of [`crate::k8s`]:
//! Nodes with an IPv6 InternalIP and an IPv6 pod CIDR, the demo Service as
//! `RequireDualStack` (IPv4 first), and one IPv6 EndpointSlice per node beside the IPv4
//! one (Kubernetes keeps one address family per slice).

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use crate::k8s::{self, SERVICE, SERVICE_NS};
use crate::topology::{Names, addr, addr6};

/// The lab's field manager (the same as [`crate::k8s`]'s, so these objects replace theirs).
const MANAGER: &str = "ferrolb-lab";

fn apply() -> PatchParams {
    PatchParams::apply(MANAGER).force()
}

/// Node `n` with both families: podCIDRs `[v4, v6]` and an InternalIP of each family
/// (IPv4 first, as the kubelet lists them with `--node-ip=v4,v6`).
pub fn node_object(n: u8) -> serde_json::Value {
    let mut obj = k8s::node_object(n);
    let v4 = addr::pod_cidr(n).to_string();
    obj["spec"]["podCIDRs"] = json!([v4, addr6::pod_cidr(n).to_string()]);
    if let Some(list) = obj["status"]["addresses"].as_array_mut() {
        list.insert(
            1,
            json!({"type": "InternalIP", "address": addr6::node(n).to_string()}),
        );
    }
    obj
}

/// Creates (or updates) the dual-stack Node objects, status included. Used instead of
/// [`k8s::apply_nodes`]: a real API server does not let podCIDRs change once set.
pub async fn apply_nodes(client: &Client, nodes: u8) -> Result<()> {
    k8s::apply_node_objects(client, (1..=nodes).map(node_object).collect()).await
}

/// The name of node `n`'s IPv6 EndpointSlice of the demo Service.
pub fn slice_name_v6(n: u8) -> String {
    format!("{SERVICE}-{}-v6", Names::node_name(n))
}

/// Node `n`'s IPv6 EndpointSlice with `pods` ready pods.
pub fn endpoint_slice_v6(n: u8, pods: u8) -> serde_json::Value {
    let mut obj = k8s::endpoint_slice(n, pods);
    obj["metadata"]["name"] = json!(slice_name_v6(n));
    obj["addressType"] = json!("IPv6");
    if let Some(eps) = obj["endpoints"].as_array_mut() {
        for (m, ep) in (1u8..).zip(eps.iter_mut()) {
            ep["addresses"] = json!([addr6::pod(n, m).to_string()]);
        }
    }
    obj
}

/// Writes every node's IPv6 EndpointSlice: `pods_per_node[i]` ready pods on node i+1.
pub async fn apply_endpoints_v6(client: &Client, pods_per_node: &[u8]) -> Result<()> {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), SERVICE_NS);
    for (n, pods) in (1u8..).zip(pods_per_node) {
        let name = slice_name_v6(n);
        api.patch(&name, &apply(), &Patch::Apply(endpoint_slice_v6(n, *pods)))
            .await
            .with_context(|| format!("applying EndpointSlice {name}"))?;
    }
    Ok(())
}

/// Makes the demo Service dual-stack: `RequireDualStack`, families IPv4 then IPv6 (the
/// controller then assigns one address of each family from one pool).
pub async fn make_service_dual_stack(client: &Client) -> Result<()> {
    let api: Api<Service> = Api::namespaced(client.clone(), SERVICE_NS);
    api.patch(
        SERVICE,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {
            "ipFamilyPolicy": "RequireDualStack",
            "ipFamilies": ["IPv4", "IPv6"],
        }})),
    )
    .await
    .context("making the Service default/web dual-stack")?;
    Ok(())
}

/// The IPv6 objects of a lab whose IPv4 objects [`crate::k8s`] wrote (the Nodes come from
/// [`apply_nodes`] instead): IPv6 EndpointSlices and the Service's families.
pub async fn apply_objects(client: &Client, nodes: u8, pods: u8) -> Result<()> {
    apply_endpoints_v6(client, &vec![pods; nodes as usize]).await?;
    make_service_dual_stack(client).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dual_stack_node_and_v6_slice() {
        let n = node_object(2);
        assert_eq!(
            n["spec"]["podCIDRs"],
            json!(["10.244.2.0/24", "fd00:10:244:2::/64"])
        );
        assert_eq!(n["spec"]["podCIDR"], "10.244.2.0/24");
        let addrs = n["status"]["addresses"].as_array().unwrap();
        assert_eq!(addrs[0]["address"], "172.17.0.22");
        assert_eq!(addrs[1]["address"], "fd00:172:17::22");
        assert_eq!(addrs[1]["type"], "InternalIP");
        let s = endpoint_slice_v6(3, 2);
        assert_eq!(s["addressType"], "IPv6");
        assert_eq!(s["metadata"]["name"], "web-k8s-node-03-v6");
        assert_eq!(s["endpoints"][1]["addresses"][0], "fd00:10:244:3::12");
        assert_eq!(s["endpoints"][1]["nodeName"], "k8s-node-03");
        assert_eq!(
            s["metadata"]["labels"]["kubernetes.io/service-name"],
            SERVICE
        );
    }
}
