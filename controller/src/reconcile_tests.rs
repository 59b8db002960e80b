//! Unit tests of the pure reconcile logic.

use std::net::IpAddr;

use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::allocator::{Pool, Request};

fn pools(cidr: &str) -> PoolSet {
    PoolSet::new(vec![
        Pool::new("default").with_cidr(cidr.parse().expect("cidr")),
    ])
    .expect("pools")
}

fn view(name: &str, age: i64, status: &[&str]) -> SvcView {
    SvcView {
        namespace: "ns".into(),
        name: name.into(),
        uid: Some(format!("uid-{name}")),
        created: Some(Timestamp::from_second(1_000_000 - age).expect("ts")),
        is_load_balancer: true,
        class: None,
        request: Ok(Request::new(format!("ns/{name}"))),
        status_ips: status.iter().map(|s| s.to_string()).collect(),
        pool_annotation: if status.is_empty() {
            None
        } else {
            Some("default".into())
        },
        has_io_pool_annotation: false,
    }
}

fn ips(d: &Decision) -> Vec<String> {
    match &d.desired {
        Desired::Set(a) => a.ips.iter().map(IpAddr::to_string).collect(),
        _ => Vec::new(),
    }
}

fn reasons(d: &Decision) -> Vec<&'static str> {
    d.events.iter().map(|e| e.reason).collect()
}

/// Run a full pass like the driver does: restore all, then reconcile in age order.
fn full_pass(rec: &mut Reconciler, views: &[SvcView]) -> Vec<(String, Decision)> {
    rec.restore_all(views.iter());
    ordered_keys(views.iter())
        .into_iter()
        .map(|k| {
            let v = views.iter().find(|v| v.key() == k);
            let d = rec.reconcile(&k, v);
            (k, d)
        })
        .collect()
}

#[test]
fn restore_happens_before_any_new_assignment() {
    // /30 = 4 addresses. The pending Service is the OLDEST, so a naive pass would hand it
    // 10.0.0.0 first... which is fine, but it must never get .1 or .2 (held in status).
    let mut rec = Reconciler::new(pools("10.0.0.0/30"), None);
    let views = vec![
        view("pending-old", 100, &[]),
        view("a", 50, &["10.0.0.1"]),
        view("b", 40, &["10.0.0.0"]),
        view("pending-2", 10, &[]),
        view("pending-3", 5, &[]),
    ];
    let out = full_pass(&mut rec, &views);
    let get = |k: &str| {
        out.iter()
            .find(|(key, _)| key == k)
            .map(|(_, d)| d)
            .expect(k)
    };
    assert_eq!(ips(get("ns/a")), vec!["10.0.0.1"]);
    assert_eq!(ips(get("ns/b")), vec!["10.0.0.0"]);
    assert!(get("ns/a").events.is_empty(), "no event for a restored IP");
    assert_eq!(ips(get("ns/pending-old")), vec!["10.0.0.2"]);
    assert_eq!(reasons(get("ns/pending-old")), vec!["IPAllocated"]);
    assert_eq!(
        get("ns/pending-old").events[0].message,
        "Assigned IP [\"10.0.0.2\"]"
    );
    assert_eq!(ips(get("ns/pending-2")), vec!["10.0.0.3"]);
    assert_eq!(get("ns/pending-3").desired, Desired::Clear);
    assert_eq!(reasons(get("ns/pending-3")), vec!["AllocationFailed"]);
    assert_eq!(rec.pending().collect::<Vec<_>>(), vec!["ns/pending-3"]);
}

#[test]
fn duplicate_status_ip_keeps_the_older_holder() {
    let mut rec = Reconciler::new(pools("10.0.0.0/29"), None);
    let views = vec![
        view("old", 100, &["10.0.0.3"]),
        view("young", 1, &["10.0.0.3"]),
    ];
    let out = full_pass(&mut rec, &views);
    assert_eq!(ips(&out[0].1), vec!["10.0.0.3"]);
    assert_eq!(out[1].0, "ns/young");
    assert_eq!(ips(&out[1].1), vec!["10.0.0.0"]);
    assert_eq!(reasons(&out[1].1), vec!["ClearAssignment", "IPAllocated"]);
    assert_eq!(out[1].1.events[0].severity, Severity::Warning);
}

#[test]
fn failure_event_is_not_repeated_and_delete_frees_for_pending() {
    let mut rec = Reconciler::new(pools("10.0.0.0/32"), None);
    let a = view("a", 10, &[]);
    let b = view("b", 5, &[]);
    assert_eq!(ips(&rec.reconcile("ns/a", Some(&a))), vec!["10.0.0.0"]);
    let d = rec.reconcile("ns/b", Some(&b));
    assert_eq!(reasons(&d), vec!["AllocationFailed"]);
    assert!(
        d.events[0]
            .message
            .contains("Failed to allocate IP for \"ns/b\"")
    );
    let again = rec.reconcile("ns/b", Some(&b));
    assert!(again.events.is_empty(), "same failure twice: one event");
    let del = rec.reconcile("ns/a", None);
    assert!(del.freed);
    assert_eq!(del.desired, Desired::Leave);
    assert_eq!(rec.pending().collect::<Vec<_>>(), vec!["ns/b"]);
    assert_eq!(ips(&rec.reconcile("ns/b", Some(&b))), vec!["10.0.0.0"]);
    assert_eq!(rec.pending().count(), 0);
}

#[test]
fn type_or_class_change_clears_and_frees() {
    let mut rec = Reconciler::new(pools("10.0.0.0/30"), None);
    let mut a = view("a", 10, &[]);
    assert_eq!(ips(&rec.reconcile("ns/a", Some(&a))), vec!["10.0.0.0"]);
    // The driver would now see the written status.
    a.status_ips = vec!["10.0.0.0".into()];
    a.pool_annotation = Some("default".into());
    let mut changed = a.clone();
    changed.class = Some("other".into());
    let d = rec.reconcile("ns/a", Some(&changed));
    assert_eq!(d.desired, Desired::Clear);
    assert!(d.freed);
    assert_eq!(reasons(&d), vec!["ClearAssignment"]);
    let op = write_for(&changed, &d.desired);
    assert_eq!(op.status, Some(vec![]));
    assert_eq!(op.annotation, Some(None));

    // A Service of a foreign class we never managed is left alone.
    let mut foreign = view("foreign", 1, &["192.0.2.1"]);
    foreign.class = Some("other".into());
    foreign.pool_annotation = None;
    let d = rec.reconcile("ns/foreign", Some(&foreign));
    assert_eq!(d.desired, Desired::Leave);
    assert!(d.events.is_empty());

    let mut not_lb = a.clone();
    not_lb.is_load_balancer = false;
    let d = rec.reconcile("ns/a", Some(&not_lb));
    assert_eq!(
        d.desired,
        Desired::Clear,
        "annotation present: still ours to clear"
    );
}

#[test]
fn config_change_removing_an_ip_reallocates_with_a_warning() {
    let mut rec = Reconciler::new(pools("10.0.0.0/30"), None);
    let views = vec![view("a", 10, &["10.0.0.1"]), view("b", 5, &["10.0.0.2"])];
    full_pass(&mut rec, &views);
    let evicted = rec.set_pools(pools("10.0.0.2/31"));
    assert_eq!(evicted, vec!["ns/a".to_string()]);
    let d = rec.reconcile("ns/b", Some(&views[1]));
    assert_eq!(ips(&d), vec!["10.0.0.2"]);
    assert!(d.events.is_empty(), "b keeps its IP silently");
    let d = rec.reconcile("ns/a", Some(&views[0]));
    assert_eq!(ips(&d), vec!["10.0.0.3"]);
    assert_eq!(reasons(&d), vec!["ClearAssignment", "IPAllocated"]);
    assert_eq!(d.events[0].severity, Severity::Warning);
}

#[test]
fn malformed_request_keeps_the_current_ip_and_warns_once() {
    let mut rec = Reconciler::new(pools("10.0.0.0/30"), None);
    let mut a = view("a", 10, &["10.0.0.1"]);
    full_pass(&mut rec, std::slice::from_ref(&a));
    a.request = Err("bad".into());
    let d = rec.reconcile("ns/a", Some(&a));
    assert_eq!(ips(&d), vec!["10.0.0.1"]);
    assert_eq!(reasons(&d), vec!["LoadBalancerFailed"]);
    assert!(rec.reconcile("ns/a", Some(&a)).events.is_empty());
}

#[test]
fn requested_ip_and_sharing() {
    let mut rec = Reconciler::new(pools("10.0.0.0/29"), None);
    let mut a = view("a", 10, &[]);
    let mut b = view("b", 5, &[]);
    let mut ra = Request::new("ns/a");
    ra.requested_ips = vec!["10.0.0.5".parse().expect("ip")];
    ra.sharing_key = Some("k".into());
    ra.ports = vec![crate::allocator::Port::tcp(80)];
    let mut rb = Request::new("ns/b");
    rb.sharing_key = Some("k".into());
    rb.ports = vec![crate::allocator::Port::tcp(443)];
    a.request = Ok(ra);
    b.request = Ok(rb);
    assert_eq!(ips(&rec.reconcile("ns/a", Some(&a))), vec!["10.0.0.5"]);
    assert_eq!(ips(&rec.reconcile("ns/b", Some(&b))), vec!["10.0.0.5"]);
}

#[test]
fn write_for_is_empty_when_converged() {
    let v = view("a", 1, &["10.0.0.1"]);
    let d = Desired::Set(Assignment {
        pool: "default".into(),
        ips: vec!["10.0.0.1".parse().expect("ip")],
    });
    assert!(write_for(&v, &d).is_empty());
    let mut v2 = v.clone();
    v2.pool_annotation = None;
    let op = write_for(&v2, &d);
    assert_eq!(op.status, None);
    assert_eq!(op.annotation, Some(Some("default".into())));
    assert!(write_for(&view("n", 1, &[]), &Desired::Clear).is_empty());
}

// ---------- serviceAllocation ----------

use crate::allocator::{LabelMatcher, Labels, ServiceAllocation};

/// Pools "team-a" (namespaces labelled team=a), "gold" (Services labelled tier=gold) and the
/// fallback "shared".
fn scoped_pools() -> PoolSet {
    let label = |k: &'static str, v: &'static str| {
        LabelMatcher::new(format!("{k}={v}"), move |l| {
            l.get(k).map(String::as_str) == Some(v)
        })
    };
    PoolSet::new(vec![
        Pool::new("team-a")
            .with_cidr("10.0.0.0/30".parse().expect("cidr"))
            .with_service_allocation(ServiceAllocation {
                namespace_selectors: vec![label("team", "a")],
                ..ServiceAllocation::default()
            }),
        Pool::new("gold")
            .with_cidr("10.0.1.0/30".parse().expect("cidr"))
            .with_service_allocation(ServiceAllocation {
                priority: Some(1),
                service_selectors: vec![label("tier", "gold")],
                ..ServiceAllocation::default()
            }),
        Pool::new("shared").with_cidr("10.9.0.0/30".parse().expect("cidr")),
    ])
    .expect("pools")
}

fn view_in(ns: &str, name: &str, labels: &[(&str, &str)]) -> SvcView {
    let mut v = view(name, 10, &[]);
    v.namespace = ns.into();
    v.request = Ok(Request {
        labels: labels.iter().copied().collect(),
        ..Request::new(format!("{ns}/{name}"))
    });
    v
}

fn pool_of(d: &Decision) -> &str {
    match &d.desired {
        Desired::Set(a) => &a.pool,
        _ => "",
    }
}

#[test]
fn namespace_labels_pick_the_reserved_pool_and_unknown_namespaces_wait() {
    let mut rec = Reconciler::new(scoped_pools(), None);
    let a = view_in("apps-a", "web", &[]);
    // The namespace has not been seen yet: nothing is decided (no fallback IP to keep).
    let d = rec.reconcile("apps-a/web", Some(&a));
    assert_eq!(d.desired, Desired::Leave);
    assert!(d.events.is_empty());
    assert!(rec.allocator().assignment("apps-a/web").is_none());
    // Its labels arrive: the driver reconciles the namespace's Services again.
    assert!(rec.set_namespace("apps-a", Some([("team", "a")].into_iter().collect())));
    assert!(
        !rec.set_namespace("apps-a", Some([("team", "a")].into_iter().collect())),
        "same labels: nothing to redo"
    );
    assert_eq!(pool_of(&rec.reconcile("apps-a/web", Some(&a))), "team-a");
    assert!(rec.set_namespace("apps-b", Some(Labels::default())));
    let b = view_in("apps-b", "web", &[]);
    assert_eq!(pool_of(&rec.reconcile("apps-b/web", Some(&b))), "shared");
    // Without namespace selectors in the pools, namespaces never hold anything up.
    let mut plain = Reconciler::new(pools("10.0.0.0/30"), None);
    assert!(!plain.set_namespace("x", Some(Labels::default())));
    assert_eq!(
        ips(&plain.reconcile("ns/a", Some(&view("a", 1, &[])))),
        ["10.0.0.0"]
    );
}

#[test]
fn losing_the_label_moves_the_service_with_a_warning() {
    let mut rec = Reconciler::new(scoped_pools(), None);
    rec.set_namespace("apps", Some(Labels::default()));
    let gold = view_in("apps", "web", &[("tier", "gold")]);
    let d = rec.reconcile("apps/web", Some(&gold));
    assert_eq!(
        (pool_of(&d), ips(&d)),
        ("gold", vec!["10.0.1.0".to_string()])
    );
    let plain = view_in("apps", "web", &[]);
    let d = rec.reconcile("apps/web", Some(&plain));
    assert_eq!(
        (pool_of(&d), ips(&d)),
        ("shared", vec!["10.9.0.0".to_string()])
    );
    assert_eq!(reasons(&d), vec!["ClearAssignment", "IPAllocated"]);
    assert_eq!(d.events[0].severity, Severity::Warning);
    assert_eq!(
        d.events[0].message,
        "current IP for \"apps/web\" not allowed by config, will attempt for new IP assignment: \
         address pool gold is not available to this service: the service's labels match none of \
         its serviceAllocation.serviceSelectors"
    );
    assert!(d.freed, "the gold address is free again");
}

#[test]
fn namespace_relabel_moves_services_out_of_a_pool_reserved_for_others() {
    let mut rec = Reconciler::new(scoped_pools(), None);
    rec.set_namespace("apps", Some([("team", "a")].into_iter().collect()));
    let v = view_in("apps", "web", &[]);
    assert_eq!(pool_of(&rec.reconcile("apps/web", Some(&v))), "team-a");
    assert!(rec.set_namespace("apps", Some([("team", "b")].into_iter().collect())));
    let d = rec.reconcile("apps/web", Some(&v));
    assert_eq!(pool_of(&d), "shared");
    assert!(
        d.events[0]
            .message
            .ends_with("address pool team-a is not available to this service: its serviceAllocation does not select namespace \"apps\""),
        "{}",
        d.events[0].message
    );
}

#[test]
fn a_config_change_that_reserves_a_pool_says_why_on_eviction() {
    let mut rec = Reconciler::new(pools("10.0.0.0/30"), None);
    rec.set_namespace("ns", Some(Labels::default()));
    let mut a = view("a", 10, &["10.0.0.1"]);
    full_pass(&mut rec, std::slice::from_ref(&a));
    let reserved = PoolSet::new(vec![
        Pool::new("default")
            .with_cidr("10.0.0.0/30".parse().expect("cidr"))
            .with_service_allocation(ServiceAllocation {
                namespaces: vec!["other".into()],
                ..ServiceAllocation::default()
            }),
        Pool::new("shared").with_cidr("10.9.0.0/30".parse().expect("cidr")),
    ])
    .expect("pools");
    assert_eq!(rec.set_pools(reserved), vec!["ns/a".to_string()]);
    a.pool_annotation = Some("default".into());
    let d = rec.reconcile("ns/a", Some(&a));
    assert_eq!(
        (pool_of(&d), ips(&d)),
        ("shared", vec!["10.9.0.0".to_string()])
    );
    assert_eq!(reasons(&d), vec!["ClearAssignment", "IPAllocated"]);
    assert!(
        d.events[0]
            .message
            .ends_with("address pool default is not available to this service: its serviceAllocation does not select namespace \"ns\""),
        "{}",
        d.events[0].message
    );
}
