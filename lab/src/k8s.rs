//! The lab's Kubernetes objects: Nodes, the MetalLB ConfigMap, the demo Service and its
//! EndpointSlices, all written to the lab API server with a normal `kube::Client`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::json;

use crate::topology::{Names, addr};

/// Field manager of the lab's writes.
const MANAGER: &str = "ferrolb-lab";
/// The demo Service's namespace and name.
pub const SERVICE_NS: &str = "default";
/// The demo Service's name.
pub const SERVICE: &str = "web";
/// The namespace of the ferrolb components' ConfigMap.
pub const SYSTEM_NS: &str = "metallb-system";
/// The pods' HTTP port.
pub const POD_PORT: u16 = 8080;
/// The Service's port.
pub const SERVICE_PORT: u16 = 80;

/// A client for the kubeconfig at `path` (call it inside the namespace that reaches the
/// server, see [`crate::nsexec`]).
pub async fn client(path: &Path) -> Result<Client> {
    let kc = Kubeconfig::read_from(path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    let cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .context("kubeconfig")?;
    Client::try_from(cfg).context("building the kube client")
}

fn apply() -> PatchParams {
    PatchParams::apply(MANAGER).force()
}

/// Waits until the API server answers.
pub async fn wait_ready(client: &Client, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match client.apiserver_version().await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                bail!("the lab API server did not answer within {timeout:?}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Namespaces `default` and `metallb-system`.
pub async fn apply_namespaces(client: &Client) -> Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    for ns in [SERVICE_NS, SYSTEM_NS] {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        api.patch(ns, &apply(), &Patch::Apply(obj))
            .await
            .with_context(|| format!("applying namespace {ns}"))?;
    }
    Ok(())
}

/// Node `n`'s object: name, labels, InternalIP, podCIDR.
pub fn node_object(n: u8) -> serde_json::Value {
    let name = Names::node_name(n);
    let cidr = addr::pod_cidr(n).to_string();
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "node-role.kubernetes.io/worker": "",
        }},
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": addr::node(n).to_string()},
                {"type": "Hostname", "address": name},
            ],
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    })
}

/// Creates (or updates) the Node objects, status included.
pub async fn apply_nodes(client: &Client, nodes: u8) -> Result<()> {
    apply_node_objects(client, (1..=nodes).map(node_object).collect()).await
}

/// Creates (or updates) Node objects made like [`node_object`], status included.
///
/// The status goes in as a merge patch, never in the applied object: a dual-stack Node has
/// two `InternalIP` addresses, and `status.addresses` is a list map keyed by `type` in the
/// server-side apply schema, so the real kube-apiserver refuses to apply it ("duplicate
/// entries for key [type=\"InternalIP\"]", kubernetes/kubernetes#121896; kubelet patches
/// Node status too).
pub async fn apply_node_objects(client: &Client, objects: Vec<serde_json::Value>) -> Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    for mut obj in objects {
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let status = obj
            .as_object_mut()
            .and_then(|o| o.remove("status"))
            .unwrap_or_default();
        api.patch(&name, &apply(), &Patch::Apply(&obj))
            .await
            .with_context(|| format!("applying node {name}"))?;
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .with_context(|| format!("node {name} status"))?;
    }
    Ok(())
}

/// The MetalLB configuration text from a file that is either a ConfigMap manifest (its
/// `data.config` is used) or the bare configuration.
pub fn config_text(file_text: &str) -> Result<String> {
    if let Ok(cm) = serde_saphyr::from_str::<ConfigMap>(file_text)
        && let Some(cfg) = cm.data.as_ref().and_then(|d| d.get("config"))
    {
        return Ok(cfg.clone());
    }
    if file_text.contains("kind: ConfigMap") {
        bail!("the ConfigMap has no data.config key");
    }
    Ok(file_text.to_string())
}

/// Writes the ConfigMap `metallb-system/config` with `config` as its `config` key.
pub async fn apply_config(client: &Client, config: &str) -> Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), SYSTEM_NS);
    let obj = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "config", "namespace": SYSTEM_NS, "labels": {"app": "metallb"}},
        "data": {"config": config},
    });
    api.patch("config", &apply(), &Patch::Apply(obj))
        .await
        .context("applying the ConfigMap metallb-system/config")?;
    Ok(())
}

/// The demo Service `default/web` (LoadBalancer, port 80 -> 8080).
pub async fn apply_service(client: &Client, policy: &str) -> Result<()> {
    let api: Api<Service> = Api::namespaced(client.clone(), SERVICE_NS);
    let obj = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": SERVICE, "namespace": SERVICE_NS},
        "spec": {
            "type": "LoadBalancer",
            "externalTrafficPolicy": policy,
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": POD_PORT, "protocol": "TCP"}],
        },
    });
    api.patch(SERVICE, &apply(), &Patch::Apply(obj))
        .await
        .context("applying the Service default/web")?;
    Ok(())
}

/// Sets `externalTrafficPolicy` of the demo Service.
pub async fn set_policy(client: &Client, policy: &str) -> Result<()> {
    let api: Api<Service> = Api::namespaced(client.clone(), SERVICE_NS);
    api.patch(
        SERVICE,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"externalTrafficPolicy": policy}})),
    )
    .await
    .context("patching the Service's externalTrafficPolicy")?;
    Ok(())
}

/// Node `n`'s EndpointSlice of the demo Service with `pods` ready pods (0: an empty slice,
/// i.e. the workload scaled away from that node).
pub fn endpoint_slice(n: u8, pods: u8) -> serde_json::Value {
    let node = Names::node_name(n);
    let endpoints: Vec<serde_json::Value> = (1..=pods)
        .map(|m| {
            json!({
                "addresses": [addr::pod(n, m).to_string()],
                "nodeName": node,
                "conditions": {"ready": true, "serving": true, "terminating": false},
                "targetRef": {"kind": "Pod", "namespace": SERVICE_NS, "name": Names::pod_name(n, m)},
            })
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{SERVICE}-{node}"), "namespace": SERVICE_NS,
                     "labels": {"kubernetes.io/service-name": SERVICE,
                                "endpointslice.kubernetes.io/managed-by": "ferrolb-lab"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": POD_PORT, "protocol": "TCP"}],
        "endpoints": endpoints,
    })
}

/// Writes every node's EndpointSlice: `pods_per_node[i]` ready pods on node i+1.
pub async fn apply_endpoints(client: &Client, pods_per_node: &[u8]) -> Result<()> {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), SERVICE_NS);
    for (i, pods) in pods_per_node.iter().enumerate() {
        let n = i as u8 + 1;
        let obj = endpoint_slice(n, *pods);
        let name = format!("{SERVICE}-{}", Names::node_name(n));
        api.patch(&name, &apply(), &Patch::Apply(obj))
            .await
            .with_context(|| format!("applying EndpointSlice {name}"))?;
    }
    Ok(())
}

/// The demo Service's assigned IPs (status.loadBalancer.ingress).
pub async fn service_ips(client: &Client) -> Result<Vec<String>> {
    let api: Api<Service> = Api::namespaced(client.clone(), SERVICE_NS);
    let svc = api
        .get(SERVICE)
        .await
        .context("reading Service default/web")?;
    Ok(svc
        .status
        .and_then(|s| s.load_balancer)
        .and_then(|lb| lb.ingress)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|i| i.ip)
        .collect())
}

/// Waits for the demo Service to get an IP.
pub async fn wait_service_ip(client: &Client, timeout: Duration) -> Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(ip) = service_ips(client).await?.into_iter().next() {
            return Ok(ip);
        }
        if Instant::now() >= deadline {
            bail!(
                "the Service default/web got no EXTERNAL-IP within {timeout:?} (see the controller's log)"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates an object of any kind from JSON (tests use it for extra Services).
pub async fn create_service(client: &Client, obj: serde_json::Value) -> Result<Service> {
    let svc: Service = serde_json::from_value(obj)?;
    let ns = svc
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| SERVICE_NS.into());
    let api: Api<Service> = Api::namespaced(client.clone(), &ns);
    Ok(api.create(&PostParams::default(), &svc).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_configmap_manifest_or_bare() {
        let cm = include_str!("../../manifests/config.yaml");
        let text = config_text(cm).unwrap();
        assert!(text.contains("peer-address: 172.17.0.1"), "{text}");
        assert!(!text.contains("kind: ConfigMap"));
        assert_eq!(config_text("peers: []\n").unwrap(), "peers: []\n");
    }

    #[test]
    fn node_and_slice_objects() {
        let n = node_object(2);
        assert_eq!(n["spec"]["podCIDR"], "10.244.2.0/24");
        assert_eq!(n["status"]["addresses"][0]["address"], "172.17.0.22");
        let s = endpoint_slice(3, 2);
        assert_eq!(s["endpoints"][1]["addresses"][0], "10.244.3.12");
        assert_eq!(s["endpoints"][0]["nodeName"], "k8s-node-03");
        assert_eq!(
            endpoint_slice(1, 0)["endpoints"].as_array().unwrap().len(),
            0
        );
    }
}
