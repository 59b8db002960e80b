//! Shared pieces of the interop tests: a tokio runtime whose threads live in a
//! network namespace (so our in-process speaker opens its sockets there), a two-node
//! topology, and event helpers.

#![allow(dead_code)]

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use ferrolb_bgp::fsm::State;
use ferrolb_bgp::session::SpeakerEvent;
use ferrolb_bgp::wire::{LargeCommunity, PathAttributes};
use ferrolb_netns::{Lab, Netns};
use tokio::sync::mpsc::UnboundedReceiver;

/// A multi-threaded tokio runtime whose worker threads were created inside `ns`.
/// Work must be `spawn`ed onto it (see [`NsRuntime::run`]): `block_on` alone would run
/// on the caller's thread, in the caller's namespace.
pub struct NsRuntime {
    rt: tokio::runtime::Runtime,
}

impl NsRuntime {
    pub fn new(ns: &Netns) -> NsRuntime {
        let name = ns.name().expect("a named namespace").to_string();
        let rt = std::thread::spawn(move || {
            let f = std::fs::File::open(format!("/var/run/netns/{name}")).expect("open netns");
            // SAFETY: a valid namespace fd; only this (fresh) thread changes namespace.
            let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime")
        })
        .join()
        .expect("runtime thread");
        NsRuntime { rt }
    }

    /// Run `fut` on the namespace's worker threads and wait for it.
    pub fn run<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self.rt.block_on(self.rt.spawn(fut)) {
            Ok(v) => v,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

/// Two namespaces joined by a veth: `peer` (a daemon) and `node` (our speaker).
pub struct Pair {
    pub lab: Lab,
    pub peer: Netns,
    pub node: Netns,
    pub peer_v4: Ipv4Addr,
    pub node_v4: Ipv4Addr,
    pub peer_v6: std::net::Ipv6Addr,
    pub node_v6: std::net::Ipv6Addr,
}

impl Pair {
    pub fn new() -> Pair {
        let lab = Lab::new().expect("lab");
        let peer = lab.netns("peer").expect("peer ns");
        let node = lab.netns("node").expect("node ns");
        let v = lab.veth(&peer, &node).expect("veth");
        peer.ip(&["addr", "add", "10.0.0.1/24", "dev", &v.a])
            .expect("addr");
        node.ip(&["addr", "add", "10.0.0.2/24", "dev", &v.b])
            .expect("addr");
        peer.ip(&["addr", "add", "fd00::1/64", "dev", &v.a, "nodad"])
            .expect("addr6");
        node.ip(&["addr", "add", "fd00::2/64", "dev", &v.b, "nodad"])
            .expect("addr6");
        for (ns, l) in [(&peer, &v.a), (&node, &v.b)] {
            ns.set_link(l, true).expect("link up");
            ns.set_link("lo", true).expect("lo up");
        }
        Pair {
            lab,
            peer,
            node,
            peer_v4: Ipv4Addr::new(10, 0, 0, 1),
            node_v4: Ipv4Addr::new(10, 0, 0, 2),
            peer_v6: "fd00::1".parse().expect("v6"),
            node_v6: "fd00::2".parse().expect("v6"),
        }
    }
}

/// Skip (with a message) unless root.
pub fn root_or_skip() -> bool {
    match ferrolb_netns::require_root() {
        Ok(()) => true,
        Err(skip) => {
            eprintln!("{skip}");
            false
        }
    }
}

/// Wait for a state change of `peer` into `to`; returns the reason of the change.
pub async fn wait_state(
    events: &mut UnboundedReceiver<SpeakerEvent>,
    peer: IpAddr,
    to: State,
    timeout: Duration,
) -> Result<Option<String>, String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => return Err(format!("{peer} did not reach {to} within {timeout:?}")),
            Ok(None) => return Err("event channel closed".into()),
            Ok(Some(SpeakerEvent::PeerStateChanged {
                peer: p,
                to: t,
                reason,
                ..
            })) if p == peer && t == to => {
                return Ok(reason);
            }
            Ok(Some(_)) => {}
        }
    }
}

/// Attributes with one community and one large community, LOCAL_PREF 200.
pub fn tagged_attributes(asn: u32) -> Arc<PathAttributes> {
    Arc::new(PathAttributes {
        communities: vec![(asn << 16) | 100],
        large_communities: vec![LargeCommunity {
            global: asn,
            local1: 1,
            local2: 2,
        }],
        local_pref: Some(200),
        ..PathAttributes::default()
    })
}
