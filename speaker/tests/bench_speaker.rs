//! Speaker benchmark (ignored by default; needs root):
//!
//! ```text
//! cargo test --release -p ferrolb-speaker --test bench_speaker -- --ignored --nocapture
//! ```
//!
//! One node namespace running the real `ferrolb-speaker` binary, two routers (gobgpd, each
//! in its own namespace), the lab API server. Timing is taken from `gobgp monitor global rib`
//! streams read line by line as they arrive, so the numbers do not include CLI polling.
//! Measured: Service status IP written -> route in the router's RIB (200 Services, one at a
//! time); the same for dual-stack Services (IPv4 and IPv6 status IPs written together ->
//! both the /32 and the /128 in the router's RIB, 200 Services); Local-policy Service's
//! last endpoint unready -> route gone (50 Services); RSS and idle CPU with 1,000 Services
//! announced to 2 peers; SIGTERM -> the node's routes gone.
//!
//! IPv6 here goes over the IPv4 sessions (MP-BGP, both families negotiated, next hop the
//! Node's IPv6 InternalIP), one session per router as for IPv4; the netns lab's dual-stack
//! mode runs a separate IPv6 session instead (tests/tests/e2e_dualstack.rs). The speaker's
//! path from the status write to the UPDATE is the same either way.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrolb_netns::{Family, Gobgpd, Signal};
use futures::StreamExt;
use support::*;

/// Arrival times of announcements and withdrawals per prefix, from `gobgp monitor`.
#[derive(Default)]
struct Seen {
    announced: HashMap<String, Instant>,
    withdrawn: HashMap<String, Instant>,
}

struct Monitor {
    seen: Arc<Mutex<Seen>>,
    child: std::process::Child,
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Monitor {
    fn start(g: &Gobgpd) -> Monitor {
        let mut child = Command::new("gobgp")
            .arg("-j")
            .arg("--target")
            .arg(format!("unix://{}", g.socket().display()))
            .args(["monitor", "global", "rib"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("gobgp monitor");
        let out = child.stdout.take().expect("stdout");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let s2 = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let now = Instant::now();
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                let items = match v {
                    serde_json::Value::Array(a) => a,
                    other => vec![other],
                };
                let mut st = s2.lock().unwrap();
                for it in items {
                    let Some(prefix) = it["nlri"]["prefix"].as_str() else {
                        continue;
                    };
                    if it["withdrawal"].as_bool() == Some(true) {
                        st.withdrawn.entry(prefix.to_string()).or_insert(now);
                    } else {
                        st.announced.entry(prefix.to_string()).or_insert(now);
                    }
                }
            }
        });
        // Give the stream a moment to attach.
        std::thread::sleep(Duration::from_millis(300));
        Monitor { seen, child }
    }

    async fn wait(&self, prefix: &str, withdrawn: bool, timeout: Duration) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let st = self.seen.lock().unwrap();
                let map = if withdrawn {
                    &st.withdrawn
                } else {
                    &st.announced
                };
                if let Some(t) = map.get(prefix) {
                    return Some(*t);
                }
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

fn ip(i: usize) -> String {
    format!("172.18.{}.{}", i / 250, i % 250 + 1)
}

/// The IPv6 twin of [`ip`]: fd00:172:18::(i+1), inside the pool's IPv6 range.
fn ip6(i: usize) -> String {
    format!("fd00:172:18::{:x}", i + 1)
}

/// The node's and router 1's IPv6 addresses on the LAN.
const NODE6: &str = "fd00:172:17::21";
const ROUTER6: &str = "fd00:172:17::1";

/// Makes node 1 dual-stack: an IPv6 address on the LAN beside each IPv4 one (node and
/// router 1), and an IPv6 InternalIP in its Node status (the speaker's next hop for IPv6
/// routes on IPv4 sessions).
async fn make_dual_stack(w: &World) {
    for (ns, v4, v6) in [
        (&w.nodes[0].ns, w.nodes[0].addr, NODE6),
        (&w.router, ROUTER, ROUTER6),
    ] {
        let ifname = ns
            .addresses()
            .expect("addresses")
            .into_iter()
            .find(|a| a.addr.addr() == std::net::IpAddr::V4(v4))
            .expect("LAN interface")
            .ifname;
        ns.add_addr(&ifname, format!("{v6}/64").parse().unwrap())
            .expect("IPv6 address");
    }
    let status = serde_json::json!({"status": {"addresses": [
        {"type": "InternalIP", "address": w.nodes[0].addr.to_string()},
        {"type": "InternalIP", "address": NODE6},
    ]}});
    kube::Api::<k8s_openapi::api::core::v1::Node>::all(w.client.clone())
        .patch_status(
            &w.nodes[0].name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&status),
        )
        .await
        .expect("node status");
}

/// A LoadBalancer Service `name` without status IPs and one ready endpoint on node-1.
async fn service_without_ip(w: &World, name: &str) {
    let svc: k8s_openapi::api::core::v1::Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": APP_NS},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]}
    }))
    .unwrap();
    kube::Api::<k8s_openapi::api::core::v1::Service>::namespaced(w.client.clone(), APP_NS)
        .create(&Default::default(), &svc)
        .await
        .expect("create");
    w.set_endpoints(name, &[("node-1", true)]).await;
}

/// The next hops of the paths router `g` holds for the IPv6 `prefix`.
fn g_next_hops_v6(g: &Gobgpd, prefix: &str) -> Vec<std::net::IpAddr> {
    let prefix: ipnet::IpNet = prefix.parse().unwrap();
    g.rib(Family::V6)
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.prefix == prefix)
        .flat_map(|r| r.paths)
        .filter_map(|p| p.next_hops.first().copied())
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn summary(name: &str, mut v: Vec<Duration>) -> Duration {
    v.sort();
    let med = percentile(&v, 0.5);
    println!(
        "{name}: n={} median={:.1} ms p90={:.1} ms p99={:.1} ms max={:.1} ms",
        v.len(),
        med.as_secs_f64() * 1e3,
        percentile(&v, 0.9).as_secs_f64() * 1e3,
        percentile(&v, 0.99).as_secs_f64() * 1e3,
        v[v.len() - 1].as_secs_f64() * 1e3
    );
    med
}

fn proc_stat(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kb = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields after the command: state is [0]; utime [11], stime [12] (clock ticks).
    let ticks = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (rss_kb, ticks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run with --ignored --nocapture (root)"]
async fn speaker_benchmark() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(1).await;
    let r2_addr = Ipv4Addr::new(172, 17, 0, 2);
    let (_r2, g2) = w.add_router("router2", r2_addr);
    w.set_config(&format!(
        r#"peers:
- peer-address: {ROUTER}
  peer-asn: {ROUTER_AS}
  my-asn: {NODE_AS}
- peer-address: {r2_addr}
  peer-asn: {ROUTER_AS}
  my-asn: {NODE_AS}
address-pools:
- name: bench
  protocol: bgp
  addresses: [172.18.0.0/16, "fd00:172:18::/112"]
"#
    ))
    .await;
    let speaker = w.start_speaker(0, &[]);
    let node = std::net::IpAddr::V4(w.nodes[0].addr);
    w.gobgp
        .wait_established(node, Duration::from_secs(20))
        .expect("router 1 session");
    g2.wait_established(node, Duration::from_secs(20))
        .expect("router 2 session");
    let mon = Monitor::start(&w.gobgp);

    // 1. Status IP written -> route in the RIB, 200 Services one at a time.
    let mut lat = Vec::new();
    for i in 0..200 {
        let name = format!("lat-{i}");
        // The Service and its endpoints exist first; only the IP write is timed.
        service_without_ip(&w, &name).await;
        let t0 = Instant::now();
        w.set_service_ip(&name, &ip(i)).await;
        let seen = mon
            .wait(&format!("{}/32", ip(i)), false, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("route {} never seen\n{}", ip(i), w.logs()));
        lat.push(seen.saturating_duration_since(t0));
    }
    let announce_med = summary("status IP written -> route in router RIB", lat.clone());

    // 1b. Dual stack: both status IPs written in one patch -> /32 and /128 in the RIB,
    // 200 Services one at a time; the time is until the later of the two arrived.
    make_dual_stack(&w).await;
    let svc_api =
        kube::Api::<k8s_openapi::api::core::v1::Service>::namespaced(w.client.clone(), APP_NS);
    let mut dual = Vec::new();
    for i in 1100..1300 {
        let name = format!("dual-{i}");
        service_without_ip(&w, &name).await;
        let status = serde_json::json!({"status": {"loadBalancer": {"ingress": [
            {"ip": ip(i)}, {"ip": ip6(i)}]}}});
        let t0 = Instant::now();
        svc_api
            .patch_status(
                &name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&status),
            )
            .await
            .expect("patch service status");
        let mut last = t0;
        for prefix in [format!("{}/32", ip(i)), format!("{}/128", ip6(i))] {
            let seen = mon
                .wait(&prefix, false, Duration::from_secs(10))
                .await
                .unwrap_or_else(|| panic!("route {prefix} never seen\n{}", w.logs()));
            last = last.max(seen);
        }
        dual.push(last.saturating_duration_since(t0));
    }
    let v6_hops = g_next_hops_v6(&w.gobgp, &format!("{}/128", ip6(1100)));
    assert_eq!(v6_hops, [NODE6.parse::<std::net::IpAddr>().unwrap()]);
    let dual_med = summary(
        "dual stack: status IPs written -> /32 and /128 in router RIB",
        dual,
    );
    // Back to the same set of Services as before, so the RSS below stays comparable.
    for i in 1100..1300 {
        svc_api
            .delete(&format!("dual-{i}"), &Default::default())
            .await
            .expect("delete");
    }

    // 2. Local policy: last local endpoint unready -> route withdrawn, 50 Services.
    let mut wd = Vec::new();
    for i in 200..250 {
        let name = format!("loc-{i}");
        w.create_service(&name, &ip(i), true).await;
        w.set_endpoints(&name, &[("node-1", true)]).await;
        let p = format!("{}/32", ip(i));
        mon.wait(&p, false, Duration::from_secs(10))
            .await
            .expect("announced");
        let t0 = Instant::now();
        w.set_endpoints(&name, &[("node-1", false)]).await;
        let seen = mon
            .wait(&p, true, Duration::from_secs(10))
            .await
            .expect("withdrawn");
        wd.push(seen.saturating_duration_since(t0));
    }
    let withdraw_med = summary("last local endpoint unready -> route gone", wd);

    // 3. 1,000 Services announced to 2 peers: RSS and idle CPU.
    futures::stream::iter(250..1050)
        .map(|i| {
            let w = &w;
            async move {
                let name = format!("bulk-{i}");
                w.create_service(&name, &ip(i), false).await;
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    // Cluster policy needs a ready endpoint anywhere; one slice per Service.
    futures::stream::iter(250..1050)
        .map(|i| {
            let w = &w;
            async move {
                w.set_endpoints(&format!("bulk-{i}"), &[("node-1", true)])
                    .await
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    let count = |g: &Gobgpd| g.rib(Family::V4).map(|r| r.len()).unwrap_or(0);
    let ok = wait_until(Duration::from_secs(60), || {
        count(&w.gobgp) >= 1000 && count(&g2) >= 1000
    })
    .await;
    assert!(
        ok,
        "routers have {} and {} routes\n{}",
        count(&w.gobgp),
        count(&g2),
        w.logs()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_kb, t1) = proc_stat(speaker.pid());
    let idle = Duration::from_secs(10);
    tokio::time::sleep(idle).await;
    let (rss2_kb, t2) = proc_stat(speaker.pid());
    // /proc/PID/stat counts in USER_HZ, which is 100 on Linux.
    let hz = 100.0;
    let cpu = (t2 - t1) as f64 / hz / idle.as_secs_f64() * 100.0;
    println!(
        "speaker with {} routes to each of 2 peers: RSS {:.1} MB (after 10 s idle: {:.1} MB), idle CPU {:.2} %",
        count(&w.gobgp),
        rss_kb as f64 / 1024.0,
        rss2_kb as f64 / 1024.0,
        cpu
    );

    // 4. SIGTERM -> every route of the node gone from the router.
    let total = count(&w.gobgp);
    let t0 = Instant::now();
    speaker.signal(Signal::SIGTERM).expect("SIGTERM");
    let probe = format!("{}/32", ip(0));
    let first = mon
        .wait(&probe, true, Duration::from_secs(10))
        .await
        .expect("withdrawn on SIGTERM");
    let ok = wait_until(Duration::from_secs(10), || count(&w.gobgp) == 0).await;
    let all_gone = t0.elapsed();
    assert!(ok, "routes left after SIGTERM");
    println!(
        "SIGTERM -> route withdrawn at router: {:.1} ms (all {total} routes gone, polled: {:.0} ms)",
        first.saturating_duration_since(t0).as_secs_f64() * 1e3,
        all_gone.as_secs_f64() * 1e3
    );

    assert!(
        announce_med < Duration::from_millis(50),
        "announce median {announce_med:?}"
    );
    assert!(
        withdraw_med < Duration::from_millis(50),
        "withdraw median {withdraw_med:?}"
    );
    assert!(
        dual_med < Duration::from_millis(50),
        "dual-stack announce median {dual_med:?}"
    );
    assert!(rss_kb < 30 * 1024, "RSS {rss_kb} kB");
}
