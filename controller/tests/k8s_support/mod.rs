//! Shared helpers for the controller's tests, against the lab API server and the real
//! kube-apiserver (`ferrolb_kubeapi::TestApi`).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ferrolb_controller::leader::Timing;
use ferrolb_controller::{Options, Running};
use ferrolb_kubeapi::TestApi;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Service};
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const NS: &str = "metallb-system";
pub const APP_NS: &str = "apps";
pub const POOL_ANN: &str = "metallb.universe.tf/ip-allocated-from-pool";
/// How long the helpers wait for a state (only bounds a failing test; nothing measured).
pub const WAIT: Duration = Duration::from_secs(20);

/// An API server with a client and the two namespaces the tests use.
pub struct Lab {
    pub api: TestApi,
    pub client: kube::Client,
}

impl Lab {
    pub async fn start(api: TestApi) -> Lab {
        let client = api.client().await;
        let ns: Api<Namespace> = Api::all(client.clone());
        for name in [NS, APP_NS] {
            let obj: Namespace =
                serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace");
            match ns.create(&PostParams::default(), &obj).await {
                Ok(_) => {}
                // The real server is shared by a binary's tests: earlier ones made it.
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => panic!("create namespace {name}: {e}"),
            }
        }
        Lab { api, client }
    }

    /// The kube configuration a controller under test gets (admin rights).
    pub async fn config(&self) -> kube::Config {
        self.api.admin_config().await
    }

    pub fn services(&self) -> Api<Service> {
        Api::namespaced(self.client.clone(), APP_NS)
    }

    pub fn leases(&self) -> Api<Lease> {
        Api::namespaced(self.client.clone(), NS)
    }

    /// Create or replace the MetalLB ConfigMap.
    pub async fn set_config(&self, text: &str) {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), NS);
        let patch = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "config", "namespace": NS},
            "data": {"config": text}
        });
        match api.get_opt("config").await.expect("get configmap") {
            None => {
                let cm: ConfigMap = serde_json::from_value(patch).expect("configmap");
                api.create(&PostParams::default(), &cm)
                    .await
                    .expect("create configmap");
            }
            Some(_) => {
                api.patch("config", &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .expect("patch configmap");
            }
        }
    }

    pub async fn create_service(&self, svc: Value) -> Service {
        let s: Service = serde_json::from_value(svc).expect("service json");
        self.services()
            .create(&PostParams::default(), &s)
            .await
            .expect("create service")
    }

    pub async fn delete_service(&self, name: &str) {
        self.services()
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete service");
    }

    pub async fn patch_service(&self, name: &str, patch: Value) {
        self.services()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("patch service");
    }

    pub async fn get(&self, name: &str) -> Service {
        self.services().get(name).await.expect("get service")
    }

    /// Events (core/v1) about `name` in `ns`, oldest first, as (type, reason, message).
    pub async fn events_for(&self, ns: &str, name: &str) -> Vec<(String, String, String)> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), ns);
        let list = api.list(&ListParams::default()).await.expect("list events");
        list.items
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(name))
            .map(|e| {
                (
                    e.type_.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.message.unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Wait until an event with `reason` about `name` exists; returns its (type, message).
    pub async fn wait_event(&self, ns: &str, name: &str, reason: &str) -> (String, String) {
        let found = wait_for(WAIT, || async {
            self.events_for(ns, name)
                .await
                .into_iter()
                .find(|(_, r, _)| r == reason)
                .map(|(t, _, m)| (t, m))
        })
        .await;
        found.unwrap_or_else(|| panic!("no {reason} event for {ns}/{name}"))
    }

    /// Wait for a Service to show exactly `n` ingress IPs; returns them.
    pub async fn wait_ips(&self, name: &str, n: usize) -> Vec<String> {
        let got = wait_for(WAIT, || async {
            let ips = ingress_ips(&self.get(name).await);
            (ips.len() == n).then_some(ips)
        })
        .await;
        got.unwrap_or_else(|| panic!("service {name} did not get {n} IPs"))
    }

    /// Wait until `name` has no ingress IPs and no pool annotation.
    pub async fn wait_cleared(&self, name: &str) {
        let ok = wait_for(WAIT, || async {
            let s = self.get(name).await;
            (ingress_ips(&s).is_empty() && pool_annotation(&s).is_none()).then_some(())
        })
        .await;
        assert!(ok.is_some(), "service {name} was not cleared");
    }

    /// Current Lease holder.
    pub async fn lease_holder(&self, name: &str) -> Option<String> {
        self.leases()
            .get_opt(name)
            .await
            .expect("get lease")
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity)
            .filter(|h| !h.is_empty())
    }
}

/// Options for an in-process controller: short lease, HTTP on a free loopback port.
pub fn options(identity: &str) -> Options {
    let mut o = Options::new(NS, "config");
    o.identity = identity.to_string();
    o.lease_name = "ferrolb-controller".to_string();
    o.leader = Timing::for_lease_duration(Duration::from_secs(3));
    o.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    o
}

pub async fn start_controller(lab: &Lab, identity: &str) -> Running {
    ferrolb_controller::start(options(identity), lab.config().await)
        .await
        .expect("start controller")
}

/// A LoadBalancer Service in [`APP_NS`] with one TCP port and the given annotations.
pub fn lb_service(name: &str, port: u16, annotations: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": APP_NS, "annotations": annotations},
        "spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
                 "selector": {"app": name},
                 "ports": [{"name": "p", "port": port, "protocol": "TCP"}]}
    })
}

pub fn ingress_ips(s: &Service) -> Vec<String> {
    s.status
        .as_ref()
        .and_then(|st| st.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ing| ing.iter().filter_map(|i| i.ip.clone()).collect())
        .unwrap_or_default()
}

pub fn pool_annotation(s: &Service) -> Option<String> {
    s.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(POOL_ANN))
        .cloned()
}

/// All Services in [`APP_NS`] by name -> ingress IPs.
pub async fn all_ips(lab: &Lab) -> BTreeMap<String, Vec<String>> {
    lab.services()
        .list(&ListParams::default())
        .await
        .expect("list services")
        .items
        .iter()
        .map(|s| (s.metadata.name.clone().unwrap_or_default(), ingress_ips(s)))
        .collect()
}

/// Poll `f` every 50 ms until it returns `Some` or `timeout` passes.
pub async fn wait_for<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if start.elapsed() > timeout {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A plain HTTP GET over TCP; returns (status code, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    let text = String::from_utf8_lossy(&buf).to_string();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// The value of an unlabelled metric line `name value`.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

pub fn pool_config(pools: &[(&str, &str)]) -> String {
    let mut s = String::from("address-pools:\n");
    for (name, addrs) in pools {
        s.push_str(&format!(
            "- name: {name}\n  protocol: bgp\n  addresses:\n  - {addrs}\n"
        ));
    }
    s
}
