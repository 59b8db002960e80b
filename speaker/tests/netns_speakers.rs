//! The speaker binary in network namespaces against the lab API server and a real gobgpd.
//! See `support/mod.rs` for the topology and how namespaces reach the API server.

mod support;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_netns::{Community, Signal};
use support::*;

const T: Duration = Duration::from_secs(20);
const SVC_IP: &str = "172.17.254.10";
const SVC_PREFIX: &str = "172.17.254.10/32";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_speakers_give_ecmp_local_policy_narrows_and_unready_withdraws() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(2).await;
    let _s1 = w.start_speaker(0, &[]);
    let _s2 = w.start_speaker(1, &[]);
    let (a1, a2) = (w.nodes[0].addr, w.nodes[1].addr);

    // Cluster policy with a ready endpoint anywhere: both nodes announce.
    w.create_service("web", SVC_IP, false).await;
    w.set_endpoints("web", &[("node-1", true)]).await;
    w.wait_next_hops(SVC_PREFIX, &[a1, a2], T).await;
    let route = w.route(SVC_PREFIX).expect("route");
    for p in &route.paths {
        assert_eq!(p.as_path, vec![NODE_AS], "{route:?}");
        assert_eq!(p.communities, vec![Community::new(64522, 100)], "{route:?}");
    }

    // Normal nodeAssigned event from each node.
    let ok = wait_until(T, || {
        let evs = futures::executor::block_on(w.events_for("web"));
        ["node-1", "node-2"].iter().all(|n| {
            evs.iter().any(|(t, r, m)| {
                t == "Normal"
                    && r == "nodeAssigned"
                    && m == &format!("announcing from node \"{n}\" with protocol \"bgp\"")
            })
        })
    })
    .await;
    assert!(ok, "events: {:?}", w.events_for("web").await);

    // Local policy, endpoints on node-1 only: one path, via node-1.
    w.create_service("local", "172.17.254.11", true).await;
    w.set_endpoints("local", &[("node-1", true), ("node-2", false)])
        .await;
    w.wait_next_hops("172.17.254.11/32", &[a1], T).await;

    // Every endpoint unready: withdrawn everywhere.
    w.set_endpoints("local", &[("node-1", false), ("node-2", false)])
        .await;
    w.wait_next_hops("172.17.254.11/32", &[], T).await;
    // The other Service is untouched.
    assert_eq!(
        w.next_hops(SVC_PREFIX),
        vec![IpAddr::V4(a1), IpAddr::V4(a2)]
    );

    // The status page (text and JSON) shows the session and the announced Service.
    let (code, text) = w.speaker_get(0, "/status");
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("Node: node-1"), "{text}");
    assert!(text.contains("172.17.0.1:179"), "{text}");
    assert!(text.contains("Established"), "{text}");
    assert!(text.contains(&format!("apps/web  {SVC_IP}")), "{text}");
    let (code, json) = w.speaker_get(0, "/status?format=json");
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json status");
    assert_eq!(v["peers"][0]["state"], "Established", "{v}");
    assert_eq!(v["peers"][0]["prefixes_sent"], 1, "{v}");
    assert_eq!(v["announced_services"]["apps/web"][0], SVC_IP, "{v}");
    let (code, metrics) = w.speaker_get(0, "/metrics");
    assert_eq!(code, 200);
    for want in [
        "metallb_bgp_session_up{peer=\"172.17.0.1:179\"} 1",
        "metallb_bgp_announced_prefixes_total{peer=\"172.17.0.1:179\"} 1",
        "metallb_speaker_announced{service=\"apps/web\",protocol=\"bgp\",node=\"node-1\",ip=\"172.17.254.10\"} 1",
        "metallb_k8s_client_config_loaded_bool 1",
        "metallb_k8s_client_config_stale_bool 0",
    ] {
        assert!(metrics.contains(want), "missing {want}:\n{metrics}");
    }
    assert_eq!(w.speaker_get(1, "/healthz").0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn community_change_without_reset_and_bad_config_keeps_everything() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(1).await;
    let _s = w.start_speaker(0, &[]);
    w.create_service("web", SVC_IP, false).await;
    w.set_endpoints("web", &[("node-1", true)]).await;
    w.wait_next_hops(SVC_PREFIX, &[w.nodes[0].addr], T).await;
    let up = w.session_uptime(0).expect("session up");
    // gobgpd reports uptime in whole seconds: make a reset detectable.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // New communities arrive without a session reset.
    w.set_config(&config_text("64522:200")).await;
    let ok = wait_until(T, || {
        w.route(SVC_PREFIX).is_some_and(|r| {
            r.paths
                .iter()
                .all(|p| p.communities == vec![Community::new(64522, 200)])
        })
    })
    .await;
    assert!(
        ok,
        "communities not updated: {:?}\n{}",
        w.route(SVC_PREFIX),
        w.logs()
    );
    assert_eq!(w.session_uptime(0), Some(up), "the session was reset");

    // Adding another Service does not reset it either.
    w.create_service("other", "172.17.254.12", false).await;
    w.set_endpoints("other", &[("node-1", true)]).await;
    w.wait_next_hops("172.17.254.12/32", &[w.nodes[0].addr], T)
        .await;
    assert_eq!(w.session_uptime(0), Some(up), "the session was reset");

    // A ConfigMap that fails to parse: everything stays, the stale metric is set.
    let before = w.route(SVC_PREFIX);
    w.set_config("peers:\n- peer-address: 172.17.0.1\n  peer-asn: 64512\n  my-asn: 64522\n  hold-time: 1s\naddress-pools: []\n").await;
    let ok = wait_until(T, || {
        w.speaker_get(0, "/metrics")
            .1
            .contains("metallb_k8s_client_config_stale_bool 1")
    })
    .await;
    assert!(ok, "stale metric not set\n{}", w.logs());
    let (_, status) = w.speaker_get(0, "/status");
    assert!(status.contains("STALE"), "{status}");
    assert!(status.contains("hold-time"), "{status}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.route(SVC_PREFIX), before, "announcement changed");
    assert_eq!(w.session_uptime(0), Some(up), "the session was reset");
    assert_eq!(
        w.next_hops("172.17.254.12/32"),
        vec![IpAddr::V4(w.nodes[0].addr)]
    );

    // A good config again clears the stale flag.
    w.set_config(&config_text("64522:200")).await;
    let ok = wait_until(T, || {
        w.speaker_get(0, "/metrics")
            .1
            .contains("metallb_k8s_client_config_stale_bool 0")
    })
    .await;
    assert!(ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_withdraws_within_a_second() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(2).await;
    let s1 = w.start_speaker(0, &[]);
    let _s2 = w.start_speaker(1, &[]);
    let (a1, a2) = (w.nodes[0].addr, w.nodes[1].addr);
    w.create_service("web", SVC_IP, false).await;
    w.set_endpoints("web", &[("node-1", true), ("node-2", true)])
        .await;
    w.wait_next_hops(SVC_PREFIX, &[a1, a2], T).await;

    let t0 = Instant::now();
    s1.signal(Signal::SIGTERM).expect("SIGTERM");
    w.wait_next_hops(SVC_PREFIX, &[a2], Duration::from_secs(5))
        .await;
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(1), "withdrawn after {took:?}");
    let ok = wait_until(Duration::from_secs(3), || !s1.is_running()).await;
    assert!(ok, "speaker did not exit");
    let status = s1.try_status().expect("exit status");
    assert!(status.success(), "exit status {status:?}\n{}", w.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pod_cidrs_are_announced_with_node_next_hops() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(2).await;
    let _s1 = w.start_speaker(0, &["--pod-cidr-mode", "advertise"]);
    let _s2 = w.start_speaker(1, &["--pod-cidr-mode", "advertise"]);
    for n in &w.nodes {
        w.wait_next_hops(&n.pod_cidr.to_string(), &[n.addr], T)
            .await;
    }
    let (_, status) = w.speaker_get(0, "/status");
    assert!(
        status.contains("Pod CIDRs advertised: 10.244.1.0/24"),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_unreachable_peer_and_ip_outside_pools() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(1).await;
    // A second router address where nothing listens on the configured port: refused.
    let cfg = r#"peers:
- peer-address: 172.17.0.1
  peer-asn: 64512
  my-asn: 64522
- peer-address: 172.17.0.5
  peer-port: 1179
  peer-asn: 64512
  my-asn: 64522
address-pools:
- name: default
  protocol: bgp
  addresses: [172.17.254.0/24]
"#;
    let rport = w
        .router
        .links()
        .expect("links")
        .into_iter()
        .find(|l| l.name != "lo")
        .expect("router link");
    w.router
        .add_addr(&rport.name, "172.17.0.5/24".parse().unwrap())
        .expect("second router address");
    w.set_config(cfg).await;
    let _s = w.start_speaker(0, &[]);

    // An IP outside every pool: not announced, Warning event.
    w.create_service("stray", "203.0.113.7", false).await;
    w.set_endpoints("stray", &[("node-1", true)]).await;
    // A good one still works next to the refusing peer.
    w.create_service("web", SVC_IP, false).await;
    w.set_endpoints("web", &[("node-1", true)]).await;
    w.wait_next_hops(SVC_PREFIX, &[w.nodes[0].addr], T).await;
    assert!(w.route("203.0.113.7/32").is_none());
    let ok = wait_until(T, || {
        futures::executor::block_on(w.events_for("stray"))
            .iter()
            .any(|(t, r, m)| {
                t == "Warning"
                    && r == "AnnounceFailed"
                    && m.contains("not in any configured address pool")
            })
    })
    .await;
    assert!(ok, "events: {:?}", w.events_for("stray").await);

    // The refusing peer is shown with its last error, and keeps being retried.
    let ok = wait_until(T, || {
        let (_, json) = w.speaker_get(0, "/status?format=json");
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&json) else {
            return false;
        };
        v["peers"].as_array().is_some_and(|ps| {
            ps.iter().any(|p| {
                p["peer"] == "172.17.0.5:1179"
                    && p["state"] != "Established"
                    // The socket's own reason, not a generic "connection closed".
                    && p["last_error"]
                        .as_str()
                        .is_some_and(|e| e.to_lowercase().contains("connection refused"))
            })
        })
    })
    .await;
    let (_, status) = w.speaker_get(0, "/status");
    assert!(
        ok,
        "refused peer not shown with its error:\n{status}\n{}",
        w.logs()
    );
    assert!(status.contains("stray"), "problem listed:\n{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn advertise_and_install_puts_learned_pod_routes_in_the_node_kernel() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(2).await;
    let _s1 = w.start_speaker(0, &["--pod-cidr-mode", "advertise-and-install"]);
    w.wait_next_hops("10.244.1.0/24", &[w.nodes[0].addr], T)
        .await;
    // The router announces node-2's pod CIDR towards node-1 (as a route reflector or a
    // fabric would), with node-2 as next hop.
    let pod2: ipnet::IpNet = "10.244.2.0/24".parse().unwrap();
    let via = IpAddr::V4(w.nodes[1].addr);
    // A LoadBalancer IP reflected back by the router must never be installed: announced
    // first, so by the time the pod route is in the kernel it has been considered too.
    let lb_ip: ipnet::IpNet = "172.17.254.7/32".parse().unwrap();
    w.gobgp
        .announce(lb_ip, via, &[])
        .expect("router announces a LoadBalancer IP");
    w.gobgp
        .announce(pod2, via, &[])
        .expect("router announces pod CIDR");
    let node1 = &w.nodes[0].ns;
    let ok = wait_until(T, || {
        node1
            .routes(ferrolb_netns::Family::V4)
            .map(|rs| {
                rs.iter()
                    .any(|r| r.dst == pod2 && r.gateways() == vec![via])
            })
            .unwrap_or(false)
    })
    .await;
    assert!(
        ok,
        "no kernel route for {pod2} via {via}: {:?}\n{}",
        node1.routes(ferrolb_netns::Family::V4),
        w.logs()
    );
    let (_, status) = w.speaker_get(0, "/status");
    assert!(status.contains("10.244.2.0/24 via 172.17.0.22"), "{status}");
    let kernel = node1
        .routes(ferrolb_netns::Family::V4)
        .expect("node routes");
    assert!(
        !kernel.iter().any(|r| r.dst == lb_ip),
        "LoadBalancer IP {lb_ip} learned from the router was installed: {kernel:?}"
    );

    // Withdrawn by the router: gone from the kernel.
    w.gobgp.withdraw(pod2).expect("withdraw");
    let ok = wait_until(T, || {
        node1
            .routes(ferrolb_netns::Family::V4)
            .map(|rs| !rs.iter().any(|r| r.dst == pod2))
            .unwrap_or(false)
    })
    .await;
    assert!(ok, "kernel route for {pod2} not removed");
}
