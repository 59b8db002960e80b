//! `IPAddressPool` -> [`Pool`] (its advertisements are attached later).

use std::collections::BTreeSet;

use ferrolb_config::rules;
use ferrolb_config::{AddressRange, ObjectRef, Pool, Protocol, ServiceAllocation};

use super::diag::{Diag, duplicate, item, object};
use super::name;
use super::selectors::selectors;
use crate::types::IPAddressPool;

/// A pool being built, with what the advertisements check against.
pub(crate) struct PoolDraft {
    pub object: ObjectRef,
    pub pool: Pool,
    /// Every address entry: range, text as written, path (`spec.addresses[0]`).
    pub entries: Vec<(AddressRange, String, String)>,
    /// `metadata.labels`, for `ipAddressPoolSelectors`.
    pub labels: std::collections::BTreeMap<String, String>,
    /// The shortest prefix of each entry (`rules::shortest_prefix`), for the aggregation check.
    pub shortest: Vec<u8>,
}

/// Every IPAddressPool (sorted by name); overlaps are checked across all of them. Also
/// returns the names of the pools that were invalid (reported here).
pub(crate) fn pools(d: &mut Diag, crs: &[&IPAddressPool]) -> (Vec<PoolDraft>, BTreeSet<String>) {
    let mut out = Vec::new();
    let mut broken = BTreeSet::new();
    let mut seen = rules::SeenAddresses::default();
    for cr in crs {
        let pool_name = name(&cr.metadata).to_string();
        let o = object("IPAddressPool", &pool_name);
        let errors_before = d.errors.len();
        let spec = &cr.spec;
        if spec.addresses.is_empty() {
            d.error(
                &o,
                "spec.addresses",
                "a pool needs at least one address range",
            );
        }
        let mut entries = Vec::new();
        for (i, text) in spec.addresses.iter().enumerate() {
            let p = item("spec.addresses", i);
            let Some(parsed) = d.check(&o, &p, rules::address_entry(text)) else {
                continue;
            };
            if let Some(w) = parsed.warning {
                d.warn(&o, &p, w);
            }
            let others = |o: &str| format!("IPAddressPool/{o}");
            for reason in seen.add(parsed.range, text, &p, &pool_name, others) {
                d.error(&o, &p, reason);
            }
            entries.push((parsed.range, text.clone(), p));
        }
        let service_allocation = spec
            .service_allocation
            .as_ref()
            .map(|a| service_allocation(d, &o, a));
        if d.errors.len() > errors_before {
            broken.insert(pool_name);
            continue;
        }
        let shortest = entries
            .iter()
            .map(|(r, ..)| rules::shortest_prefix(r))
            .collect();
        out.push(PoolDraft {
            object: o,
            shortest,
            pool: Pool {
                name: pool_name,
                // Until an advertisement says otherwise; see `super::protocols`.
                protocol: Protocol::Bgp,
                addresses: entries.iter().map(|(r, ..)| *r).collect(),
                auto_assign: spec.auto_assign.unwrap_or(true),
                avoid_buggy_ips: spec.avoid_buggy_ips,
                bgp_advertisements: Vec::new(),
                service_allocation,
            },
            entries,
            labels: cr.metadata.labels.clone().unwrap_or_default(),
        });
    }
    (out, broken)
}

fn service_allocation(
    d: &mut Diag,
    o: &ObjectRef,
    a: &crate::types::ServiceAllocation,
) -> ServiceAllocation {
    let mut namespaces = Vec::new();
    let mut first_at: std::collections::BTreeMap<String, String> = Default::default();
    for (i, ns) in a.namespaces.iter().enumerate() {
        let p = item("spec.serviceAllocation.namespaces", i);
        if let Some(first) = first_at.get(ns) {
            d.error(o, &p, duplicate("namespace", ns, first));
            continue;
        }
        first_at.insert(ns.clone(), p);
        namespaces.push(ns.clone());
    }
    let namespace_selectors = selectors(
        d,
        o,
        "spec.serviceAllocation.namespaceSelectors",
        &a.namespace_selectors,
    );
    let service_selectors = selectors(
        d,
        o,
        "spec.serviceAllocation.serviceSelectors",
        &a.service_selectors,
    );
    d.warn(
        o,
        "spec.serviceAllocation",
        "read but not applied yet: ferrolb's allocator still hands this pool's addresses to \
         any Service that asks",
    );
    ServiceAllocation {
        priority: a.priority,
        namespaces,
        namespace_selectors,
        service_selectors,
    }
}
