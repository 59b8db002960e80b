//! A 30 s API outage on the real kube-apiserver (issue 11): after the server answers again,
//! every watch of the controller (Services, ConfigMap) and of the speaker (Services,
//! EndpointSlices, its Node, ConfigMap) sees a change made at that moment within 2 s.
//!
//! Each watch is checked by its own outcome, made just after the restart (T0 = the moment
//! `/readyz` first answers `ok` again, polled every 100 ms):
//!
//! | watch | change at T0 | outcome measured |
//! |---|---|---|
//! | controller Services | a new LoadBalancer Service | it has an IP in status |
//! | controller ConfigMap | pool `p2` added | a Service waiting for `p2` has an IP from it |
//! | speaker Services | (the new Service above) | announced from the node |
//! | speaker EndpointSlices | a Local Service's endpoint moves to this node | announced |
//! | speaker Node | the label a peer's node-selector wants | that peer is configured |
//! | speaker ConfigMap | (the change above) adds a peer | that peer is configured |
//!
//! The controller's outcomes also need it to lead again: with the 3 s lease used here it
//! retries the Lease every ~0.43 s (with the default 15 s lease, every ~2.1 s). Before the
//! fix (kube's default back-off, growing to 30 s) these took 25-37 s.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ferrolb_controller::leader::Timing;
use ferrolb_kubeapi::TestApi;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const NS: &str = "metallb-system";
const APPS: &str = "apps";
const NODE: &str = "node-1";
/// How long the API server is away.
const OUTAGE: Duration = Duration::from_secs(30);
/// The target: every watch back within this long of the server answering.
const TARGET: Duration = Duration::from_secs(2);

fn config(with_p2: bool) -> String {
    let mut c = String::from(
        "peers:\n\
         - peer-address: 127.0.0.2\n  peer-port: 1\n  peer-asn: 64512\n  my-asn: 64522\n\
         - peer-address: 127.0.0.3\n  peer-port: 1\n  peer-asn: 64512\n  my-asn: 64522\n  \
           node-selectors:\n  - match-labels:\n      outage-test: peer\n",
    );
    if with_p2 {
        c.push_str(
            "- peer-address: 127.0.0.4\n  peer-port: 1\n  peer-asn: 64512\n  my-asn: 64522\n",
        );
    }
    c.push_str("address-pools:\n- name: p1\n  protocol: bgp\n  addresses: [198.51.100.0/28]\n");
    if with_p2 {
        c.push_str(
            "- name: p2\n  protocol: bgp\n  auto-assign: false\n  addresses: [203.0.113.0/28]\n",
        );
    }
    c
}

fn obj<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("object json")
}

fn service(name: &str, policy: &str, annotations: Value) -> Service {
    obj(json!({
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
                 "externalTrafficPolicy": policy, "selector": {"app": name},
                 "ports": [{"port": 80, "protocol": "TCP"}]}
    }))
}

fn slice(service: &str, node: &str) -> EndpointSlice {
    obj(json!({
        "metadata": {"name": format!("{service}-1"), "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.9.9"], "nodeName": node, "conditions": {"ready": true}}],
        "ports": [{"port": 80, "protocol": "TCP"}]
    }))
}

fn ips(s: &Service) -> Vec<String> {
    s.status
        .as_ref()
        .and_then(|st| st.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|i| i.iter().filter_map(|x| x.ip.clone()).collect())
        .unwrap_or_default()
}

/// Only on the real server: the outage is a stop and start of kube-apiserver (etcd and its
/// data stay), which the in-memory lab server has no equivalent of.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_watch_is_back_within_2s_of_a_30s_outage() {
    let Some(api) = TestApi::real("outage::every_watch_is_back_within_2s_of_a_30s_outage").await
    else {
        return;
    };
    let server = api.real_server().expect("the real server");
    let admin = api.client().await;
    let nss: Api<Namespace> = Api::all(admin.clone());
    for n in [NS, APPS] {
        if nss.get_opt(n).await.expect("namespace").is_none() {
            nss.create(
                &PostParams::default(),
                &obj(json!({"metadata": {"name": n}})),
            )
            .await
            .expect("create namespace");
        }
    }
    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), NS);
    cms.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "config"}, "data": {"config": config(false)}})),
    )
    .await
    .expect("configmap");
    let nodes: Api<Node> = Api::all(admin.clone());
    nodes
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": NODE},
                "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]}})),
        )
        .await
        .expect("node");
    let svcs: Api<Service> = Api::namespaced(admin.clone(), APPS);
    let slices: Api<EndpointSlice> = Api::namespaced(admin.clone(), APPS);
    let pp = PostParams::default();
    svcs.create(&pp, &service("local", "Local", json!({})))
        .await
        .expect("local");
    slices
        .create(&pp, &slice("local", "node-2"))
        .await
        .expect("slice");
    // The Service created after the outage has a ready endpoint waiting for it.
    slices
        .create(&pp, &slice("after", "node-2"))
        .await
        .expect("slice");
    svcs.create(
        &pp,
        &service(
            "wants-p2",
            "Cluster",
            json!({"metallb.universe.tf/address-pool": "p2"}),
        ),
    )
    .await
    .expect("wants-p2");

    let mut copts = ferrolb_controller::Options::new(NS, "config");
    copts.identity = "outage-ctl".into();
    copts.leader = Timing::for_lease_duration(Duration::from_secs(3));
    let ctl = ferrolb_controller::start(copts, api.admin_config().await)
        .await
        .expect("controller");
    let mut sopts = ferrolb_speaker::Options::new(NODE);
    sopts.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    let spk = ferrolb_speaker::start(sopts, api.admin_config().await)
        .await
        .expect("speaker");

    // Before: local has an IP but its endpoint is elsewhere, wants-p2 waits for its pool,
    // one peer configured (the other wants a node label).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let local = svcs.get("local").await.expect("local");
        let st = spk.status();
        if !ips(&local).is_empty() && st.synced && st.peers.len() == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no steady state before the outage: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(spk.status().announced_services.is_empty());
    assert!(ips(&svcs.get("wants-p2").await.expect("get")).is_empty());

    // The outage.
    tokio::task::spawn_blocking(|| server.stop_apiserver())
        .await
        .expect("stop");
    let down = Instant::now();
    tokio::time::sleep(OUTAGE).await;
    tokio::task::spawn_blocking(|| server.start_apiserver())
        .await
        .expect("start task")
        .expect("restart kube-apiserver");
    let t0 = Instant::now();
    eprintln!(
        "API server down for {:.1} s",
        t0.duration_since(down).as_secs_f64()
    );

    // The changes, at once.
    let admin = api.client().await;
    let svcs: Api<Service> = Api::namespaced(admin.clone(), APPS);
    let slices: Api<EndpointSlice> = Api::namespaced(admin.clone(), APPS);
    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), NS);
    let nodes: Api<Node> = Api::all(admin.clone());
    let merge = PatchParams::default();
    svcs.create(&pp, &service("after", "Cluster", json!({})))
        .await
        .expect("create after");
    slices
        .patch("local-1", &merge, &Patch::Merge(json!({"endpoints": [{"addresses": ["10.244.9.9"], "nodeName": NODE, "conditions": {"ready": true}}]})))
        .await
        .expect("move endpoint");
    cms.patch(
        "config",
        &merge,
        &Patch::Merge(json!({"data": {"config": config(true)}})),
    )
    .await
    .expect("config");
    nodes
        .patch(
            NODE,
            &merge,
            &Patch::Merge(json!({"metadata": {"labels": {"outage-test": "peer"}}})),
        )
        .await
        .expect("label node");
    eprintln!(
        "changes made {:.0} ms after T0",
        t0.elapsed().as_secs_f64() * 1000.0
    );

    // Poll every outcome until all are seen (or the generous bound passes).
    let mut seen: BTreeMap<&str, Duration> = BTreeMap::new();
    let deadline = t0 + Duration::from_secs(40);
    while seen.len() < 6 && Instant::now() < deadline {
        let now = t0.elapsed();
        let st = spk.status();
        let peer = |p: &str| st.peers.iter().any(|x| x.peer == p);
        let mut mark = |k: &'static str, ok: bool| {
            if ok {
                seen.entry(k).or_insert(now);
            }
        };
        let after = svcs.get_opt("after").await.ok().flatten();
        mark(
            "controller services",
            after.as_ref().is_some_and(|s| !ips(s).is_empty()),
        );
        let p2 = svcs.get_opt("wants-p2").await.ok().flatten();
        mark(
            "controller configmap",
            p2.as_ref()
                .is_some_and(|s| ips(s).iter().any(|ip| ip.starts_with("203.0.113."))),
        );
        mark(
            "speaker services",
            st.announced_services.contains_key("apps/after"),
        );
        mark(
            "speaker endpointslices",
            st.announced_services.contains_key("apps/local"),
        );
        mark("speaker node", peer("127.0.0.3:1"));
        mark("speaker configmap", peer("127.0.0.4:1"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (watch, t) in &seen {
        eprintln!("{watch:<24} back after {:.0} ms", t.as_secs_f64() * 1000.0);
    }
    assert_eq!(seen.len(), 6, "not every watch came back: {seen:?}");
    let late: Vec<_> = seen.iter().filter(|(_, t)| **t > TARGET).collect();
    assert!(
        late.is_empty(),
        "watches back later than {TARGET:?} after the server: {late:?}"
    );

    // Nothing was lost: the IPs held before the outage are the same.
    assert!(!ips(&svcs.get("local").await.expect("local")).is_empty());
    spk.shutdown().await;
    ctl.shutdown().await;
}
