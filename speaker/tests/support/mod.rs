//! A netns world for speaker tests: a router namespace running a real gobgpd, N node
//! namespaces on one LAN, the lab API server, and `ferrolb-speaker` processes inside the node
//! namespaces.
//!
//! Reaching the API server from inside a namespace: the lab API server runs in this test
//! process (root namespace, `127.0.0.1`). A small TCP forwarder listens *inside the router
//! namespace* on `172.17.0.1:6443` and relays every connection to it. The forwarder's listening
//! socket is created by a short-lived thread that first `setns()`es into the router namespace
//! (a socket belongs to the namespace of the thread that created it, for its whole life), while
//! the relay's outgoing connections are made from the normal runtime threads, which stay in
//! the root namespace. The speakers get a kubeconfig pointing at `http://172.17.0.1:6443`; the
//! test's own client talks to `127.0.0.1` directly. The same trick ([`in_netns`]) lets the test
//! read a speaker's status page on the namespace's own loopback.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferrolb_apiserver::{ApiServer, ApiServerHandle};
use ferrolb_netns::{Family, GobgpConfig, GobgpNeighbor, Gobgpd, Lab, Netns, Proc, RibRoute};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

pub const NS: &str = "metallb-system";
pub const APP_NS: &str = "apps";
pub const ROUTER: Ipv4Addr = Ipv4Addr::new(172, 17, 0, 1);
pub const ROUTER_AS: u32 = 64512;
pub const NODE_AS: u32 = 64522;
pub const API_PORT: u16 = 6443;
pub const STATUS_PORT: u16 = 7472;

/// The default configuration: one peer (the router), one BGP pool with a community.
pub fn config_text(community: &str) -> String {
    format!(
        r#"peers:
- peer-address: {ROUTER}
  peer-asn: {ROUTER_AS}
  my-asn: {NODE_AS}
address-pools:
- name: default
  protocol: bgp
  addresses: [172.17.254.0/24]
  bgp-advertisements:
  - communities: ["{community}"]
"#
    )
}

/// Runs `f` on a fresh thread that has joined `ns` (so sockets it creates live there).
pub fn in_netns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = PathBuf::from("/run/netns").join(ns.name().expect("named namespace"));
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("open netns file");
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("netns thread panicked")
}

/// `GET path` on `addr` from inside `ns`; returns (status code, body).
pub fn http_get(ns: &Netns, addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let path = path.to_string();
    in_netns(ns, move || {
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            s,
            "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )?;
        let mut raw = String::new();
        s.read_to_string(&mut raw)?;
        let code = raw
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = raw
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((code, body))
    })
}

/// Listen on `addr` inside `ns` and relay every connection to `target` (root namespace).
async fn forward(ns: &Netns, addr: SocketAddr, target: SocketAddr) -> tokio::task::JoinHandle<()> {
    let listener = in_netns(ns, move || {
        let l = std::net::TcpListener::bind(addr).expect("bind forwarder in netns");
        l.set_nonblocking(true).expect("nonblocking");
        l
    });
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    })
}

/// One node namespace.
pub struct NodeNs {
    pub name: String,
    pub ns: Netns,
    pub addr: Ipv4Addr,
    pub pod_cidr: IpNet,
}

/// Router, nodes, gobgpd, API server, forwarder.
pub struct World {
    pub nodes: Vec<NodeNs>,
    pub router: Netns,
    pub lan: Netns,
    pub bridge: String,
    pub gobgp: Gobgpd,
    pub api: ApiServerHandle,
    pub client: kube::Client,
    pub kubeconfig: PathBuf,
    forwarder: tokio::task::JoinHandle<()>,
    // Dropped last: tears down namespaces and every process started in them.
    pub lab: Lab,
}

impl Drop for World {
    fn drop(&mut self) {
        self.forwarder.abort();
    }
}

impl World {
    /// Build the topology with `n` nodes (`node-1` .. `node-n` at 172.17.0.21 ..) and the
    /// default configuration.
    pub async fn new(n: usize) -> World {
        let lab = Lab::new().expect("lab");
        let router = lab.netns("router").expect("router ns");
        let lan = lab.netns("lan").expect("lan ns");
        let br = lab.bridge(&lan).expect("bridge");
        let rport = lab.connect(&router, &lan, &br).expect("router port");
        router
            .add_addr(&rport.a, format!("{ROUTER}/24").parse().unwrap())
            .expect("router addr");
        let mut gcfg = GobgpConfig::new(ROUTER_AS, ROUTER);
        let mut nodes = Vec::new();
        for i in 1..=n {
            let ns = lab.netns(&format!("node{i}")).expect("node ns");
            let port = lab.connect(&ns, &lan, &br).expect("node port");
            let addr = Ipv4Addr::new(172, 17, 0, 20 + i as u8);
            ns.add_addr(&port.a, format!("{addr}/24").parse().unwrap())
                .expect("node addr");
            gcfg = gcfg.neighbor(GobgpNeighbor::new(IpAddr::V4(addr), NODE_AS));
            nodes.push(NodeNs {
                name: format!("node-{i}"),
                ns,
                addr,
                pod_cidr: format!("10.244.{i}.0/24").parse().unwrap(),
            });
        }
        let gobgp = Gobgpd::start(&router, &gcfg).expect("gobgpd");
        let api = ApiServer::start().await.expect("api server");
        let forwarder = forward(&router, SocketAddr::from((ROUTER, API_PORT)), api.addr()).await;
        let kubeconfig = lab.dir().join("speaker.kubeconfig");
        std::fs::write(
            &kubeconfig,
            ferrolb_apiserver::kubeconfig_for(&format!("http://{ROUTER}:{API_PORT}")),
        )
        .expect("write kubeconfig");
        let client = api
            .client()
            .await
            .expect("kube client for the lab API server");
        let world = World {
            nodes,
            router,
            lan,
            bridge: br,
            gobgp,
            api,
            client,
            kubeconfig,
            forwarder,
            lab,
        };
        let nsapi: Api<Namespace> = Api::all(world.client.clone());
        for name in [NS, APP_NS] {
            let obj: Namespace =
                serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
            nsapi
                .create(&PostParams::default(), &obj)
                .await
                .expect("namespace");
        }
        for node in &world.nodes {
            world.create_node(node, &[]).await;
        }
        world.set_config(&config_text("64522:100")).await;
        world
    }

    /// Another router on the LAN at `addr` running its own gobgpd (AS [`ROUTER_AS`]) with
    /// every node as a neighbour.
    pub fn add_router(&self, role: &str, addr: Ipv4Addr) -> (Netns, Gobgpd) {
        let ns = self.lab.netns(role).expect("router ns");
        let port = self
            .lab
            .connect(&ns, &self.lan, &self.bridge)
            .expect("router port");
        ns.add_addr(&port.a, format!("{addr}/24").parse().unwrap())
            .expect("router addr");
        let mut cfg = GobgpConfig::new(ROUTER_AS, addr);
        for n in &self.nodes {
            cfg = cfg.neighbor(GobgpNeighbor::new(IpAddr::V4(n.addr), NODE_AS));
        }
        let g = Gobgpd::start(&ns, &cfg).expect("gobgpd");
        (ns, g)
    }

    pub async fn create_node(&self, node: &NodeNs, labels: &[(&str, &str)]) {
        let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
        let obj: Node = serde_json::from_value(json!({
            "metadata": {"name": node.name, "labels": labels},
            "spec": {"podCIDR": node.pod_cidr.to_string(), "podCIDRs": [node.pod_cidr.to_string()]},
            "status": {"addresses": [{"type": "InternalIP", "address": node.addr.to_string()}]}
        }))
        .unwrap();
        Api::<Node>::all(self.client.clone())
            .create(&PostParams::default(), &obj)
            .await
            .expect("create node");
    }

    /// Create or replace the MetalLB ConfigMap.
    pub async fn set_config(&self, text: &str) {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), NS);
        let body = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "config", "namespace": NS},
            "data": {"config": text}
        });
        match api.get_opt("config").await.expect("get configmap") {
            None => {
                let cm: ConfigMap = serde_json::from_value(body).unwrap();
                api.create(&PostParams::default(), &cm)
                    .await
                    .expect("create configmap");
            }
            Some(_) => {
                api.patch("config", &PatchParams::default(), &Patch::Merge(&body))
                    .await
                    .expect("patch configmap");
            }
        }
    }

    /// Start `ferrolb-speaker` in node `i` (0-based) with extra flags.
    pub fn start_speaker(&self, i: usize, extra: &[&str]) -> Proc {
        let node = &self.nodes[i];
        let mut args: Vec<String> = vec![
            "--node-name".into(),
            node.name.clone(),
            "--kubeconfig".into(),
            self.kubeconfig.display().to_string(),
            "--host".into(),
            "127.0.0.1".into(),
            "--port".into(),
            STATUS_PORT.to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = self.lab.dir().join(format!("speaker-{}.log", node.name));
        let mut cmd = node.ns.command(env!("CARGO_BIN_EXE_ferrolb-speaker"));
        cmd.args(&args);
        cmd.env("RUST_LOG", "info,ferrolb_speaker=debug");
        node.ns.spawn_command(cmd, &log).expect("spawn speaker")
    }

    /// `GET path` from node `i`'s speaker.
    pub fn speaker_get(&self, i: usize, path: &str) -> (u16, String) {
        http_get(
            &self.nodes[i].ns,
            SocketAddr::from(([127, 0, 0, 1], STATUS_PORT)),
            path,
        )
        .unwrap_or((0, String::new()))
    }

    /// Create a LoadBalancer Service with `ip` in its status.
    pub async fn create_service(&self, name: &str, ip: &str, local: bool) {
        let policy = if local { "Local" } else { "Cluster" };
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": APP_NS},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": policy,
                     "selector": {"app": name},
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
        }))
        .unwrap();
        let api: Api<Service> = Api::namespaced(self.client.clone(), APP_NS);
        api.create(&PostParams::default(), &svc)
            .await
            .expect("create service");
        self.set_service_ip(name, ip).await;
    }

    /// Write `status.loadBalancer.ingress` of a Service.
    pub async fn set_service_ip(&self, name: &str, ip: &str) {
        let api: Api<Service> = Api::namespaced(self.client.clone(), APP_NS);
        let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}});
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .expect("patch service status");
    }

    /// Replace the Service's single EndpointSlice: one endpoint per (node, ready).
    pub async fn set_endpoints(&self, svc: &str, eps: &[(&str, bool)]) {
        let endpoints: Vec<Value> = eps
            .iter()
            .enumerate()
            .map(|(i, (node, ready))| {
                json!({"addresses": [format!("10.244.9.{}", i + 1)], "nodeName": node,
                       "conditions": {"ready": ready}})
            })
            .collect();
        let name = format!("{svc}-eps");
        let body = json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": APP_NS,
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]
        });
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), APP_NS);
        match api.get_opt(&name).await.expect("get slice") {
            None => {
                let s: EndpointSlice = serde_json::from_value(body).unwrap();
                api.create(&PostParams::default(), &s)
                    .await
                    .expect("create slice");
            }
            Some(_) => {
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&body))
                    .await
                    .expect("patch slice");
            }
        }
    }

    /// Events (type, reason, message) about Service `name`.
    pub async fn events_for(&self, name: &str) -> Vec<(String, String, String)> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), APP_NS);
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

    /// The router's route for `prefix`, if any.
    pub fn route(&self, prefix: &str) -> Option<RibRoute> {
        let prefix: IpNet = prefix.parse().expect("prefix");
        let fam = Family::of(prefix.addr());
        let rib = self.gobgp.rib(fam).ok()?;
        ferrolb_netns::find_route(&rib, prefix).cloned()
    }

    /// Next hops of every path the router has for `prefix`, sorted.
    pub fn next_hops(&self, prefix: &str) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self
            .route(prefix)
            .map(|r| r.paths.iter().flat_map(|p| p.next_hops.clone()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Waits until the router's next hops for `prefix` are exactly `want`.
    pub async fn wait_next_hops(&self, prefix: &str, want: &[Ipv4Addr], timeout: Duration) {
        let mut want: Vec<IpAddr> = want.iter().map(|a| IpAddr::V4(*a)).collect();
        want.sort();
        let ok = wait_until(timeout, || self.next_hops(prefix) == want).await;
        assert!(
            ok,
            "router next hops for {prefix}: want {want:?}, have {:?}\n{}",
            self.next_hops(prefix),
            self.logs()
        );
    }

    /// The gobgpd neighbour's Established-since time (unix seconds).
    pub fn session_uptime(&self, node: usize) -> Option<u64> {
        let addr = IpAddr::V4(self.nodes[node].addr);
        self.gobgp
            .neighbors()
            .ok()?
            .into_iter()
            .find(|n| n.address == addr && n.is_established())
            .and_then(|n| n.uptime_unix)
    }

    /// Every speaker log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            let p = self.lab.dir().join(format!("speaker-{}.log", n.name));
            if let Ok(text) = std::fs::read_to_string(&p) {
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                out.push_str(&format!("--- {} (last 40 lines)\n", n.name));
                for l in tail.into_iter().rev() {
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
        out
    }
}

/// Polls `cond` (blocking calls allowed) every 20 ms until it holds or `timeout` passes.
pub async fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if tokio::task::block_in_place(&mut cond) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Skip unless root (prints why).
pub fn root_or_skip() -> bool {
    match ferrolb_netns::require_root() {
        Ok(()) => true,
        Err(skip) => {
            eprintln!("{skip}");
            false
        }
    }
}
