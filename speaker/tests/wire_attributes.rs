//! The path attributes of ferrolb's routes as real routers receive them: what MetalLB's
//! native speaker sends, so routers treat MetalLB and ferrolb nodes alike during a rolling
//! migration. MetalLB v0.12.1 `internal/bgp/native/messages.go` `encodePathAttrs`: ORIGIN 2
//! (INCOMPLETE) on every route; towards iBGP peers LOCAL_PREF = the advertisement's
//! `localpref`, 0 when it sets none. Checked in the Adj-RIB-In of a real gobgpd, one eBGP and
//! one iBGP, read from its JSON API (attribute type 1 = ORIGIN, 5 = LOCAL_PREF).

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use ferrolb_netns::{GobgpConfig, GobgpNeighbor, Gobgpd};
use serde_json::Value;
use support::*;

const T: Duration = Duration::from_secs(20);
const IBGP_ROUTER: Ipv4Addr = Ipv4Addr::new(172, 17, 0, 3);
const SVC_IP: &str = "172.17.254.10";
const SVC_PREFIX: &str = "172.17.254.10/32";

/// (ORIGIN, LOCAL_PREF) of `prefix` as `router` received it from `from`, if it has it.
fn origin_and_local_pref(
    router: &Gobgpd,
    from: IpAddr,
    prefix: &str,
) -> Option<(u64, Option<u64>)> {
    let text = router
        .cli(&["neighbor", &from.to_string(), "adj-in", "-a", "ipv4"])
        .ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    let attrs = v.get(prefix)?.get(0)?.get("attrs")?.as_array()?.clone();
    let of_type = |t: u64| {
        attrs
            .iter()
            .find(|a| a.get("type").and_then(Value::as_u64) == Some(t))
            .and_then(|a| a.get("value").and_then(Value::as_u64))
    };
    Some((of_type(1)?, of_type(5)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn service_routes_carry_metallb_native_origin_and_local_pref() {
    if !root_or_skip() {
        return;
    }
    let w = World::new(1).await;
    let node = IpAddr::V4(w.nodes[0].addr);

    // A second router on the LAN, in the nodes' own AS: an iBGP peer.
    let ns = w.lab.netns("ibgp").expect("ibgp router ns");
    let port = w.lab.connect(&ns, &w.lan, &w.bridge).expect("router port");
    ns.add_addr(&port.a, format!("{IBGP_ROUTER}/24").parse().unwrap())
        .expect("router addr");
    let ibgp = Gobgpd::start(
        &ns,
        &GobgpConfig::new(NODE_AS, IBGP_ROUTER).neighbor(GobgpNeighbor::new(node, NODE_AS)),
    )
    .expect("gobgpd");

    w.set_config(&format!(
        "peers:
- peer-address: {ROUTER}
  peer-asn: {ROUTER_AS}
  my-asn: {NODE_AS}
- peer-address: {IBGP_ROUTER}
  peer-asn: {NODE_AS}
  my-asn: {NODE_AS}
address-pools:
- name: default
  protocol: bgp
  addresses: [172.17.254.0/24]
"
    ))
    .await;
    let _s = w.start_speaker(0, &["--pod-cidr-mode", "advertise"]);
    w.create_service("web", SVC_IP, false).await;
    w.set_endpoints("web", &[("node-1", true)]).await;

    let mut seen = None;
    let ok = wait_until(T, || {
        seen = origin_and_local_pref(&ibgp, node, SVC_PREFIX);
        seen.is_some()
    })
    .await;
    assert!(ok, "iBGP router never received {SVC_PREFIX}\n{}", w.logs());
    assert_eq!(
        seen,
        Some((2, Some(0))),
        "iBGP: ORIGIN INCOMPLETE (2) and LOCAL_PREF 0, as MetalLB's native speaker"
    );

    w.wait_next_hops(SVC_PREFIX, &[w.nodes[0].addr], T).await;
    assert_eq!(
        origin_and_local_pref(&w.gobgp, node, SVC_PREFIX),
        Some((2, None)),
        "eBGP: ORIGIN INCOMPLETE, no LOCAL_PREF"
    );

    // Pod CIDRs are ferrolb's own (MetalLB never announces them): ORIGIN IGP, and the
    // usual LOCAL_PREF 100 towards iBGP.
    let pod = w.nodes[0].pod_cidr.to_string();
    let mut pod_seen = None;
    let ok = wait_until(T, || {
        pod_seen = origin_and_local_pref(&ibgp, node, &pod);
        pod_seen.is_some()
    })
    .await;
    assert!(ok, "iBGP router never received {pod}\n{}", w.logs());
    assert_eq!(pod_seen, Some((0, Some(100))));
}
