//! `BGPPeer` (v1beta2) -> [`Peer`].

use std::time::Duration;

use ferrolb_config::rules::{self, Spelling};
use ferrolb_config::{ObjectRef, Peer, SecretRef};

use super::diag::{Diag, object};
use super::references::Refs;
use super::selectors::selectors;
use super::{Nodes, name};
use crate::types::{BGPPeer, BGPPeerSpec};

const S: &Spelling = &Spelling::CRD;

/// Every BGPPeer (sorted by name), checked one by one and against each other.
pub(crate) fn peers(
    d: &mut Diag,
    refs: &Refs,
    crs: &[&BGPPeer],
    nodes: Option<&Nodes>,
) -> Vec<Peer> {
    let mut out: Vec<Peer> = Vec::new();
    for cr in crs {
        let o = object("BGPPeer", name(&cr.metadata));
        let Some(peer) = peer(d, &o, &cr.spec, refs) else {
            continue;
        };
        if let Some(other) = out.iter().find(|p| p.address == peer.address) {
            let other_name = format!("BGPPeer/{}", other.name.as_deref().unwrap_or_default());
            if let Err(reason) =
                rules::one_port_per_address(peer.address, peer.port, &other_name, other.port)
            {
                d.error(&o, "spec.peerAddress", reason);
                continue;
            }
            let unnamed = |p: &Peer| Peer {
                name: None,
                ..p.clone()
            };
            if unnamed(other) == unnamed(&peer) {
                d.warn(
                    &o,
                    "",
                    format!("the same session as {other_name}: one BGP session is made for both"),
                );
            }
        }
        if let Some(nodes) = nodes
            && !peer.node_selectors.is_empty()
            && !nodes.iter().any(|(_, labels)| peer.selects_node(labels))
        {
            d.warn(
                &o,
                "spec.nodeSelectors",
                "select no node: no node peers with this router",
            );
        }
        out.push(peer);
    }
    out
}

/// Fields ferrolb does not support: set, they refuse the peer.
fn unsupported(d: &mut Diag, o: &ObjectRef, s: &BGPPeerSpec) {
    let set = |v: &Option<String>| v.as_deref().is_some_and(|t| !t.is_empty());
    let checks = [
        (
            set(&s.dynamic_asn),
            "spec.dynamicASN",
            "not supported: give the peer's AS number in spec.peerASN",
        ),
        (
            set(&s.interface),
            "spec.interface",
            "not supported (unnumbered BGP): give spec.peerAddress",
        ),
        (
            set(&s.vrf),
            "spec.vrf",
            "not supported: ferrolb peers from the node's default VRF",
        ),
        (
            s.connect_time.is_some(),
            "spec.connectTime",
            "not supported: ferrolb retries connections with its own backoff (1 s to 120 s)",
        ),
        (
            s.disable_mp,
            "spec.disableMP",
            "not supported: ferrolb carries IPv4 and IPv6 routes over one session",
        ),
    ];
    for (is_set, path, why) in checks {
        if is_set {
            d.error(o, path, why);
        }
    }
}

fn peer(d: &mut Diag, o: &ObjectRef, s: &BGPPeerSpec, refs: &Refs) -> Option<Peer> {
    let errors_before = d.errors.len();
    unsupported(d, o, s);

    let my_asn = d.check(o, "spec.myASN", rules::nonzero_asn(s.my_asn));
    let peer_asn = if s.peer_asn == 0 && s.dynamic_asn.is_none() {
        d.error(
            o,
            "spec.peerASN",
            format!("required: the peer's AS number ({})", rules::ASN_RANGE),
        );
        None
    } else {
        rules::nonzero_asn(s.peer_asn).ok()
    };
    let address = match s.peer_address.as_deref().filter(|a| !a.is_empty()) {
        None => {
            d.error(o, "spec.peerAddress", "required: the address to dial");
            None
        }
        Some(text) => d.check(o, "spec.peerAddress", rules::ip(text)),
    };
    let port = match s.peer_port {
        None => rules::DEFAULT_PORT,
        Some(0) => {
            d.warn(
                o,
                "spec.peerPort",
                "0 means the default port, 179 (as in MetalLB)",
            );
            rules::DEFAULT_PORT
        }
        Some(p) => p,
    };
    let (hold_time, keepalive_time) = timers(d, o, s);
    let router_id = s
        .router_id
        .as_deref()
        .filter(|t| !t.is_empty())
        .and_then(|t| d.check(o, "spec.routerID", rules::router_id(t)));
    let source_address = s
        .source_address
        .as_deref()
        .filter(|t| !t.is_empty())
        .and_then(|t| d.check(o, "spec.sourceAddress", rules::ip(t)))
        .and_then(|src| match address {
            Some(a) => d
                .check(o, "spec.sourceAddress", rules::source_family(src, a, S))
                .map(|()| src),
            None => Some(src),
        });
    let node_selectors = selectors(d, o, "spec.nodeSelectors", &s.node_selectors);
    let password = s
        .password
        .as_deref()
        .and_then(|t| d.check(o, "spec.password", rules::password(t)))
        .flatten();
    let password_secret = s
        .password_secret
        .as_ref()
        .and_then(|r| {
            r.name
                .clone()
                .filter(|n| !n.is_empty())
                .map(|n| (n, r.namespace.clone()))
        })
        .map(|(name, namespace)| SecretRef { name, namespace });
    if password.is_some() && password_secret.is_some() {
        d.error(
            o,
            "spec.passwordSecret",
            "both spec.password and spec.passwordSecret are set; give one (MetalLB rejects both)",
        );
    }
    let bfd_profile = s
        .bfd_profile
        .as_deref()
        .filter(|n| !n.is_empty())
        .and_then(|n| bfd_reference(d, o, n, refs));
    if let (Some(pa), Some(ma)) = (peer_asn, my_asn) {
        d.check(
            o,
            "spec.ebgpMultiHop",
            rules::ebgp_multihop(s.ebgp_multi_hop, pa, ma, S),
        );
    }

    if s.enable_graceful_restart && s.bfd_profile.as_deref().is_none_or(str::is_empty) {
        d.warn(
            o,
            "spec.enableGracefulRestart",
            format!(
                "graceful restart without a bfdProfile: a crashed or silent node keeps its \
                 routes on a GR-aware router for the hold time plus the restart time ({}s); \
                 add a bfdProfile so a dead node still leaves at once",
                rules::DEFAULT_RESTART_TIME.as_secs()
            ),
        );
    }

    if d.errors.len() > errors_before {
        return None;
    }
    Some(Peer {
        address: address?,
        peer_asn: peer_asn?,
        my_asn: my_asn?,
        port,
        hold_time: hold_time?,
        keepalive_time: keepalive_time?,
        router_id,
        source_address,
        node_selectors,
        password,
        bfd_profile,
        ebgp_multihop: s.ebgp_multi_hop,
        name: Some(o.name.clone()),
        password_secret,
        graceful_restart: s.enable_graceful_restart,
        graceful_restart_time: rules::DEFAULT_RESTART_TIME,
    })
}

/// Hold and keepalive times, with MetalLB's CR rule for a missing one (`parseTimers`): only
/// a hold time -> keepalive a third of it; only a keepalive -> hold time three times it;
/// neither -> ferrolb's defaults, as with the ConfigMap (90 s and 30 s).
fn timers(d: &mut Diag, o: &ObjectRef, s: &BGPPeerSpec) -> (Option<Duration>, Option<Duration>) {
    let secs = |d: &mut Diag, path: &str, text: &Option<String>| -> Option<Option<u64>> {
        match text.as_deref() {
            None => Some(None),
            Some(t) => d.check(o, path, rules::whole_seconds(t)).map(Some),
        }
    };
    let (Some(hold), Some(keep)) = (
        secs(d, "spec.holdTime", &s.hold_time),
        secs(d, "spec.keepaliveTime", &s.keepalive_time),
    ) else {
        return (None, None);
    };
    let hold_time = match (hold, keep) {
        (Some(h), _) => d.check(o, "spec.holdTime", rules::hold_time(h)),
        (None, Some(k)) => d.check(
            o,
            "spec.keepaliveTime",
            rules::hold_time(k.saturating_mul(3))
                .map_err(|r| format!("makes the hold time 3 × {k}s, and {r}")),
        ),
        (None, None) => Some(rules::DEFAULT_HOLD_TIME),
    };
    let keepalive_time = match keep {
        None => hold_time.map(rules::default_keepalive),
        Some(k) => d
            .check(
                o,
                "spec.keepaliveTime",
                rules::keepalive(Duration::from_secs(k), hold_time),
            )
            .map(|(k, warning)| {
                if let Some(w) = warning {
                    d.warn(o, "spec.keepaliveTime", w);
                }
                k
            }),
    };
    (hold_time, keepalive_time)
}

fn bfd_reference(d: &mut Diag, o: &ObjectRef, name: &str, refs: &Refs) -> Option<String> {
    if refs.bfd_profiles.iter().any(|b| b.name == name) {
        return Some(name.to_string());
    }
    if refs.broken_bfd.contains(name) {
        return None;
    }
    let defined: Vec<String> = refs
        .bfd_profiles
        .iter()
        .map(|b| format!("{:?}", b.name))
        .collect();
    let hint = if defined.is_empty() {
        "there are no BFDProfiles".to_string()
    } else {
        format!("defined: {}", defined.join(", "))
    };
    d.error(
        o,
        "spec.bfdProfile",
        format!("BFDProfile {name:?} does not exist ({hint})"),
    );
    None
}
