//! `serviceAllocation` end to end, on the lab API server and the real kube-apiserver: pools reserved for a namespace
//! (by label) and for labelled Services, the fallback pool, a requested pool outside the
//! Service's allowed set, and Namespace label changes seen through the controller's Namespace
//! watch.
//!
//! The pools come from `metallb.io` IPAddressPool CRs converted by `ferrolb_crds` and given to
//! the controller as `Options::config_override`: the controller does not watch the CRs yet
//! (issue 14 phase B), and the 0.12 ConfigMap has no `serviceAllocation`.

mod k8s_support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_support::*;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const POOLS: &str = "\
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: a-reserved, namespace: metallb-system}
spec:
  addresses: [10.60.0.0/30]
  serviceAllocation:
    priority: 10
    namespaceSelectors:
    - matchLabels: {team: a}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: gold, namespace: metallb-system}
spec:
  addresses: [10.61.0.0/30]
  serviceAllocation:
    priority: 5
    namespaces: [team-b]
    serviceSelectors:
    - matchLabels: {tier: gold}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: shared, namespace: metallb-system}
spec:
  addresses: [10.62.0.0/29]
";

fn config() -> ferrolb_config::Config {
    let (resources, _) = ferrolb_crds::resources::parse_resources(POOLS).expect("CRs parse");
    let parsed = ferrolb_crds::to_model::to_config(&resources).expect("CRs convert");
    let reserved = parsed.config.pools.iter().find(|p| p.name == "a-reserved");
    assert!(reserved.is_some_and(|p| p.service_allocation.is_some()));
    parsed.config
}

struct Cluster<'a> {
    lab: &'a Lab,
}

impl Cluster<'_> {
    fn services(&self, ns: &str) -> Api<Service> {
        Api::namespaced(self.lab.client.clone(), ns)
    }

    async fn namespace(&self, name: &str, labels: Value) {
        let api: Api<Namespace> = Api::all(self.lab.client.clone());
        let obj: Namespace =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}}))
                .expect("namespace");
        api.create(&PostParams::default(), &obj)
            .await
            .expect("create namespace");
    }

    async fn relabel(&self, name: &str, labels: Value) {
        let api: Api<Namespace> = Api::all(self.lab.client.clone());
        api.patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": labels}})),
        )
        .await
        .expect("patch namespace labels");
    }

    async fn service(&self, ns: &str, name: &str, labels: Value, annotations: Value) {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns, "labels": labels,
                         "annotations": annotations},
            "spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
                     "selector": {"app": name},
                     "ports": [{"name": "p", "port": 80, "protocol": "TCP"}]}
        }))
        .expect("service");
        self.services(ns)
            .create(&PostParams::default(), &svc)
            .await
            .expect("create service");
    }

    /// (pool annotation, ingress IPs) of `ns/name` now.
    async fn state(&self, ns: &str, name: &str) -> (Option<String>, Vec<String>) {
        let s = self.services(ns).get(name).await.expect("get service");
        (pool_annotation(&s), ingress_ips(&s))
    }

    /// Waits until `ns/name` shows one IP from `pool` with a prefix of `prefix`.
    async fn wait_pool(&self, ns: &str, name: &str, pool: &str, prefix: &str) -> String {
        let got = wait_for(Duration::from_secs(10), || async {
            match self.state(ns, name).await {
                (Some(p), ips) if p == pool && ips.len() == 1 && ips[0].starts_with(prefix) => {
                    Some(ips[0].clone())
                }
                _ => None,
            }
        })
        .await;
        match got {
            Some(ip) => ip,
            None => panic!(
                "{ns}/{name} did not get an IP from {pool}; it shows {:?}",
                self.state(ns, name).await
            ),
        }
    }
}

ferrolb_kubeapi::on_both_servers!(services_get_the_pools_reserved_for_them);

async fn services_get_the_pools_reserved_for_them(api: ferrolb_kubeapi::TestApi) {
    let lab = Lab::start(api).await;
    let c = Cluster { lab: &lab };
    c.namespace("team-a", json!({"team": "a"})).await;
    c.namespace("team-b", json!({})).await;
    let mut opts = options("ctl");
    opts.config_override = Some(config());
    let _ctl = ferrolb_controller::start(opts, lab.config().await)
        .await
        .expect("start controller");

    // Namespace team-a (labelled team=a) gets the pool reserved for it; team-b the fallback.
    c.service("team-a", "web", json!({}), json!({})).await;
    c.service("team-b", "web", json!({}), json!({})).await;
    let a_web = c.wait_pool("team-a", "web", "a-reserved", "10.60.0.").await;
    c.wait_pool("team-b", "web", "shared", "10.62.0.").await;

    // gold: namespace team-b AND label tier=gold, before a-reserved by priority.
    c.service("team-b", "gold", json!({"tier": "gold"}), json!({}))
        .await;
    c.service("team-a", "gold", json!({"tier": "gold"}), json!({}))
        .await;
    c.wait_pool("team-b", "gold", "gold", "10.61.0.").await;
    c.wait_pool("team-a", "gold", "a-reserved", "10.60.0.")
        .await;

    // A requested pool that does not select the Service is refused, with the reason.
    c.service(
        "team-b",
        "named",
        json!({}),
        json!({"metallb.universe.tf/address-pool": "a-reserved"}),
    )
    .await;
    let (ty, msg) = lab.wait_event("team-b", "named", "AllocationFailed").await;
    assert_eq!(ty, "Warning");
    assert_eq!(
        msg,
        "Failed to allocate IP for \"team-b/named\": address pool a-reserved is not available \
         to this service: its serviceAllocation does not select namespace \"team-b\""
    );
    assert_eq!(c.state("team-b", "named").await, (None, vec![]));

    // team-b gains the label: the pending Service now gets a-reserved; the ones already
    // served from other pools stay where they are.
    c.relabel("team-b", json!({"team": "a"})).await;
    c.wait_pool("team-b", "named", "a-reserved", "10.60.0.")
        .await;
    assert_eq!(c.state("team-b", "web").await.0.as_deref(), Some("shared"));
    assert_eq!(c.state("team-b", "gold").await.0.as_deref(), Some("gold"));

    // team-a loses its label: its Services leave a-reserved for the fallback, with a Warning.
    c.relabel("team-a", json!({"team": null})).await;
    let moved = c.wait_pool("team-a", "web", "shared", "10.62.0.").await;
    assert_ne!(moved, a_web);
    c.wait_pool("team-a", "gold", "shared", "10.62.0.").await;
    let (ty, msg) = lab.wait_event("team-a", "web", "ClearAssignment").await;
    assert_eq!(ty, "Warning");
    assert!(
        msg.ends_with(
            "address pool a-reserved is not available to this service: its serviceAllocation \
             does not select namespace \"team-a\""
        ),
        "{msg}"
    );
    assert_eq!(
        c.state("team-b", "named").await.0.as_deref(),
        Some("a-reserved")
    );
}
