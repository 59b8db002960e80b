//! `address-pools[]`: named sets of addresses, with how each is announced.

use super::Refs;
use super::advertisements::{RawAdvertisement, decode_advertisement};
use super::helpers::{line_of, opt_bool, required_string};
use crate::error::Diagnostics;
use crate::fields::{child, item, list, read_map, string};
use crate::model::{AddressRange, BgpAdvertisement, Pool, Protocol};
use crate::rules;
use crate::yaml::{Kind, Node};

const POOL_KEYS: &[&str] = &[
    "name",
    "protocol",
    "addresses",
    "auto-assign",
    "avoid-buggy-ips",
    "bgp-advertisements",
];

/// One entry of a pool's `addresses`, as the advertisements check it.
pub(super) struct Entry {
    pub range: AddressRange,
    pub text: String,
    pub path: String,
    pub line: u32,
}

pub(super) fn decode_pools(
    d: &mut Diagnostics,
    node: &Node,
    path: &str,
    refs: &Refs<'_>,
) -> Vec<Pool> {
    let mut out: Vec<Pool> = Vec::new();
    let mut names: Vec<(String, String)> = Vec::new(); // (name, path of its name)
    let mut seen = rules::SeenAddresses::default();
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

        let mut addresses: Vec<Entry> = Vec::new();
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
                        match rules::address_entry(&text) {
                            Ok(parsed) => {
                                if let Some(w) = parsed.warning {
                                    d.warn(&ep, a.line, w);
                                }
                                addresses.push(Entry {
                                    range: parsed.range,
                                    text,
                                    path: ep,
                                    line: a.line,
                                });
                            }
                            Err(reason) => d.error(&ep, a.line, reason),
                        }
                    }
                }
            }
        }

        // Overlaps within this pool and with every earlier pool.
        let pool_label = name.clone().unwrap_or_else(|| p.clone());
        for e in &addresses {
            for reason in seen.add(e.range, &e.text, &e.path, &pool_label, |o| {
                format!("pool {o:?}")
            }) {
                d.error(&e.path, e.line, reason);
            }
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
                    let mut raws: Vec<(RawAdvertisement, String)> = Vec::new();
                    for (j, ad) in ads.iter().enumerate() {
                        let ap = item(&bp, j);
                        let Some((a, raw)) = decode_advertisement(d, ad, &ap, &addresses, refs)
                        else {
                            continue;
                        };
                        // MetalLB compares advertisements as written and rejects two equal ones.
                        if let Some((_, first)) = raws.iter().find(|(r, _)| *r == raw) {
                            d.error(
                                &ap,
                                ad.line,
                                format!(
                                    "identical to {first}; an advertisement may be listed only \
                                     once (MetalLB rejects this too)"
                                ),
                            );
                            continue;
                        }
                        raws.push((raw, ap));
                        advertisements.push(a);
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
            addresses: addresses.into_iter().map(|e| e.range).collect(),
            auto_assign,
            avoid_buggy_ips,
            bgp_advertisements: advertisements,
            service_allocation: None,
        });
    }
    out
}
