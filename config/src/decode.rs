//! The schema: walks the located tree of one config document, fills in MetalLB 0.12's
//! defaults, checks every rule, and records every problem (it does not stop at the first).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::address::{parse_entry, shortest_prefix};
use crate::community::parse_community;
use crate::duration::parse_go_duration;
use crate::error::Diagnostics;
use crate::fields::{Fields, boolean, child, integer, item, list, read_map, string};
use crate::model::{
    AddressRange, BfdProfile, BgpAdvertisement, Community, Config, Peer, Pool, Protocol,
};
use crate::selector::{
    LabelRequirement, NodeSelector, SelectorOperator, validate_key, validate_value,
};
use crate::yaml::{Kind, Node};

const TOP_KEYS: &[&str] = &["peers", "bgp-communities", "address-pools", "bfd-profiles"];
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
];
const SELECTOR_KEYS: &[&str] = &["match-labels", "match-expressions"];
const EXPRESSION_KEYS: &[&str] = &["key", "operator", "values"];
const POOL_KEYS: &[&str] = &[
    "name",
    "protocol",
    "addresses",
    "auto-assign",
    "avoid-buggy-ips",
    "bgp-advertisements",
];
const ADVERTISEMENT_KEYS: &[&str] = &[
    "aggregation-length",
    "aggregation-length-v6",
    "localpref",
    "communities",
];
const BFD_KEYS: &[&str] = &[
    "name",
    "receive-interval",
    "transmit-interval",
    "detect-multiplier",
    "echo-interval",
    "echo-mode",
    "passive-mode",
    "minimum-ttl",
];

const DEFAULT_PORT: u16 = 179;
const DEFAULT_HOLD_TIME: Duration = Duration::from_secs(90);
/// Largest TCP MD5 key Linux accepts (TCP_MD5SIG_MAXKEYLEN).
const MAX_PASSWORD_BYTES: usize = 80;
const ASN_RANGE: &str = "an AS number is 1 to 4294967295";

/// Decodes one config document (already parsed). `None` document = empty config.
pub(crate) fn decode_document(d: &mut Diagnostics, doc: Option<&Node>) -> Config {
    let mut config = Config::default();
    let Some(doc) = doc else {
        return config;
    };
    if matches!(doc.kind, Kind::Null) {
        return config;
    }
    let root = crate::ROOT_PATH;
    let Kind::Map(_) = doc.kind else {
        d.error(
            root,
            doc.line,
            format!(
                "expected a mapping with keys {}, found {}",
                TOP_KEYS.join(", "),
                doc.describe()
            ),
        );
        return config;
    };
    let Some(top) = read_map(d, doc, root, TOP_KEYS) else {
        return config;
    };

    // Order matters only for cross-references: aliases and profiles first.
    // Names defined with an invalid value: already reported where they are defined, so
    // references to them are not reported a second time as "not defined".
    let mut broken = Broken::default();
    if let Some((_, v)) = top.get("bgp-communities") {
        config.communities = decode_communities(d, v, "bgp-communities", &mut broken);
    }
    if let Some((_, v)) = top.get("bfd-profiles") {
        config.bfd_profiles = decode_bfd_profiles(d, v, "bfd-profiles", &mut broken);
    }
    let refs = Refs {
        communities: &config.communities,
        bfd_profiles: &config.bfd_profiles,
        broken: &broken,
    };
    let peers = top
        .get("peers")
        .map(|(_, v)| decode_peers(d, v, "peers", &refs))
        .unwrap_or_default();
    let pools = top
        .get("address-pools")
        .map(|(_, v)| decode_pools(d, v, "address-pools", &refs))
        .unwrap_or_default();
    config.peers = peers;
    config.pools = pools;
    config
}

/// Names whose definition was invalid.
#[derive(Default)]
struct Broken {
    aliases: BTreeSet<String>,
    bfd_profiles: BTreeSet<String>,
}

/// What peers and pools may refer to.
struct Refs<'a> {
    communities: &'a BTreeMap<String, Community>,
    bfd_profiles: &'a [BfdProfile],
    broken: &'a Broken,
}

// ---------------------------------------------------------------------------------------
// bgp-communities

fn decode_communities(
    d: &mut Diagnostics,
    node: &Node,
    path: &str,
    broken: &mut Broken,
) -> BTreeMap<String, Community> {
    let mut out = BTreeMap::new();
    let Kind::Map(entries) = &node.kind else {
        d.error(
            path,
            node.line,
            format!(
                "expected a mapping of alias: \"<0-65535>:<0-65535>\", found {}",
                node.describe()
            ),
        );
        return out;
    };
    for (k, v) in entries {
        let Some(alias) = k.scalar_text() else {
            d.error(
                path,
                k.line,
                format!("aliases must be names, found {}", k.describe()),
            );
            continue;
        };
        let p = child(path, &alias);
        if out.contains_key(&alias) || broken.aliases.contains(&alias) {
            d.error(&p, k.line, "alias is defined more than once");
            continue;
        }
        let Some(text) = string(d, v, &p) else {
            broken.aliases.insert(alias);
            continue;
        };
        match parse_community(&text) {
            Ok(c) => {
                out.insert(alias, c);
            }
            Err(reason) => {
                d.error(
                    &p,
                    v.line,
                    format!("{text:?} is not a valid community: {reason}"),
                );
                broken.aliases.insert(alias);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// bfd-profiles

fn decode_bfd_profiles(
    d: &mut Diagnostics,
    node: &Node,
    path: &str,
    broken: &mut Broken,
) -> Vec<BfdProfile> {
    let mut out: Vec<BfdProfile> = Vec::new();
    let mut declared: Vec<(usize, String)> = Vec::new();
    let Some(items) = list(d, node, path) else {
        return out;
    };
    for (i, entry) in items.iter().enumerate() {
        let p = item(path, i);
        let Some(f) = read_map(d, entry, &p, BFD_KEYS) else {
            continue;
        };
        let errors_before = d.errors.len();
        let name = required_string(d, &f, entry, &p, "name");
        let ms = |d: &mut Diagnostics, key: &str, default: u64| -> Duration {
            f.get(key)
                .and_then(|(_, v)| {
                    integer(
                        d,
                        v,
                        &child(&p, key),
                        10,
                        60000,
                        "must be 10 to 60000 (milliseconds)",
                    )
                })
                .and_then(|v| u64::try_from(v).ok())
                .map(Duration::from_millis)
                .unwrap_or(Duration::from_millis(default))
        };
        let receive_interval = ms(d, "receive-interval", 300);
        let transmit_interval = ms(d, "transmit-interval", 300);
        let echo_interval = ms(d, "echo-interval", 50);
        let detect_multiplier = f
            .get("detect-multiplier")
            .and_then(|(_, v)| {
                integer(
                    d,
                    v,
                    &child(&p, "detect-multiplier"),
                    2,
                    255,
                    "must be 2 to 255",
                )
            })
            .and_then(|v| u8::try_from(v).ok())
            .unwrap_or(3);
        let minimum_ttl = f
            .get("minimum-ttl")
            .and_then(|(_, v)| integer(d, v, &child(&p, "minimum-ttl"), 1, 254, "must be 1 to 254"))
            .and_then(|v| u8::try_from(v).ok())
            .unwrap_or(254);
        let echo_mode = opt_bool(d, &f, &p, "echo-mode").unwrap_or(false);
        let passive_mode = opt_bool(d, &f, &p, "passive-mode").unwrap_or(false);
        let Some(name) = name else { continue };
        if name.is_empty() {
            d.error(
                &child(&p, "name"),
                line_of(&f, "name", entry),
                "must not be empty",
            );
            continue;
        }
        if let Some((j, _)) = declared.iter().find(|(_, n)| *n == name) {
            d.error(
                &child(&p, "name"),
                line_of(&f, "name", entry),
                format!("duplicate BFD profile name {name:?} (also {path}[{j}])"),
            );
            continue;
        }
        declared.push((i, name.clone()));
        if d.errors.len() > errors_before {
            broken.bfd_profiles.insert(name);
            continue;
        }
        out.push(BfdProfile {
            name,
            receive_interval,
            transmit_interval,
            detect_multiplier,
            echo_interval,
            echo_mode,
            passive_mode,
            minimum_ttl,
        });
    }
    out
}

// ---------------------------------------------------------------------------------------
// peers

fn decode_peers(d: &mut Diagnostics, node: &Node, path: &str, refs: &Refs<'_>) -> Vec<Peer> {
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
        None => DEFAULT_PORT,
        Some((_, v)) => {
            let vp = child(p, "peer-port");
            match integer(d, v, &vp, 0, 65535, "a TCP port is 1 to 65535")
                .and_then(|n| u16::try_from(n).ok())
            {
                Some(0) => {
                    d.warn(&vp, v.line, "0 means the default port, 179 (as in MetalLB)");
                    DEFAULT_PORT
                }
                Some(n) => n,
                None => DEFAULT_PORT,
            }
        }
    };

    let hold_time = match f.get("hold-time") {
        None => Some(DEFAULT_HOLD_TIME),
        Some((_, v)) => {
            let vp = child(p, "hold-time");
            string(d, v, &vp)
                .and_then(|text| whole_seconds(d, &text, v, &vp))
                .and_then(|secs| {
                    if secs == 1 || secs == 2 {
                        d.error(
                            &vp,
                            v.line,
                            format!("{secs}s is not allowed: must be 0 or at least 3s"),
                        );
                        None
                    } else if secs > 65535 {
                        d.error(
                            &vp,
                            v.line,
                            format!("{secs}s is more than 65535s, the largest BGP hold time"),
                        );
                        None
                    } else {
                        Some(Duration::from_secs(secs))
                    }
                })
        }
    };
    let keepalive_time = match f.get("keepalive-time") {
        None => hold_time.map(|h| Duration::from_secs(h.as_secs() / 3)),
        Some((_, v)) => {
            let vp = child(p, "keepalive-time");
            string(d, v, &vp)
                .and_then(|text| whole_seconds(d, &text, v, &vp))
                .map(Duration::from_secs)
                .and_then(|k| match hold_time {
                    Some(h) if k.is_zero() && !h.is_zero() => {
                        d.warn(
                            &vp,
                            v.line,
                            format!(
                                "0s sends no KEEPALIVE messages while the hold time is {}s; the \
                                 peer will drop the session unless it sends updates",
                                h.as_secs()
                            ),
                        );
                        Some(k)
                    }
                    Some(h) if k > h => {
                        d.error(
                            &vp,
                            v.line,
                            format!(
                                "{}s is longer than the hold time ({}s)",
                                k.as_secs(),
                                h.as_secs()
                            ),
                        );
                        None
                    }
                    _ => Some(k),
                })
        }
    };

    let router_id = f.get("router-id").and_then(|(_, v)| {
        let vp = child(p, "router-id");
        let text = string(d, v, &vp)?;
        match text.trim().parse::<Ipv4Addr>() {
            Ok(id) => Some(id),
            Err(_) => {
                let why = if text.trim().parse::<IpAddr>().is_ok() {
                    "is not an IPv4 address (a BGP router ID is 32 bits)"
                } else {
                    "is not an IPv4 address"
                };
                d.error(&vp, v.line, format!("{text:?} {why}"));
                None
            }
        }
    });
    let source_address = f.get("source-address").and_then(|(_, v)| {
        let vp = child(p, "source-address");
        let text = string(d, v, &vp)?;
        let src = parse_ip_field(d, &text, v, &vp)?;
        if let Some(addr) = address
            && addr.is_ipv4() != src.is_ipv4()
        {
            d.error(
                &vp,
                v.line,
                format!("{src} and peer-address {addr} are of different address families"),
            );
            return None;
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
        if text.contains(['\n', '\r']) {
            d.error(&vp, v.line, "must not contain line breaks");
            return None;
        }
        if text.len() > MAX_PASSWORD_BYTES {
            d.error(
                &vp,
                v.line,
                format!(
                    "is {} bytes long; a TCP MD5 key is at most {MAX_PASSWORD_BYTES} bytes",
                    text.len()
                ),
            );
            return None;
        }
        (!text.is_empty()).then_some(text)
    });

    let bfd_profile = decode_bfd_reference(d, &f, p, refs);

    let ebgp_multihop = opt_bool(d, &f, p, "ebgp-multihop").unwrap_or(false);
    if ebgp_multihop
        && let (Some(pa), Some(ma), Some((k, _))) = (peer_asn, my_asn, f.get("ebgp-multihop"))
        && pa == ma
    {
        d.error(
            &child(p, "ebgp-multihop"),
            k.line,
            format!("ebgp-multihop is set on an iBGP peer (peer-asn {pa} equals my-asn {ma})"),
        );
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

fn decode_selectors(d: &mut Diagnostics, node: &Node, path: &str) -> Vec<NodeSelector> {
    let mut out = Vec::new();
    let Some(items) = list(d, node, path) else {
        return out;
    };
    for (i, entry) in items.iter().enumerate() {
        let p = item(path, i);
        let Some(f) = read_map(d, entry, &p, SELECTOR_KEYS) else {
            continue;
        };
        let mut sel = NodeSelector::default();
        if let Some((_, v)) = f.get("match-labels") {
            let lp = child(&p, "match-labels");
            match &v.kind {
                Kind::Map(entries) => {
                    for (k, val) in entries {
                        let Some(key) = k.scalar_text() else {
                            d.error(
                                &lp,
                                k.line,
                                format!("label keys must be strings, found {}", k.describe()),
                            );
                            continue;
                        };
                        let kp = child(&lp, &key);
                        if let Err(reason) = validate_key(&key) {
                            d.error(&kp, k.line, reason);
                            continue;
                        }
                        if sel.match_labels.contains_key(&key) {
                            d.error(&kp, k.line, "key is given more than once");
                            continue;
                        }
                        let value = match val.kind {
                            Kind::Null => String::new(),
                            _ => match string(d, val, &kp) {
                                Some(s) => s,
                                None => continue,
                            },
                        };
                        if let Err(reason) = validate_value(&value) {
                            d.error(&kp, val.line, reason);
                            continue;
                        }
                        sel.match_labels.insert(key, value);
                    }
                }
                _ => d.error(
                    &lp,
                    v.line,
                    format!("expected a mapping of label: value, found {}", v.describe()),
                ),
            }
        }
        if let Some((_, v)) = f.get("match-expressions") {
            let ep = child(&p, "match-expressions");
            if let Some(exprs) = list(d, v, &ep) {
                for (j, e) in exprs.iter().enumerate() {
                    if let Some(r) = decode_requirement(d, e, &item(&ep, j)) {
                        sel.match_expressions.push(r);
                    }
                }
            }
        }
        out.push(sel);
    }
    out
}

fn decode_requirement(d: &mut Diagnostics, node: &Node, p: &str) -> Option<LabelRequirement> {
    let f = read_map(d, node, p, EXPRESSION_KEYS)?;
    let key = required_string(d, &f, node, p, "key").and_then(|k| match validate_key(&k) {
        Ok(()) => Some(k),
        Err(reason) => {
            d.error(&child(p, "key"), line_of(&f, "key", node), reason);
            None
        }
    });
    let operator = required_string(d, &f, node, p, "operator").and_then(|op| {
        match SelectorOperator::parse(&op) {
            Some(o) => Some(o),
            None => {
                let hint = SelectorOperator::suggest(&op)
                    .map(|s| format!("; did you mean \"{s}\"?"))
                    .unwrap_or_default();
                d.error(
                    &child(p, "operator"),
                    line_of(&f, "operator", node),
                    format!(
                        "{op:?} is not a valid operator (In, NotIn, Exists, DoesNotExist){hint}"
                    ),
                );
                None
            }
        }
    });
    let mut values = Vec::new();
    let mut values_ok = true;
    if let Some((_, v)) = f.get("values") {
        let vp = child(p, "values");
        match list(d, v, &vp) {
            Some(items) => {
                for (i, it) in items.iter().enumerate() {
                    let ip = item(&vp, i);
                    match string(d, it, &ip) {
                        Some(s) => match validate_value(&s) {
                            Ok(()) => values.push(s),
                            Err(reason) => {
                                d.error(&ip, it.line, reason);
                                values_ok = false;
                            }
                        },
                        None => values_ok = false,
                    }
                }
            }
            None => values_ok = false,
        }
    }
    let operator = operator?;
    let values_line = f
        .get_even_null("values")
        .map(|(k, _)| k.line)
        .unwrap_or(node.line);
    match operator {
        SelectorOperator::In | SelectorOperator::NotIn if values.is_empty() && values_ok => {
            d.error(
                &child(p, "values"),
                values_line,
                format!("operator {operator} needs at least one value"),
            );
            return None;
        }
        SelectorOperator::Exists | SelectorOperator::DoesNotExist if !values.is_empty() => {
            d.error(
                &child(p, "values"),
                values_line,
                format!("operator {operator} takes no values"),
            );
            return None;
        }
        _ => {}
    }
    if !values_ok {
        return None;
    }
    Some(LabelRequirement {
        key: key?,
        operator,
        values,
    })
}

// ---------------------------------------------------------------------------------------
// address-pools

/// One address entry that parsed, remembered for the overlap check.
struct SeenAddress {
    path: String,
    text: String,
    pool: String,
    range: AddressRange,
}

fn decode_pools(d: &mut Diagnostics, node: &Node, path: &str, refs: &Refs<'_>) -> Vec<Pool> {
    let mut out: Vec<Pool> = Vec::new();
    let mut names: Vec<(String, String)> = Vec::new(); // (name, path of its name)
    let mut seen: Vec<SeenAddress> = Vec::new();
    let Some(items) = list(d, node, path) else {
        return out;
    };
    for (i, entry) in items.iter().enumerate() {
        let p = item(path, i);
        let Some(f) = read_map(d, entry, &p, POOL_KEYS) else {
            continue;
        };
        let errors_before = d.errors.len();

        let name = required_string(d, &f, entry, &p, "name").and_then(|n| {
            let np = child(&p, "name");
            let line = line_of(&f, "name", entry);
            if n.is_empty() {
                d.error(&np, line, "must not be empty");
                return None;
            }
            if let Some((_, other)) = names.iter().find(|(seen, _)| *seen == n) {
                d.error(
                    &np,
                    line,
                    format!("duplicate pool name {n:?} (also {other})"),
                );
                return None;
            }
            names.push((n.clone(), np));
            Some(n)
        });

        let protocol = match f.get("protocol") {
            None => {
                d.error(
                    &p,
                    entry.line,
                    "missing required key \"protocol\" (bgp or layer2)",
                );
                None
            }
            Some((_, v)) => {
                let pp = child(&p, "protocol");
                string(d, v, &pp).and_then(|t| match t.as_str() {
                    "bgp" => Some(Protocol::Bgp),
                    "layer2" => Some(Protocol::Layer2),
                    other => {
                        d.error(
                            &pp,
                            v.line,
                            format!("unknown protocol {other:?} (bgp or layer2)"),
                        );
                        None
                    }
                })
            }
        };

        let mut addresses: Vec<(AddressRange, String, String, u32)> = Vec::new(); // range, text, path, line
        match f.get("addresses") {
            None => d.error(&p, entry.line, "missing required key \"addresses\""),
            Some((k, v)) => {
                let ap = child(&p, "addresses");
                if let Some(list_items) = list(d, v, &ap) {
                    if list_items.is_empty() {
                        d.error(&ap, k.line, "a pool needs at least one address range");
                    }
                    for (j, a) in list_items.iter().enumerate() {
                        let ep = item(&ap, j);
                        let Some(text) = string(d, a, &ep) else {
                            continue;
                        };
                        match parse_entry(&text) {
                            Ok(parsed) => {
                                if let Some(w) = parsed.warning {
                                    d.warn(&ep, a.line, w);
                                }
                                addresses.push((parsed.range, text, ep, a.line));
                            }
                            Err(reason) => d.error(
                                &ep,
                                a.line,
                                format!("{text:?} is not a valid CIDR or range: {reason}"),
                            ),
                        }
                    }
                }
            }
        }

        // Overlaps within this pool and with every earlier pool.
        let pool_label = name.clone().unwrap_or_else(|| p.clone());
        for (range, text, ep, line) in &addresses {
            for other in &seen {
                if range.overlaps(&other.range) {
                    let whose = if other.pool == pool_label {
                        "of the same pool".to_string()
                    } else {
                        format!("of pool {:?}", other.pool)
                    };
                    d.error(
                        ep,
                        *line,
                        format!(
                            "{text:?} overlaps {:?} ({}, {whose})",
                            other.text, other.path
                        ),
                    );
                }
            }
            seen.push(SeenAddress {
                path: ep.clone(),
                text: text.clone(),
                pool: pool_label.clone(),
                range: *range,
            });
        }

        let auto_assign = opt_bool(d, &f, &p, "auto-assign").unwrap_or(true);
        let avoid_buggy_ips = opt_bool(d, &f, &p, "avoid-buggy-ips").unwrap_or(false);

        let mut advertisements = Vec::new();
        match (protocol, f.get("bgp-advertisements")) {
            (Some(Protocol::Layer2), Some((k, v))) => {
                if !matches!(&v.kind, Kind::Seq(items) if items.is_empty()) {
                    d.error(
                        &child(&p, "bgp-advertisements"),
                        k.line,
                        "a layer2 pool cannot have bgp-advertisements",
                    );
                }
            }
            (Some(Protocol::Layer2), None) => {}
            (_, Some((_, v))) => {
                let bp = child(&p, "bgp-advertisements");
                if let Some(ads) = list(d, v, &bp) {
                    for (j, ad) in ads.iter().enumerate() {
                        if let Some(a) =
                            decode_advertisement(d, ad, &item(&bp, j), &addresses, refs)
                        {
                            advertisements.push(a);
                        }
                    }
                }
            }
            (_, None) => {}
        }
        if protocol == Some(Protocol::Bgp) && advertisements.is_empty() {
            advertisements.push(BgpAdvertisement::default());
        }

        if d.errors.len() > errors_before {
            continue;
        }
        let (Some(name), Some(protocol)) = (name, protocol) else {
            continue;
        };
        out.push(Pool {
            name,
            protocol,
            addresses: addresses.into_iter().map(|(r, ..)| r).collect(),
            auto_assign,
            avoid_buggy_ips,
            bgp_advertisements: advertisements,
        });
    }
    out
}

fn decode_advertisement(
    d: &mut Diagnostics,
    node: &Node,
    p: &str,
    addresses: &[(AddressRange, String, String, u32)],
    refs: &Refs<'_>,
) -> Option<BgpAdvertisement> {
    let communities = refs.communities;
    let f = read_map(d, node, p, ADVERTISEMENT_KEYS)?;
    let errors_before = d.errors.len();
    let mut ad = BgpAdvertisement::default();

    for (key, v4, max) in [
        ("aggregation-length", true, 32u8),
        ("aggregation-length-v6", false, 128u8),
    ] {
        let Some((_, v)) = f.get(key) else { continue };
        let kp = child(p, key);
        let hint = format!("must be 0 to {max}");
        let Some(len) =
            integer(d, v, &kp, 0, i128::from(max), &hint).and_then(|n| u8::try_from(n).ok())
        else {
            continue;
        };
        for (range, text, ep, _) in addresses.iter().filter(|(r, ..)| r.is_ipv4() == v4) {
            let shortest = shortest_prefix(range);
            if len < shortest {
                let what = if range.is_cidr() {
                    "the prefix"
                } else {
                    "the widest CIDR block"
                };
                d.error(
                    &kp,
                    v.line,
                    format!(
                        "{len} is shorter than /{shortest}, {what} of {ep} ({text:?}); \
                         announcing a /{len} would cover addresses outside the pool"
                    ),
                );
            }
        }
        if v4 {
            ad.aggregation_length = len;
        } else {
            ad.aggregation_length_v6 = len;
        }
    }

    if let Some((_, v)) = f.get("localpref") {
        ad.local_pref = integer(
            d,
            v,
            &child(p, "localpref"),
            0,
            i128::from(u32::MAX),
            "must be 0 to 4294967295",
        )
        .and_then(|n| u32::try_from(n).ok());
    }

    if let Some((_, v)) = f.get("communities") {
        let cp = child(p, "communities");
        if let Some(items) = list(d, v, &cp) {
            let mut seen: Vec<(Community, String)> = Vec::new();
            for (i, it) in items.iter().enumerate() {
                let ip = item(&cp, i);
                let Some(text) = string(d, it, &ip) else {
                    continue;
                };
                let resolved = match communities.get(&text) {
                    Some(c) => Some(*c),
                    // Defined, but invalid: reported at its definition.
                    None if refs.broken.aliases.contains(&text) => None,
                    None if !text.contains(':') => {
                        let defined: Vec<String> =
                            communities.keys().map(|k| format!("{k:?}")).collect();
                        let hint = if defined.is_empty() {
                            "bgp-communities defines no aliases".to_string()
                        } else {
                            format!("bgp-communities defines {}", defined.join(", "))
                        };
                        d.error(
                            &ip,
                            it.line,
                            format!("{text:?} is not a defined community alias ({hint})"),
                        );
                        None
                    }
                    None => match parse_community(&text) {
                        Ok(c) => Some(c),
                        Err(reason) => {
                            d.error(
                                &ip,
                                it.line,
                                format!("{text:?} is not a valid community: {reason}"),
                            );
                            None
                        }
                    },
                };
                let Some(c) = resolved else { continue };
                if let Some((_, first)) = seen.iter().find(|(s, _)| *s == c) {
                    d.error(
                        &ip,
                        it.line,
                        format!("duplicate community {c} (also {first})"),
                    );
                    continue;
                }
                seen.push((c, ip));
            }
            ad.communities = seen.into_iter().map(|(c, _)| c).collect();
        }
    }

    (d.errors.len() == errors_before).then_some(ad)
}

// ---------------------------------------------------------------------------------------
// shared helpers

/// The value of a required key with its path; records "missing" on the entry otherwise.
fn required<'a>(
    d: &mut Diagnostics,
    f: &Fields<'a>,
    entry: &Node,
    p: &str,
    key: &str,
) -> Option<(&'a Node, String)> {
    match f.get(key) {
        Some((_, v)) => Some((v, child(p, key))),
        None => {
            if let Some((k, _)) = f.get_even_null(key) {
                d.error(&child(p, key), k.line, "required value is empty");
            } else {
                d.error(p, entry.line, format!("missing required key {key:?}"));
            }
            None
        }
    }
}

fn required_string(
    d: &mut Diagnostics,
    f: &Fields<'_>,
    entry: &Node,
    p: &str,
    key: &str,
) -> Option<String> {
    let (v, vp) = required(d, f, entry, p, key)?;
    string(d, v, &vp)
}

fn opt_bool(d: &mut Diagnostics, f: &Fields<'_>, p: &str, key: &str) -> Option<bool> {
    let (_, v) = f.get(key)?;
    boolean(d, v, &child(p, key))
}

/// Line of a key's value, or of the entry when absent.
fn line_of(f: &Fields<'_>, key: &str, entry: &Node) -> u32 {
    f.get_even_null(key)
        .map(|(_, v)| v.line)
        .unwrap_or(entry.line)
}

fn asn(d: &mut Diagnostics, v: &Node, vp: &str) -> Option<u32> {
    let n = integer(d, v, vp, 0, i128::from(u32::MAX), ASN_RANGE)?;
    if n == 0 {
        d.error(vp, v.line, format!("must not be 0 ({ASN_RANGE})"));
        return None;
    }
    u32::try_from(n).ok()
}

fn parse_ip_field(d: &mut Diagnostics, text: &str, v: &Node, vp: &str) -> Option<IpAddr> {
    match text.trim().parse::<IpAddr>() {
        Ok(ip) => Some(ip),
        Err(_) => {
            d.error(vp, v.line, format!("{text:?} is not an IP address"));
            None
        }
    }
}

/// A Go duration that must be a non-negative whole number of seconds.
fn whole_seconds(d: &mut Diagnostics, text: &str, v: &Node, vp: &str) -> Option<u64> {
    let nanos = match parse_go_duration(text.trim()) {
        Ok(n) => n,
        Err(reason) => {
            let hint = if reason.starts_with("missing unit") {
                " (e.g. \"90s\")"
            } else {
                ""
            };
            d.error(vp, v.line, format!("{reason}{hint}"));
            return None;
        }
    };
    if nanos < 0 {
        d.error(vp, v.line, format!("{text:?} is negative"));
        return None;
    }
    if nanos % 1_000_000_000 != 0 {
        d.error(
            vp,
            v.line,
            format!("{text:?} is not a whole number of seconds"),
        );
        return None;
    }
    u64::try_from(nanos / 1_000_000_000).ok()
}
