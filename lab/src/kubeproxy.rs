//! A stand-in for kube-proxy on a lab node (there is no iptables/nft here): for every
//! LoadBalancer Service with an assigned IP it puts the IP on the node's `lo` (so traffic
//! the router sends to this node is accepted), listens on IP:port and forwards each
//! connection round-robin to the ready endpoints: this node's only (`externalTrafficPolicy:
//! Local`) or all of them (`Cluster`; other nodes' pods are reached over BGP pod routes).
//! IPv6 Service IPs work the same way (a /128 on `lo`, IPv6 endpoints), each family
//! forwarded to endpoints of its own family.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Result;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Listen address -> backends.
pub type Desired = BTreeMap<SocketAddr, Vec<SocketAddr>>;

/// The forwarding table for `node` from the Services and EndpointSlices.
pub fn desired(services: &[Arc<Service>], slices: &[Arc<EndpointSlice>], node: &str) -> Desired {
    let mut out = Desired::new();
    for svc in services {
        let Some(spec) = &svc.spec else { continue };
        if spec.type_.as_deref() != Some("LoadBalancer") {
            continue;
        }
        let local = spec.external_traffic_policy.as_deref() == Some("Local");
        let ips: Vec<IpAddr> = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|i| i.ip.as_deref())
            .filter_map(|ip| ip.parse().ok())
            .collect();
        let ns = svc.namespace().unwrap_or_default();
        let name = svc.name_any();
        let own: Vec<&Arc<EndpointSlice>> = slices
            .iter()
            .filter(|s| s.namespace().unwrap_or_default() == ns)
            .filter(|s| s.labels().get("kubernetes.io/service-name") == Some(&name))
            .collect();
        for port in spec.ports.iter().flatten() {
            if port.protocol.as_deref().unwrap_or("TCP") != "TCP" {
                continue;
            }
            let mut backends = BTreeSet::new();
            for slice in &own {
                let target = slice.ports.iter().flatten().find(|p| {
                    p.name.as_deref().unwrap_or("") == port.name.as_deref().unwrap_or("")
                });
                let Some(target_port) = target.and_then(|p| p.port) else {
                    continue;
                };
                for ep in &slice.endpoints {
                    let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                    if !ready || (local && ep.node_name.as_deref() != Some(node)) {
                        continue;
                    }
                    for a in &ep.addresses {
                        if let Ok(ip) = a.parse::<IpAddr>() {
                            backends.insert(SocketAddr::new(ip, target_port as u16));
                        }
                    }
                }
            }
            // Per family, as kube-proxy does: a dual-stack Service's IPv6 address goes to the
            // endpoints of its IPv6 slices only.
            for ip in &ips {
                out.entry(SocketAddr::new(*ip, port.port as u16))
                    .or_default()
                    .extend(backends.iter().filter(|b| b.is_ipv4() == ip.is_ipv4()));
            }
        }
    }
    out
}

struct Listening {
    task: JoinHandle<()>,
    backends: Arc<RwLock<Vec<SocketAddr>>>,
}

fn ip_cmd(args: &[&str]) {
    match std::process::Command::new("ip").args(args).output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => tracing::debug!(
            args = ?args,
            stderr = %String::from_utf8_lossy(&o.stderr).trim(),
            "ip command failed"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot run ip"),
    }
}

fn host_prefix(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(_) => format!("{ip}/32"),
        IpAddr::V6(_) => format!("{ip}/128"),
    }
}

async fn forward(mut inbound: TcpStream, backend: SocketAddr) {
    let out = tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(backend)).await;
    match out {
        Ok(Ok(mut outbound)) => {
            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
        }
        Ok(Err(e)) => tracing::warn!(%backend, error = %e, "backend connect failed"),
        Err(_) => tracing::warn!(%backend, "backend connect timed out"),
    }
}

async fn accept_loop(listener: TcpListener, backends: Arc<RwLock<Vec<SocketAddr>>>) {
    let next = AtomicUsize::new(0);
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let pick = {
            let b = backends.read().unwrap_or_else(|p| p.into_inner());
            if b.is_empty() {
                None
            } else {
                Some(b[next.fetch_add(1, Ordering::Relaxed) % b.len()])
            }
        };
        match pick {
            Some(backend) => {
                tokio::spawn(forward(sock, backend));
            }
            None => drop(sock),
        }
    }
}

/// Binds `a`, retrying for a moment: a freshly added IPv6 address can refuse the bind
/// (`EADDRNOTAVAIL`) for a few milliseconds; without the retry the listener would wait
/// for the next reconcile, up to 2 s later.
async fn bind_soon(a: SocketAddr) -> std::io::Result<TcpListener> {
    let mut tries = 0;
    loop {
        match TcpListener::bind(a).await {
            Err(e)
                if e.raw_os_error() == Some(nix::errno::Errno::EADDRNOTAVAIL as i32)
                    && tries < 50 =>
            {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => return other,
        }
    }
}

/// Brings the listeners in line with `want`.
async fn reconcile(current: &mut HashMap<SocketAddr, Listening>, want: &Desired) {
    let stale: Vec<SocketAddr> = current
        .keys()
        .filter(|a| !want.contains_key(a))
        .copied()
        .collect();
    for a in stale {
        if let Some(l) = current.remove(&a) {
            l.task.abort();
            tracing::info!(listen = %a, "stopped forwarding");
        }
        if !current.keys().any(|k| k.ip() == a.ip()) && !want.keys().any(|k| k.ip() == a.ip()) {
            ip_cmd(&["addr", "del", &host_prefix(a.ip()), "dev", "lo"]);
        }
    }
    for (a, backends) in want {
        if let Some(l) = current.get(a) {
            let mut b = l.backends.write().unwrap_or_else(|p| p.into_inner());
            if *b != *backends {
                tracing::info!(listen = %a, backends = ?backends, "backends changed");
                *b = backends.clone();
            }
            continue;
        }
        let prefix = host_prefix(a.ip());
        let mut add = vec!["addr", "replace", &prefix, "dev", "lo"];
        if a.is_ipv6() {
            add.push("nodad");
        }
        ip_cmd(&add);
        match bind_soon(*a).await {
            Ok(listener) => {
                let shared = Arc::new(RwLock::new(backends.clone()));
                let task = tokio::spawn(accept_loop(listener, shared.clone()));
                tracing::info!(listen = %a, backends = ?backends, "forwarding");
                current.insert(
                    *a,
                    Listening {
                        task,
                        backends: shared,
                    },
                );
            }
            Err(e) => tracing::warn!(listen = %a, error = %e, "cannot listen; retrying"),
        }
    }
}

/// Runs forever for node `node`.
pub async fn run(client: Client, node: String) -> Result<()> {
    let (svc_store, svc_writer) = reflector::store::<Service>();
    let (eps_store, eps_writer) = reflector::store::<EndpointSlice>();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(64);
    let svc_stream = reflector::reflector(
        svc_writer,
        watcher(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff(),
    );
    let eps_stream = reflector::reflector(
        eps_writer,
        watcher(
            Api::<EndpointSlice>::all(client),
            watcher::Config::default(),
        )
        .default_backoff(),
    );
    for stream in [
        svc_stream.map(|_| ()).boxed(),
        eps_stream.map(|_| ()).boxed(),
    ] {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut stream = stream;
            while stream.next().await.is_some() {
                let _ = tx.try_send(());
            }
        });
    }
    tracing::info!(node, "kube-proxy stand-in running");
    let mut current = HashMap::new();
    loop {
        let _ = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await;
        while rx.try_recv().is_ok() {}
        let want = desired(&svc_store.state(), &eps_store.state(), &node);
        reconcile(&mut current, &want).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(policy: &str, ip: Option<&str>) -> Arc<Service> {
        let mut v = json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": policy,
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
        });
        if let Some(ip) = ip {
            v["status"] = json!({"loadBalancer": {"ingress": [{"ip": ip}]}});
        }
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn slice(node: &str, ip: &str, ready: bool) -> Arc<EndpointSlice> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": format!("web-{node}"), "namespace": "default",
                             "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": [{"addresses": [ip], "nodeName": node, "conditions": {"ready": ready}}],
            }))
            .unwrap(),
        )
    }

    #[test]
    fn local_policy_keeps_only_this_nodes_ready_endpoints() {
        let slices = vec![
            slice("n1", "10.244.1.11", true),
            slice("n2", "10.244.2.11", true),
            slice("n1", "10.244.1.12", false),
        ];
        let want = desired(&[svc("Local", Some("172.17.254.1"))], &slices, "n1");
        let a: SocketAddr = "172.17.254.1:80".parse().unwrap();
        assert_eq!(want[&a], vec!["10.244.1.11:8080".parse().unwrap()]);
        let want = desired(&[svc("Cluster", Some("172.17.254.1"))], &slices, "n1");
        assert_eq!(want[&a].len(), 2);
    }

    #[test]
    fn dual_stack_service_forwards_each_family_to_its_own_endpoints() {
        let mut v = serde_json::to_value(svc("Local", None).as_ref()).unwrap();
        v["status"] = json!({"loadBalancer": {"ingress": [
            {"ip": "172.17.254.1"}, {"ip": "fd00:172:17:254::1"}]}});
        let dual: Arc<Service> = Arc::new(serde_json::from_value(v).unwrap());
        let mut v6 = serde_json::to_value(slice("n1", "fd00:10:244:1::11", true).as_ref()).unwrap();
        v6["metadata"]["name"] = json!("web-n1-v6");
        v6["addressType"] = json!("IPv6");
        let slices = vec![
            slice("n1", "10.244.1.11", true),
            Arc::new(serde_json::from_value(v6).unwrap()),
        ];
        let want = desired(&[dual], &slices, "n1");
        let a4: SocketAddr = "172.17.254.1:80".parse().unwrap();
        let a6: SocketAddr = "[fd00:172:17:254::1]:80".parse().unwrap();
        assert_eq!(want[&a4], vec!["10.244.1.11:8080".parse().unwrap()]);
        assert_eq!(want[&a6], vec!["[fd00:10:244:1::11]:8080".parse().unwrap()]);
    }

    #[test]
    fn no_ip_no_listener() {
        let want = desired(
            &[svc("Cluster", None)],
            &[slice("n1", "10.244.1.11", true)],
            "n1",
        );
        assert!(want.is_empty());
    }
}
