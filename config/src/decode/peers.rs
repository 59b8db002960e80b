//! `peers[]`: the BGP routers to peer with.

use std::time::Duration;

use super::Refs;
use super::helpers::{asn, check, opt_bool, parse_ip_field, required, whole_seconds};
use super::selectors::decode_selectors;
use crate::error::Diagnostics;
use crate::fields::{Fields, child, integer, item, list, read_map, string};
use crate::model::Peer;
use crate::rules::{self, Spelling};
use crate::yaml::Node;

const PEER_KEYS: &[&str] = &[
    "peer-address",
    "peer-asn",
    "my-asn",
    "peer-port",
    "hold-time",
    "keepalive-time",
    "router-id",
    "source-address",
    "node-selectors",
    "password",
    "bfd-profile",
    // MetalLB's own v0.12.1 example-config.yaml spells it this way; accepted with a warning.
    "bfdProfile",
    "ebgp-multihop",
    // ferrolb's own keys beside MetalLB's schema.
    "ferrolb-graceful-restart",
    "ferrolb-graceful-restart-time",
];

const S: &Spelling = &Spelling::CONFIGMAP;

pub(super) fn decode_peers(
    d: &mut Diagnostics,
    node: &Node,
    path: &str,
    refs: &Refs<'_>,
) -> Vec<Peer> {
    let mut out: Vec<(usize, Peer)> = Vec::new();
    let Some(items) = list(d, node, path) else {
        return Vec::new();
    };
    for (i, entry) in items.iter().enumerate() {
        let p = item(path, i);
        let Some(peer) = decode_peer(d, entry, &p, refs) else {
            continue;
        };
        if let Some((j, _)) = out.iter().find(|(_, other)| *other == peer) {
            d.error(
                &p,
                entry.line,
                format!("identical to {path}[{j}]; a peer may be listed only once"),
            );
            continue;
        }
        if let Some(Err(reason)) = out
            .iter()
            .find(|(_, other)| other.address == peer.address)
            .map(|(j, other)| {
                rules::one_port_per_address(peer.address, peer.port, &item(path, *j), other.port)
            })
        {
            d.error(&p, entry.line, reason);
            continue;
        }
        out.push((i, peer));
    }
    out.into_iter().map(|(_, p)| p).collect()
}

fn decode_peer(d: &mut Diagnostics, entry: &Node, p: &str, refs: &Refs<'_>) -> Option<Peer> {
    let f = read_map(d, entry, p, PEER_KEYS)?;
    let errors_before = d.errors.len();

    let address = required(d, &f, entry, p, "peer-address").and_then(|(v, vp)| {
        let text = string(d, v, &vp)?;
        parse_ip_field(d, &text, v, &vp)
    });
    let peer_asn = required(d, &f, entry, p, "peer-asn").and_then(|(v, vp)| asn(d, v, &vp));
    let my_asn = required(d, &f, entry, p, "my-asn").and_then(|(v, vp)| asn(d, v, &vp));

    let port = match f.get("peer-port") {
        None => rules::DEFAULT_PORT,
        Some((_, v)) => {
            let vp = child(p, "peer-port");
            match integer(d, v, &vp, 0, 65535, "a TCP port is 1 to 65535")
                .and_then(|n| u16::try_from(n).ok())
            {
                Some(0) => {
                    d.warn(&vp, v.line, "0 means the default port, 179 (as in MetalLB)");
                    rules::DEFAULT_PORT
                }
                Some(n) => n,
                None => rules::DEFAULT_PORT,
            }
        }
    };

    let hold_time = match f.get("hold-time") {
        None => Some(rules::DEFAULT_HOLD_TIME),
        Some((_, v)) => {
            let vp = child(p, "hold-time");
            string(d, v, &vp)
                .and_then(|text| whole_seconds(d, &text, v, &vp))
                .and_then(|secs| check(d, v, &vp, rules::hold_time(secs)))
        }
    };
    let keepalive_time = match f.get("keepalive-time") {
        None => hold_time.map(rules::default_keepalive),
        Some((_, v)) => {
            let vp = child(p, "keepalive-time");
            string(d, v, &vp)
                .and_then(|text| whole_seconds(d, &text, v, &vp))
                .map(Duration::from_secs)
                .and_then(|k| check(d, v, &vp, rules::keepalive(k, hold_time)))
                .map(|(k, warning)| {
                    if let Some(w) = warning {
                        d.warn(&vp, v.line, w);
                    }
                    k
                })
        }
    };

    let router_id = f.get("router-id").and_then(|(_, v)| {
        let vp = child(p, "router-id");
        let text = string(d, v, &vp)?;
        check(d, v, &vp, rules::router_id(&text))
    });
    let source_address = f.get("source-address").and_then(|(_, v)| {
        let vp = child(p, "source-address");
        let text = string(d, v, &vp)?;
        let src = parse_ip_field(d, &text, v, &vp)?;
        if let Some(addr) = address {
            check(d, v, &vp, rules::source_family(src, addr, S))?;
        }
        Some(src)
    });

    let node_selectors = match f.get("node-selectors") {
        None => Vec::new(),
        Some((_, v)) => decode_selectors(d, v, &child(p, "node-selectors")),
    };

    let password = f.get("password").and_then(|(_, v)| {
        let vp = child(p, "password");
        let text = string(d, v, &vp)?;
        check(d, v, &vp, rules::password(&text)).flatten()
    });

    let bfd_profile = decode_bfd_reference(d, &f, p, refs);

    let ebgp_multihop = opt_bool(d, &f, p, "ebgp-multihop").unwrap_or(false);
    if let (Some(pa), Some(ma), Some((k, _))) = (peer_asn, my_asn, f.get("ebgp-multihop"))
        && let Err(reason) = rules::ebgp_multihop(ebgp_multihop, pa, ma, S)
    {
        d.error(&child(p, "ebgp-multihop"), k.line, reason);
    }
    if ebgp_multihop
        && let Some(Some(name)) = &bfd_profile
        && refs
            .bfd_profiles
            .iter()
            .any(|b| b.name == *name && b.echo_mode)
        && let Some((key, (k, _))) = ["bfd-profile", "bfdProfile"]
            .into_iter()
            .find_map(|key| f.get(key).map(|kv| (key, kv)))
    {
        d.warn(
            &child(p, key),
            k.line,
            format!(
                "BFD profile {name:?} sets echo-mode, which has no effect on an ebgp-multihop \
                 peer (the echo function is single-hop only, as in FRR)"
            ),
        );
    }

    let graceful_restart = opt_bool(d, &f, p, "ferrolb-graceful-restart").unwrap_or(false);
    let graceful_restart_time = match f.get("ferrolb-graceful-restart-time") {
        None => Some(rules::DEFAULT_RESTART_TIME),
        Some((_, v)) => {
            let vp = child(p, "ferrolb-graceful-restart-time");
            string(d, v, &vp)
                .and_then(|text| whole_seconds(d, &text, v, &vp))
                .and_then(|secs| check(d, v, &vp, rules::restart_time(secs)))
        }
    };
    if graceful_restart
        && matches!(bfd_profile, Some(None))
        && let Some((k, _)) = f.get("ferrolb-graceful-restart")
    {
        d.warn(
            &child(p, "ferrolb-graceful-restart"),
            k.line,
            format!(
                "graceful restart without a bfd-profile: a crashed or silent node keeps its \
                 routes on a GR-aware router for the hold time plus the restart time ({}s); \
                 add a bfd-profile so a dead node still leaves at once",
                graceful_restart_time
                    .unwrap_or(rules::DEFAULT_RESTART_TIME)
                    .as_secs()
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
        bfd_profile: bfd_profile?,
        ebgp_multihop,
        name: None,
        password_secret: None,
        graceful_restart,
        graceful_restart_time: graceful_restart_time?,
    })
}

/// `bfd-profile` (or MetalLB's example spelling `bfdProfile`). The outer `None` means error.
fn decode_bfd_reference(
    d: &mut Diagnostics,
    f: &Fields<'_>,
    p: &str,
    refs: &Refs<'_>,
) -> Option<Option<String>> {
    let bfd = refs.bfd_profiles;
    let proper = f.get("bfd-profile");
    let misspelt = f.get("bfdProfile");
    let (key, (k, v)) = match (proper, misspelt) {
        (None, None) => return Some(None),
        (Some(kv), None) => ("bfd-profile", kv),
        (None, Some(kv)) => {
            d.warn(
                &child(p, "bfdProfile"),
                kv.0.line,
                "\"bfdProfile\" is accepted as \"bfd-profile\" (MetalLB 0.12 itself rejects this \
                 spelling, used in its example config); write bfd-profile",
            );
            ("bfdProfile", kv)
        }
        (Some(_), Some(kv)) => {
            d.error(
                &child(p, "bfdProfile"),
                kv.0.line,
                "both bfd-profile and its misspelling bfdProfile are given; keep bfd-profile",
            );
            return None;
        }
    };
    let vp = child(p, key);
    let name = string(d, v, &vp)?;
    if name.is_empty() {
        return Some(None);
    }
    if bfd.iter().any(|b| b.name == name) {
        return Some(Some(name));
    }
    if refs.broken.bfd_profiles.contains(&name) {
        // Defined, but invalid: reported at its definition.
        return None;
    }
    let defined: Vec<String> = bfd.iter().map(|b| format!("{:?}", b.name)).collect();
    let hint = if defined.is_empty() {
        "no bfd-profiles are defined".to_string()
    } else {
        format!("defined: {}", defined.join(", "))
    };
    d.error(
        &vp,
        k.line,
        format!("BFD profile {name:?} is not defined in bfd-profiles ({hint})"),
    );
    None
}
