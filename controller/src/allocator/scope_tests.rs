//! Unit tests for `serviceAllocation`: priority order, namespaces, namespace and Service
//! selectors, their combination, requested pools and IPs outside a Service's allowed pools,
//! and the pools without `serviceAllocation` as the fallback. Cases follow MetalLB's
//! `internal/allocator/allocator_test.go` (TestAssignment, "IP Pool compatibility tests") and
//! its e2e `l2tests/assignment.go` ("with namespace", "with only priority", ...).

use std::collections::BTreeMap;

use super::*;

/// A `matchLabels`-only selector written `k=v,k2=v2` (an empty text matches everything).
fn sel(text: &str) -> LabelMatcher {
    let want: BTreeMap<String, String> = text
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    LabelMatcher::new(text, move |labels: &BTreeMap<String, String>| {
        want.iter().all(|(k, v)| labels.get(k) == Some(v))
    })
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().copied().collect()
}

fn pool(name: &str, net: &str) -> Pool {
    Pool::new(name).with_cidr(net.parse().unwrap())
}

fn scoped(name: &str, net: &str, a: ServiceAllocation) -> Pool {
    pool(name, net).with_service_allocation(a)
}

fn priority(p: i32) -> ServiceAllocation {
    ServiceAllocation {
        priority: Some(p),
        ..ServiceAllocation::default()
    }
}

fn in_namespaces(priority: Option<i32>, namespaces: &[&str]) -> ServiceAllocation {
    ServiceAllocation {
        priority,
        namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
        ..ServiceAllocation::default()
    }
}

fn allocator(pools: Vec<Pool>) -> Allocator {
    Allocator::new(PoolSet::new(pools).unwrap())
}

/// A Service `key` (`namespace/name`) with labels.
fn svc(key: &str, svc_labels: &[(&str, &str)]) -> Request {
    Request {
        labels: labels(svc_labels),
        ..Request::new(key)
    }
}

fn pool_of(a: &mut Allocator, r: Request) -> String {
    a.assign(r).unwrap().pool
}

#[test]
fn priority_orders_the_selecting_pools_and_no_priority_comes_last() {
    // MetalLB e2e "with namespace": three /32 pools for namespace "test".
    let mut a = allocator(vec![
        scoped("low", "192.168.5.0/32", in_namespaces(Some(20), &["test"])),
        scoped(
            "high",
            "192.168.10.0/32",
            in_namespaces(Some(10), &["test"]),
        ),
        scoped("none", "192.168.20.0/32", in_namespaces(None, &["test"])),
    ]);
    assert_eq!(pool_of(&mut a, svc("test/s1", &[])), "high");
    assert_eq!(pool_of(&mut a, svc("test/s2", &[])), "low");
    assert_eq!(pool_of(&mut a, svc("test/s3", &[])), "none");
    // Priority 0 is "not set", as in MetalLB: after every pool with a priority.
    let mut a = allocator(vec![
        scoped("zero", "10.0.0.0/32", priority(0)),
        scoped("five", "10.0.1.0/32", priority(5)),
    ]);
    assert_eq!(pool_of(&mut a, svc("x/s1", &[])), "five");
    assert_eq!(pool_of(&mut a, svc("x/s2", &[])), "zero");
}

#[test]
fn priority_alone_selects_every_service_before_the_fallback_pools() {
    // MetalLB e2e "with only priority", plus a fallback pool listed first in the config.
    let mut a = allocator(vec![
        pool("fallback", "10.9.0.0/24"),
        scoped("p20", "192.168.5.0/32", priority(20)),
        scoped("p10", "192.168.10.0/32", priority(10)),
    ]);
    assert_eq!(pool_of(&mut a, svc("any/s1", &[])), "p10");
    assert_eq!(pool_of(&mut a, svc("other/s2", &[])), "p20");
    assert_eq!(pool_of(&mut a, svc("other/s3", &[])), "fallback");
}

#[test]
fn equal_priorities_keep_config_order_and_negative_comes_first() {
    let mut a = allocator(vec![
        scoped("b", "10.0.1.0/32", priority(10)),
        scoped("a", "10.0.0.0/32", priority(10)),
        scoped("neg", "10.0.2.0/32", priority(-1)),
    ]);
    assert_eq!(pool_of(&mut a, svc("x/s1", &[])), "neg");
    assert_eq!(pool_of(&mut a, svc("x/s2", &[])), "b");
    assert_eq!(pool_of(&mut a, svc("x/s3", &[])), "a");
}

#[test]
fn namespaces_by_name_reserve_a_pool() {
    let mut a = allocator(vec![
        scoped("team-a", "10.0.0.0/30", in_namespaces(None, &["a"])),
        pool("shared", "10.1.0.0/30"),
    ]);
    assert_eq!(pool_of(&mut a, svc("a/web", &[])), "team-a");
    assert_eq!(pool_of(&mut a, svc("b/web", &[])), "shared");
    // Without a fallback pool a Service of another namespace gets nothing.
    let mut a = allocator(vec![scoped(
        "team-a",
        "10.0.0.0/30",
        in_namespaces(None, &["a"]),
    )]);
    let err = a.assign(svc("b/web", &[])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no address pool available for automatic assignment has IPv4 addresses"
    );
    assert_eq!(err.kind(), ErrorKind::NotInConfig);
}

#[test]
fn namespace_selectors_match_the_namespace_labels_or_the_names() {
    let alloc = ServiceAllocation {
        namespaces: vec!["by-name".into()],
        namespace_selectors: vec![sel("foo1=bar1,foo2=bar2")],
        ..ServiceAllocation::default()
    };
    let mut a = allocator(vec![
        scoped("labelled", "10.0.0.0/29", alloc),
        pool("shared", "10.1.0.0/29"),
    ]);
    let in_ns = |key: &str, ns: &[(&str, &str)]| Request {
        namespace_labels: labels(ns),
        ..Request::new(key)
    };
    let both = [("foo1", "bar1"), ("foo2", "bar2"), ("x", "y")];
    assert_eq!(pool_of(&mut a, in_ns("n1/s", &both)), "labelled");
    assert_eq!(
        pool_of(&mut a, in_ns("n2/s", &[("foo1", "bar1")])),
        "shared"
    );
    assert_eq!(pool_of(&mut a, in_ns("by-name/s", &[])), "labelled");
    // The Service's own labels do not count for a namespace selector.
    assert_eq!(pool_of(&mut a, svc("n3/s", &both)), "shared");
    assert!(a.pools().uses_namespace_selectors());
    assert!(
        !PoolSet::new(vec![scoped(
            "p",
            "10.0.0.0/32",
            in_namespaces(None, &["a"])
        )])
        .unwrap()
        .uses_namespace_selectors()
    );
}

#[test]
fn a_namespace_selector_matching_no_namespace_selects_no_service() {
    // Deliberate difference: MetalLB lifts the namespace restriction when its selectors match
    // no namespace (an empty resolved set); here the pool stays closed.
    let alloc = ServiceAllocation {
        namespace_selectors: vec![sel("team=a")],
        service_selectors: vec![sel("app=web")],
        ..ServiceAllocation::default()
    };
    let mut a = allocator(vec![scoped("p", "10.0.0.0/30", alloc)]);
    let err = a.assign(svc("b/web", &[("app", "web")])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no address pool available for automatic assignment has IPv4 addresses"
    );
    let named = Request {
        pool: Some("p".into()),
        ..svc("b/web", &[("app", "web")])
    };
    assert_eq!(
        a.assign(named).unwrap_err().to_string(),
        "address pool p is not available to this service: its serviceAllocation does not select namespace \"b\""
    );
}

#[test]
fn service_selectors_match_the_service_labels() {
    // MetalLB e2e "with service label": two labelled pools by priority, then the namespace one.
    let by_label = |p: i32| ServiceAllocation {
        priority: Some(p),
        service_selectors: vec![sel("test=e2e")],
        ..ServiceAllocation::default()
    };
    let mut a = allocator(vec![
        scoped("label-20", "192.168.5.0/32", by_label(20)),
        scoped("label-10", "192.168.10.0/32", by_label(10)),
        scoped("ns", "192.168.20.0/31", in_namespaces(None, &["test"])),
    ]);
    let e2e = [("test", "e2e")];
    assert_eq!(pool_of(&mut a, svc("test/s1", &e2e)), "label-10");
    assert_eq!(pool_of(&mut a, svc("test/s2", &e2e)), "label-20");
    assert_eq!(pool_of(&mut a, svc("test/s3", &e2e)), "ns");
    // Without the label only the namespace pool selects the Service.
    assert_eq!(pool_of(&mut a, svc("test/s4", &[("test", "x")])), "ns");
    // Any one of several selectors is enough.
    let either = ServiceAllocation {
        service_selectors: vec![sel("team=red"), sel("team=blue")],
        ..ServiceAllocation::default()
    };
    let mut a = allocator(vec![scoped("p", "10.0.0.0/30", either)]);
    assert_eq!(pool_of(&mut a, svc("x/s1", &[("team", "blue")])), "p");
    assert!(a.assign(svc("x/s2", &[("team", "green")])).is_err());
}

#[test]
fn namespaces_and_service_selectors_must_both_hold() {
    // MetalLB's TestAssignment pools test5 (test-ns1 + team=metallb) and test6 (test-ns2 +
    // foo=bar), requested by IP as in its compatibility cases.
    let both = |ns: &str, label: &str| ServiceAllocation {
        priority: Some(20),
        namespaces: vec![ns.to_string()],
        service_selectors: vec![sel(label)],
        ..ServiceAllocation::default()
    };
    let mut a = allocator(vec![
        scoped("test5", "1.2.7.0/24", both("test-ns1", "team=metallb")),
        scoped("test6", "1.2.8.0/24", both("test-ns2", "foo=bar")),
    ]);
    let at = |key: &str, l: &[(&str, &str)], ip: &str| Request {
        requested_ips: vec![ip.parse().unwrap()],
        ..svc(key, l)
    };
    let team = [("team", "metallb")];
    assert!(a.assign(at("test-ns1/s1", &team, "1.2.7.10")).is_ok());
    let err = a.assign(at("test-ns2/s2", &team, "1.2.8.10")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "requested IP 1.2.8.10 is in address pool test6, which is not available to this service: the service's labels match none of its serviceAllocation.serviceSelectors"
    );
    let err = a
        .assign(at("testns-not-exist/s3", &[("foo", "bar")], "1.2.8.10"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "requested IP 1.2.8.10 is in address pool test6, which is not available to this service: its serviceAllocation does not select namespace \"testns-not-exist\""
    );
    assert_eq!(err.kind(), ErrorKind::NotInConfig);
    // Automatically: only the pool whose both rules hold.
    assert_eq!(
        pool_of(&mut a, svc("test-ns2/s4", &[("foo", "bar")])),
        "test6"
    );
    assert!(a.assign(svc("test-ns1/s5", &[("foo", "bar")])).is_err());
}

#[test]
fn a_requested_pool_outside_the_allowed_set_is_refused() {
    let mut a = allocator(vec![
        scoped("team-a", "10.0.0.0/30", in_namespaces(None, &["a"])),
        scoped("manual-a", "10.0.1.0/30", in_namespaces(None, &["a"])).with_auto_assign(false),
        pool("shared", "10.1.0.0/30"),
    ]);
    let named = |key: &str, p: &str| Request {
        pool: Some(p.to_string()),
        ..Request::new(key)
    };
    let err = a.assign(named("b/web", "team-a")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "address pool team-a is not available to this service: its serviceAllocation does not select namespace \"b\""
    );
    assert_eq!(err.kind(), ErrorKind::NotInConfig);
    assert!(
        a.assignment("b/web").is_none(),
        "no fallback for a named pool"
    );
    // A selected Service may name a pool that is not auto-assigned.
    assert_eq!(pool_of(&mut a, named("a/web", "manual-a")), "manual-a");
    // ... which automatic assignment never uses.
    assert_eq!(pool_of(&mut a, Request::new("a/auto")), "team-a");
    // A pool without serviceAllocation may be named by anyone.
    assert_eq!(pool_of(&mut a, named("b/web", "shared")), "shared");
}

#[test]
fn a_requested_ip_outside_the_allowed_set_is_refused_even_to_share() {
    let mut a = allocator(vec![scoped(
        "team-a",
        "10.0.0.0/30",
        in_namespaces(None, &["a"]),
    )]);
    let sharing = |key: &str, port: u16| Request {
        requested_ips: vec!["10.0.0.1".parse().unwrap()],
        sharing_key: Some("k".into()),
        ports: vec![Port::tcp(port)],
        ..Request::new(key)
    };
    assert!(a.assign(sharing("a/dns", 53)).is_ok());
    let err = a.assign(sharing("b/http", 80)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "requested IP 10.0.0.1 is in address pool team-a, which is not available to this service: its serviceAllocation does not select namespace \"b\""
    );
    assert_eq!(a.holders(&"10.0.0.1".parse().unwrap()), vec!["a/dns"]);
}

#[test]
fn fallback_pools_serve_only_once_the_selecting_pools_are_full() {
    let mut a = allocator(vec![
        pool("fallback", "10.1.0.0/30"),
        scoped("team-a", "10.0.0.0/31", in_namespaces(Some(1), &["a"])),
    ]);
    assert_eq!(pool_of(&mut a, Request::new("a/s1")), "team-a");
    assert_eq!(pool_of(&mut a, Request::new("a/s2")), "team-a");
    assert_eq!(pool_of(&mut a, Request::new("a/s3")), "fallback");
    // The fallback Service stays where it is when the reserved pool frees up (sticky).
    a.release("a/s1");
    assert_eq!(pool_of(&mut a, Request::new("a/s3")), "fallback");
    assert_eq!(pool_of(&mut a, Request::new("a/s4")), "team-a");
    // A full reserved pool and no fallback: "no available IPs", not "no pool".
    let mut a = allocator(vec![scoped(
        "team-a",
        "10.0.0.0/32",
        in_namespaces(None, &["a"]),
    )]);
    a.assign(Request::new("a/s1")).unwrap();
    let err = a.assign(Request::new("a/s2")).unwrap_err();
    assert_eq!(err, AllocError::NoAvailableIps);
}

#[test]
fn dual_stack_policy_applies_per_tier() {
    // A selecting IPv4-only pool beats a fallback pool with both families (MetalLB tries the
    // pinned pools as a whole first).
    let mut a = allocator(vec![
        pool("dual", "10.1.0.0/30").with_cidr("fd01::/126".parse().unwrap()),
        scoped("v4-a", "10.0.0.0/30", in_namespaces(None, &["a"])),
    ]);
    let prefer = |key: &str| Request {
        family: FamilyPolicy::PreferDualStack(Family::V4),
        ..Request::new(key)
    };
    let got = a.assign(prefer("a/s")).unwrap();
    assert_eq!((got.pool.as_str(), got.ips.len()), ("v4-a", 1));
    // RequireDualStack cannot be met by the selecting tier, so the fallback serves it.
    let require = Request {
        family: FamilyPolicy::RequireDualStack(Family::V4),
        ..Request::new("a/r")
    };
    let got = a.assign(require).unwrap();
    assert_eq!((got.pool.as_str(), got.ips.len()), ("dual", 2));
}

#[test]
fn a_held_ip_moves_when_its_pool_stops_selecting_the_service() {
    let by_label = ServiceAllocation {
        service_selectors: vec![sel("tier=gold")],
        ..ServiceAllocation::default()
    };
    let pools = || {
        vec![
            scoped("gold", "10.0.0.0/30", by_label.clone()),
            pool("shared", "10.1.0.0/30"),
        ]
    };
    let mut a = allocator(pools());
    let gold = svc("x/web", &[("tier", "gold")]);
    assert_eq!(pool_of(&mut a, gold.clone()), "gold");
    // Same request again: unchanged. A label change that still selects: unchanged.
    assert_eq!(pool_of(&mut a, gold.clone()), "gold");
    let more = svc("x/web", &[("tier", "gold"), ("extra", "1")]);
    assert_eq!(a.assign(more).unwrap().ips[0].to_string(), "10.0.0.0");
    // The label goes: the IP is not allowed any more and the Service moves.
    let plain = svc("x/web", &[]);
    let err = a
        .check_allowed(&plain, &["10.0.0.0".parse().unwrap()])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "address pool gold is not available to this service: the service's labels match none of its serviceAllocation.serviceSelectors"
    );
    assert!(
        a.check_allowed(&gold, &["10.0.0.0".parse().unwrap()])
            .is_ok()
    );
    let moved = a.assign(plain).unwrap();
    assert_eq!(
        (moved.pool.as_str(), moved.ips[0].to_string().as_str()),
        ("shared", "10.1.0.0")
    );
    assert!(a.holders(&"10.0.0.0".parse().unwrap()).is_empty());
    // A config change that reserves the pool for another namespace evicts its holders.
    let mut a = allocator(pools());
    a.assign(svc("x/gold", &[("tier", "gold")])).unwrap();
    a.assign(svc("x/plain", &[])).unwrap();
    let evicted = a.set_pools(
        PoolSet::new(vec![
            scoped("gold", "10.0.0.0/30", in_namespaces(None, &["y"])),
            pool("shared", "10.1.0.0/30"),
        ])
        .unwrap(),
    );
    assert_eq!(evicted, vec!["x/gold".to_string()]);
    assert_eq!(a.assignment("x/plain").unwrap().pool, "shared");
}

#[test]
fn restore_keeps_ips_out_of_other_hands_even_when_the_pool_no_longer_selects() {
    // Restore only prevents double use; the assign that follows moves the Service.
    let mut a = allocator(vec![
        scoped("team-a", "10.0.0.0/31", in_namespaces(None, &["a"])),
        pool("shared", "10.1.0.0/31"),
    ]);
    a.restore(Request::new("b/old"), &["10.0.0.0".parse().unwrap()])
        .unwrap();
    assert_eq!(
        a.assign(Request::new("a/new")).unwrap().ips[0].to_string(),
        "10.0.0.1"
    );
    let moved = a.assign(Request::new("b/old")).unwrap();
    assert_eq!(moved.pool, "shared");
}

#[test]
fn the_namespace_is_the_key_up_to_its_first_slash() {
    assert_eq!(Request::new("ns/name").namespace(), "ns");
    assert_eq!(Request::new("bare").namespace(), "bare");
}
