//! From the configuration model (either source) to the allocator's pools.

use ferrolb_config::{NodeSelector, SelectorOperator};

use crate::allocator::{LabelMatcher, Pool, PoolRange, PoolSet, ServiceAllocation};

/// Convert the config crate's pools.
pub fn pools_from_config(cfg: &ferrolb_config::Config) -> Result<PoolSet, String> {
    let pools: Vec<Pool> = cfg
        .pools
        .iter()
        .map(|p| Pool {
            name: p.name.clone(),
            ranges: p
                .addresses
                .iter()
                .map(|r| PoolRange::Range {
                    first: r.start,
                    last: r.end,
                })
                .collect(),
            auto_assign: p.auto_assign,
            avoid_buggy_ips: p.avoid_buggy_ips,
            service_allocation: p.service_allocation.as_ref().map(service_allocation),
        })
        .collect();
    PoolSet::new(pools).map_err(|e| format!("address-pools: {e}"))
}

/// The model's `serviceAllocation` for the allocator: the selectors become predicates over
/// the config crate's matching, so both sides use one implementation.
fn service_allocation(a: &ferrolb_config::ServiceAllocation) -> ServiceAllocation {
    let matchers = |list: &[NodeSelector]| -> Vec<LabelMatcher> {
        list.iter()
            .map(|s| {
                let sel = s.clone();
                LabelMatcher::new(selector_text(s), move |labels| sel.matches(labels))
            })
            .collect()
    };
    ServiceAllocation {
        priority: a.priority,
        namespaces: a.namespaces.clone(),
        namespace_selectors: matchers(&a.namespace_selectors),
        service_selectors: matchers(&a.service_selectors),
    }
}

/// A selector in Kubernetes' string syntax (`a=b,c in (x,y),!d`), for messages.
fn selector_text(s: &NodeSelector) -> String {
    let mut parts: Vec<String> = s
        .match_labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for r in &s.match_expressions {
        parts.push(match r.operator {
            SelectorOperator::In => format!("{} in ({})", r.key, r.values.join(",")),
            SelectorOperator::NotIn => format!("{} notin ({})", r.key, r.values.join(",")),
            SelectorOperator::Exists => r.key.clone(),
            SelectorOperator::DoesNotExist => format!("!{}", r.key),
        });
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pools_from_text(text: &str) -> Result<PoolSet, Vec<String>> {
        let parsed = ferrolb_config::parse_config(text).map_err(|e| e.lines())?;
        pools_from_config(&parsed.config).map_err(|e| vec![e])
    }

    #[test]
    fn converts_pools_in_order() {
        let text = "address-pools:\n- name: a\n  protocol: bgp\n  addresses: [10.0.0.0/30]\n- name: b\n  protocol: bgp\n  auto-assign: false\n  addresses: ['10.1.0.1-10.1.0.3']\n";
        let set = pools_from_text(text).expect("valid config");
        assert_eq!(set.names().collect::<Vec<_>>(), vec!["a", "b"]);
    }

    #[test]
    fn rejects_unknown_keys_with_a_path() {
        let errs = pools_from_text(
            "address-pools:\n- name: a\n  protocol: bgp\n  addresses: [10.0.0.0/30]\n  bogus: 1\n",
        )
        .expect_err("unknown key");
        assert!(errs.iter().any(|e| e.contains("bogus")), "{errs:?}");
    }
}
