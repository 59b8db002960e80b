//! `BGPAdvertisement`s (and `L2Advertisement`s) -> the advertisements of the pools they
//! select.
//!
//! An advertisement with neither `ipAddressPools` nor `ipAddressPoolSelectors` selects every
//! pool (MetalLB's rule). Naming a pool that does not exist, or a peer that does not, is a
//! warning (MetalLB ignores it silently; it may be a CR not created yet).

use std::collections::{BTreeMap, BTreeSet};

use ferrolb_config::rules::{self, Spelling};
use ferrolb_config::{BgpAdvertisement, Community, NodeSelector, ObjectRef, Protocol};

use super::diag::{Diag, duplicate, item, object};
use super::pools::PoolDraft;
use super::references::Refs;
use super::selectors::selectors;
use super::{Nodes, name};
use crate::types::{BGPAdvertisement, BGPAdvertisementSpec, L2Advertisement, Selection};

/// What the advertisements may refer to.
pub(crate) struct Targets<'a> {
    pub refs: &'a Refs,
    /// Pools that were invalid: referring to one is not reported again.
    pub broken_pools: &'a BTreeSet<String>,
    /// Every BGPPeer name, valid or not.
    pub peers: &'a BTreeSet<String>,
    pub nodes: Option<&'a Nodes>,
}

/// An advertisement attached to pools, remembered for MetalLB's LOCAL_PREF rule.
struct Attached {
    object: ObjectRef,
    ad: BgpAdvertisement,
    /// Names of the nodes it announces from.
    nodes: BTreeSet<String>,
}

/// Attaches every BGPAdvertisement (sorted by name) to the pools it selects.
pub(crate) fn attach(
    d: &mut Diag,
    t: &Targets<'_>,
    crs: &[&BGPAdvertisement],
    pools: &mut [PoolDraft],
) {
    let index: BTreeMap<String, usize> = pools
        .iter()
        .enumerate()
        .map(|(i, p)| (p.pool.name.clone(), i))
        .collect();
    // For MetalLB's LOCAL_PREF rule, which needs the nodes: every advertisement kept, and per
    // pool the indexes of those attached to it.
    let mut kept: Vec<Attached> = Vec::new();
    let mut attached: Vec<Vec<usize>> = pools.iter().map(|_| Vec::new()).collect();
    for cr in crs {
        let o = object("BGPAdvertisement", name(&cr.metadata));
        let errors_before = d.errors.len();
        let Some(mut ad) = advertisement(d, &o, &cr.spec, t) else {
            continue;
        };
        match weight_annotation(&cr.metadata) {
            Ok(on) => ad.weight_by_endpoints = on,
            Err(why) => {
                d.error(
                    &o,
                    &format!("metadata.annotations[{WEIGHT_ANNOTATION:?}]"),
                    why,
                );
                continue;
            }
        }
        let selected = select_pools(d, &o, &cr.spec.selection, pools, &index, t.broken_pools);
        for &i in &selected {
            aggregation_fits(d, &o, &ad, &pools[i]);
        }
        if d.errors.len() > errors_before {
            continue;
        }
        let Some(nodes) = t.nodes else {
            for &i in &selected {
                pools[i].pool.bgp_advertisements.push(ad.clone());
            }
            continue;
        };
        let nodes: BTreeSet<String> = nodes
            .iter()
            .filter(|(_, labels)| ad.selects_node(labels))
            .map(|(n, _)| n.clone())
            .collect();
        if nodes.is_empty() && !ad.node_selectors.is_empty() {
            d.warn(
                &o,
                "spec.nodeSelectors",
                "select no node: no node announces this advertisement",
            );
        }
        let new = Attached {
            object: o.clone(),
            ad,
            nodes,
        };
        let conflict = selected.iter().find_map(|&i| {
            attached[i]
                .iter()
                .map(|&k| &kept[k])
                .find(|old| local_pref_conflicts(&new, old, &pools[i]))
                .map(|old| (i, old.object.clone(), old.ad.local_pref.unwrap_or(0)))
        });
        if let Some((i, other, other_pref)) = conflict {
            d.error(
                &o,
                "spec.localPref",
                format!(
                    "{} differs from {other}'s localPref {other_pref} for the same routes of \
                     IPAddressPool/{} (same aggregation, peers and nodes); a route has one \
                     LOCAL_PREF (MetalLB rejects this too)",
                    new.ad.local_pref.unwrap_or(0),
                    pools[i].pool.name
                ),
            );
            continue;
        }
        for &i in &selected {
            pools[i].pool.bgp_advertisements.push(new.ad.clone());
            attached[i].push(kept.len());
        }
        kept.push(new);
    }
}

fn advertisement(
    d: &mut Diag,
    o: &ObjectRef,
    s: &BGPAdvertisementSpec,
    t: &Targets<'_>,
) -> Option<BgpAdvertisement> {
    let errors_before = d.errors.len();
    no_duplicates(
        d,
        o,
        "spec.ipAddressPools",
        "pool",
        &s.selection.ip_address_pools,
    );
    no_duplicates(d, o, "spec.peers", "peer", &s.peers);
    let mut ad = BgpAdvertisement::default();
    if let Some(n) = s.aggregation_length {
        ad.aggregation_length = length(d, o, "spec.aggregationLength", n, 32)?;
    }
    if let Some(n) = s.aggregation_length_v6 {
        ad.aggregation_length_v6 = length(d, o, "spec.aggregationLengthV6", n, 128)?;
    }
    ad.local_pref = s.local_pref;
    ad.communities = communities(d, o, &s.communities, t.refs);
    for (i, p) in s.peers.iter().enumerate() {
        if !t.peers.contains(p) {
            d.warn(
                o,
                &item("spec.peers", i),
                format!("BGPPeer {p:?} does not exist: this advertisement goes to no such peer"),
            );
        }
    }
    ad.peers = s.peers.clone();
    ad.node_selectors = selectors(d, o, "spec.nodeSelectors", &s.selection.node_selectors);
    (d.errors.len() == errors_before).then_some(ad)
}

/// ferrolb's opt-in to endpoint-weighted announcements on a BGPAdvertisement CR: an
/// annotation, not a spec field, so the CR stays valid against MetalLB's own CRD schema
/// (which would prune an unknown field without a word).
pub const WEIGHT_ANNOTATION: &str = "ferrolb.io/weight-by-endpoints";

/// The annotation's value: absent or `"false"` off, `"true"` on, anything else an error.
fn weight_annotation(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Result<bool, String> {
    match meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(WEIGHT_ANNOTATION))
        .map(String::as_str)
    {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(format!("{other:?} is not \"true\" or \"false\"")),
    }
}

fn no_duplicates(d: &mut Diag, o: &ObjectRef, path: &str, what: &str, list: &[String]) {
    for (i, v) in list.iter().enumerate() {
        if let Some(first) = list[..i].iter().position(|w| w == v) {
            d.error(o, &item(path, i), duplicate(what, v, &item(path, first)));
        }
    }
}

fn length(d: &mut Diag, o: &ObjectRef, path: &str, n: i32, max: u8) -> Option<u8> {
    match u8::try_from(n) {
        Ok(v) if v <= max => Some(v),
        _ => {
            d.error(o, path, format!("{n} is out of range: must be 0 to {max}"));
            None
        }
    }
}

/// Resolved communities; aliases come from the Community resources.
fn communities(d: &mut Diag, o: &ObjectRef, written: &[String], refs: &Refs) -> Vec<Community> {
    let mut seen: Vec<(Community, String)> = Vec::new();
    for (i, text) in written.iter().enumerate() {
        let p = item("spec.communities", i);
        if let Some(first) = written[..i].iter().position(|w| w == text) {
            d.error(
                o,
                &p,
                duplicate("community", text, &item("spec.communities", first)),
            );
            continue;
        }
        let resolved =
            rules::community_reference(text, &refs.aliases, &refs.broken_aliases, &Spelling::CRD);
        let Some(c) = d.check(o, &p, resolved).flatten() else {
            continue;
        };
        if let Some((_, first)) = seen.iter().find(|(s, _)| *s == c) {
            d.error(o, &p, rules::duplicate_community(c, first));
            continue;
        }
        seen.push((c, p));
    }
    seen.into_iter().map(|(c, _)| c).collect()
}

/// The pools an advertisement selects, by name and by label; every pool when it names none
/// and selects none.
pub(crate) fn select_pools(
    d: &mut Diag,
    o: &ObjectRef,
    sel: &Selection,
    pools: &[PoolDraft],
    index: &BTreeMap<String, usize>,
    broken: &BTreeSet<String>,
) -> Vec<usize> {
    let (names, selector_list) = (&sel.ip_address_pools, &sel.ip_address_pool_selectors);
    if names.is_empty() && selector_list.is_empty() {
        return (0..pools.len()).collect();
    }
    let mut out = BTreeSet::new();
    for (i, n) in names.iter().enumerate() {
        match index.get(n) {
            Some(&p) => {
                out.insert(p);
            }
            None if broken.contains(n) => {}
            None => d.warn(
                o,
                &item("spec.ipAddressPools", i),
                format!("IPAddressPool {n:?} does not exist: nothing of it is advertised"),
            ),
        }
    }
    let sels: Vec<NodeSelector> = selectors(d, o, "spec.ipAddressPoolSelectors", selector_list);
    if !sels.is_empty() {
        let matching: Vec<usize> = pools
            .iter()
            .enumerate()
            .filter(|(_, p)| ferrolb_config::any_matches(&sels, &p.labels))
            .map(|(i, _)| i)
            .collect();
        if matching.is_empty() {
            d.warn(o, "spec.ipAddressPoolSelectors", "select no IPAddressPool");
        }
        out.extend(matching);
    }
    out.into_iter().collect()
}

/// The aggregation lengths against the pool's entries of each family.
fn aggregation_fits(d: &mut Diag, o: &ObjectRef, ad: &BgpAdvertisement, pool: &PoolDraft) {
    for (path, len, v4) in [
        ("spec.aggregationLength", ad.aggregation_length, true),
        ("spec.aggregationLengthV6", ad.aggregation_length_v6, false),
    ] {
        // Fast path (every advertisement meets every pool it selects): nothing fails.
        let fails = pool
            .entries
            .iter()
            .zip(&pool.shortest)
            .any(|((r, ..), shortest)| r.is_ipv4() == v4 && len < *shortest);
        if !fails {
            continue;
        }
        let paths: Vec<String> = pool
            .entries
            .iter()
            .map(|(_, _, p)| format!("{} {p}", pool.object))
            .collect();
        let entries = pool
            .entries
            .iter()
            .zip(&paths)
            .map(|((r, text, _), p)| (r, text.as_str(), p.as_str()));
        for reason in rules::aggregation(len, v4, entries) {
            d.error(o, path, reason);
        }
    }
}

/// MetalLB's rule (`validateBGPAdvPerPool`): two advertisements of one pool with different
/// LOCAL_PREFs must not produce the same route towards the same peer from the same node.
/// They do not when their aggregation lengths differ (for the families the pool has), when
/// both name peers and share none, or when no node announces both. The node test needs
/// the nodes; without them (as MetalLB with an empty node list) nothing conflicts.
fn local_pref_conflicts(new: &Attached, old: &Attached, pool: &PoolDraft) -> bool {
    let (a, b) = (&new.ad, &old.ad);
    if a.local_pref.unwrap_or(0) == b.local_pref.unwrap_or(0) {
        return false;
    }
    let has_v4 = pool.pool.addresses.iter().any(|r| r.is_ipv4());
    let has_v6 = pool.pool.addresses.iter().any(|r| !r.is_ipv4());
    let v4_differs = a.aggregation_length != b.aggregation_length;
    let v6_differs = a.aggregation_length_v6 != b.aggregation_length_v6;
    // MetalLB's isAggrLengthDifferent: different for every family the pool has.
    let aggregation_differs = match (has_v4, has_v6) {
        (false, false) => true,
        (true, false) => v4_differs,
        (false, true) => v6_differs,
        (true, true) => v4_differs && v6_differs,
    };
    if aggregation_differs {
        return false;
    }
    if !a.peers.is_empty() && !b.peers.is_empty() && !a.peers.iter().any(|p| b.peers.contains(p)) {
        return false;
    }
    !new.nodes.is_disjoint(&old.nodes)
}

/// L2Advertisements: each reported as unsupported; the pools that only they select become
/// `layer2` pools (assigned, never announced), the others without any advertisement are
/// reported.
pub(crate) fn layer2_and_unadvertised(
    d: &mut Diag,
    crs: &[&L2Advertisement],
    pools: &mut [PoolDraft],
    broken: &BTreeSet<String>,
) {
    let index: BTreeMap<String, usize> = pools
        .iter()
        .enumerate()
        .map(|(i, p)| (p.pool.name.clone(), i))
        .collect();
    let mut layer2 = BTreeSet::new();
    for cr in crs {
        let o = object("L2Advertisement", name(&cr.metadata));
        d.warn(
            &o,
            "",
            "not supported: ferrolb announces over BGP only; this advertisement is ignored",
        );
        let s = &cr.spec;
        layer2.extend(select_pools(d, &o, &s.selection, pools, &index, broken));
    }
    for (i, p) in pools.iter_mut().enumerate() {
        if !p.pool.bgp_advertisements.is_empty() {
            continue;
        }
        if layer2.contains(&i) {
            p.pool.protocol = Protocol::Layer2;
            d.warn(
                &p.object,
                "",
                "only L2Advertisements select this pool: its addresses are assigned to \
                 Services but not announced",
            );
        } else {
            d.warn(
                &p.object,
                "",
                "no BGPAdvertisement selects this pool: its addresses are assigned to \
                 Services but not announced",
            );
        }
    }
}
