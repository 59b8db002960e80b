//! Unit tests for every allocation rule and error text, IPv4 and IPv6.

use std::net::IpAddr;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn cidr(name: &str, net: &str) -> Pool {
    Pool::new(name).with_cidr(net.parse().unwrap())
}

fn allocator(pools: Vec<Pool>) -> Allocator {
    Allocator::new(PoolSet::new(pools).unwrap())
}

fn req(key: &str) -> Request {
    Request::new(key)
}

fn req6(key: &str) -> Request {
    Request {
        family: FamilyPolicy::SingleStack(Family::V6),
        ..Request::new(key)
    }
}

fn shared(key: &str, sharing: &str, ports: &[Port]) -> Request {
    Request {
        sharing_key: Some(sharing.to_string()),
        ports: ports.to_vec(),
        ..Request::new(key)
    }
}

fn with_ip(mut r: Request, s: &str) -> Request {
    r.requested_ips.push(ip(s));
    r
}

fn ips_of(a: &Assignment) -> Vec<String> {
    a.ips.iter().map(ToString::to_string).collect()
}

fn stats(a: &Allocator, pool: &str) -> (u128, u128, usize) {
    let s = a.pool_stats().into_iter().find(|s| s.pool == pool).unwrap();
    (s.addresses_total, s.in_use, s.services_allocated)
}

// ---------- picking ----------

#[test]
fn lowest_free_first_and_pools_in_config_order_v4() {
    let mut a = allocator(vec![
        cidr("first", "10.0.0.0/31"),
        cidr("second", "10.0.1.0/30"),
    ]);
    let got: Vec<Assignment> = (0..4)
        .map(|i| a.assign(req(&format!("ns/s{i}"))).unwrap())
        .collect();
    assert_eq!(
        got.iter()
            .map(|x| (x.pool.as_str(), x.ips[0].to_string()))
            .collect::<Vec<_>>(),
        vec![
            ("first", "10.0.0.0".to_string()),
            ("first", "10.0.0.1".to_string()),
            ("second", "10.0.1.0".to_string()),
            ("second", "10.0.1.1".to_string()),
        ]
    );
    // Freeing in the middle makes that address the next one handed out.
    a.release("ns/s1").unwrap();
    assert_eq!(ips_of(&a.assign(req("ns/new")).unwrap()), ["10.0.0.1"]);
    assert_eq!(ips_of(&a.assign(req("ns/new2")).unwrap()), ["10.0.1.2"]);
}

#[test]
fn lowest_free_first_v6_and_ranges() {
    let mut a = allocator(vec![
        Pool::new("p")
            .with_range(ip("fd00::10"), ip("fd00::11"))
            .with_cidr("fd00:1::/127".parse().unwrap()),
    ]);
    let got: Vec<String> = (0..4)
        .map(|i| a.assign(req6(&format!("ns/s{i}"))).unwrap().ips[0].to_string())
        .collect();
    assert_eq!(got, ["fd00::10", "fd00::11", "fd00:1::", "fd00:1::1"]);
    let err = a.assign(req6("ns/more")).unwrap_err();
    assert_eq!(err.to_string(), "no available IPs");
    a.release("ns/s1");
    assert_eq!(ips_of(&a.assign(req6("ns/more")).unwrap()), ["fd00::11"]);
}

#[test]
fn avoid_buggy_ips_skips_dot0_and_dot255_ipv4_only() {
    let mut a = allocator(vec![
        Pool::new("v4")
            .with_range(ip("10.0.0.254"), ip("10.0.1.1"))
            .with_avoid_buggy_ips(true),
        Pool::new("v6")
            .with_cidr("fd00::/127".parse().unwrap())
            .with_avoid_buggy_ips(true),
    ]);
    assert_eq!(ips_of(&a.assign(req("ns/a")).unwrap()), ["10.0.0.254"]);
    assert_eq!(ips_of(&a.assign(req("ns/b")).unwrap()), ["10.0.1.1"]);
    assert_eq!(
        a.assign(req("ns/c")).unwrap_err().to_string(),
        "no available IPs"
    );
    assert_eq!(stats(&a, "v4"), (2, 2, 2));
    // IPv6 ignores the rule: fd00:: (ends in 0) is handed out.
    assert_eq!(ips_of(&a.assign(req6("ns/d")).unwrap()), ["fd00::"]);
    assert_eq!(stats(&a, "v6").0, 2);
    let err = a.assign(with_ip(req("ns/e"), "10.0.0.255")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "requested IP 10.0.0.255 ends in .0 or .255, which address pool v4 avoids (avoid-buggy-ips)"
    );
    let err = a.assign(with_ip(req("ns/e"), "10.0.1.0")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "requested IP 10.0.1.0 ends in .0 or .255, which address pool v4 avoids (avoid-buggy-ips)"
    );
}

#[test]
fn without_avoid_buggy_ips_dot0_is_used() {
    let mut a = allocator(vec![cidr("p", "10.0.0.0/24")]);
    assert_eq!(ips_of(&a.assign(req("ns/a")).unwrap()), ["10.0.0.0"]);
    assert_eq!(stats(&a, "p").0, 256);
}

#[test]
fn auto_assign_false_pool_only_when_named_or_requested() {
    let mut a = allocator(vec![
        cidr("manual", "10.0.0.0/30").with_auto_assign(false),
        cidr("auto", "10.1.0.0/30"),
    ]);
    assert_eq!(a.assign(req("ns/a")).unwrap().pool, "auto");
    let named = Request {
        pool: Some("manual".into()),
        ..req("ns/b")
    };
    let got = a.assign(named).unwrap();
    assert_eq!(
        (got.pool.as_str(), ips_of(&got)),
        ("manual", vec!["10.0.0.0".to_string()])
    );
    let got = a.assign(with_ip(req("ns/c"), "10.0.0.3")).unwrap();
    assert_eq!(got.pool, "manual");
    // With only manual pools left, automatic assignment finds nothing of the family.
    let mut only_manual = allocator(vec![cidr("manual", "10.0.0.0/30").with_auto_assign(false)]);
    assert_eq!(
        only_manual.assign(req("ns/a")).unwrap_err().to_string(),
        "no address pool available for automatic assignment has IPv4 addresses"
    );
}

// ---------- request errors ----------

#[test]
fn requested_ip_not_in_any_pool() {
    let mut a = allocator(vec![cidr("p", "10.0.0.0/24"), cidr("q", "fd00::/64")]);
    let err = a.assign(with_ip(req("ns/a"), "1.2.3.4")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "requested IP 1.2.3.4 is not in any configured address pool"
    );
    assert_eq!(err.kind(), ErrorKind::NotInConfig);
    let err = a.assign(with_ip(req6("ns/a"), "fd01::1")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "requested IP fd01::1 is not in any configured address pool"
    );
    assert!(a.assignment("ns/a").is_none());
}

#[test]
fn requested_ip_honoured_v4_and_v6() {
    let mut a = allocator(vec![cidr("p", "10.0.0.0/24"), cidr("q", "fd00::/64")]);
    assert_eq!(
        ips_of(&a.assign(with_ip(req("ns/a"), "10.0.0.77")).unwrap()),
        ["10.0.0.77"]
    );
    let got = a.assign(with_ip(req6("ns/b"), "fd00::beef")).unwrap();
    assert_eq!(
        (got.pool.as_str(), ips_of(&got)),
        ("q", vec!["fd00::beef".to_string()])
    );
    // Automatic picks skip the requested address.
    assert_eq!(ips_of(&a.assign(req6("ns/c")).unwrap()), ["fd00::"]);
}

#[test]
fn requested_ip_not_in_requested_pool_and_unknown_pool() {
    let mut a = allocator(vec![cidr("p", "10.0.0.0/24"), cidr("q", "10.1.0.0/24")]);
    let r = Request {
        pool: Some("q".into()),
        ..with_ip(req("ns/a"), "10.0.0.5")
    };
    assert_eq!(
        a.assign(r).unwrap_err().to_string(),
        "requested IP 10.0.0.5 is not in the requested address pool q"
    );
    let r = Request {
        pool: Some("nope".into()),
        ..req("ns/a")
    };
    let err = a.assign(r).unwrap_err();
    assert_eq!(err.to_string(), "unknown address pool nope");
    assert_eq!(err.kind(), ErrorKind::NotInConfig);
}

#[test]
fn pool_exhausted_named_and_automatic() {
    let mut a = allocator(vec![cidr("small", "10.0.0.0/31"), cidr("v6", "fd00::/127")]);
    let named = |k: &str| Request {
        pool: Some("small".into()),
        ..req(k)
    };
    a.assign(named("ns/a")).unwrap();
    a.assign(named("ns/b")).unwrap();
    let err = a.assign(named("ns/c")).unwrap_err();
    assert_eq!(err.to_string(), "no available IPs in pool small");
    assert_eq!(err.kind(), ErrorKind::Exhausted);
    assert_eq!(
        a.assign(req("ns/c")).unwrap_err().to_string(),
        "no available IPs"
    );
    let named6 = |k: &str| Request {
        pool: Some("v6".into()),
        ..req6(k)
    };
    a.assign(named6("ns/d")).unwrap();
    a.assign(named6("ns/e")).unwrap();
    assert_eq!(
        a.assign(named6("ns/f")).unwrap_err().to_string(),
        "no available IPs in pool v6"
    );
}

#[test]
fn family_not_available() {
    let mut a = allocator(vec![cidr("v4only", "10.0.0.0/24")]);
    assert_eq!(
        a.assign(req6("ns/a")).unwrap_err().to_string(),
        "no address pool available for automatic assignment has IPv6 addresses"
    );
    let r = Request {
        pool: Some("v4only".into()),
        ..req6("ns/a")
    };
    assert_eq!(
        a.assign(r).unwrap_err().to_string(),
        "address pool v4only has no IPv6 addresses"
    );
    let mut b = allocator(vec![cidr("v6only", "fd00::/120")]);
    let r = Request {
        pool: Some("v6only".into()),
        ..req("ns/a")
    };
    assert_eq!(
        b.assign(r).unwrap_err().to_string(),
        "address pool v6only has no IPv4 addresses"
    );
}

#[test]
fn malformed_requests() {
    let mut a = allocator(vec![cidr("p", "10.0.0.0/24"), cidr("q", "fd00::/64")]);
    let two_v4 = with_ip(with_ip(req("ns/a"), "10.0.0.1"), "10.0.0.2");
    let err = a.assign(two_v4).unwrap_err();
    assert_eq!(
        err.to_string(),
        "requested IPs 10.0.0.1 and 10.0.0.2 are both IPv4; give at most one per family"
    );
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    let err = a.assign(with_ip(req("ns/a"), "fd00::1")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "requested IP fd00::1 is IPv6 but the service is SingleStack IPv4"
    );
    let r = Request {
        family: FamilyPolicy::RequireDualStack(Family::V4),
        ..with_ip(req("ns/a"), "10.0.0.1")
    };
    assert_eq!(
        a.assign(r).unwrap_err().to_string(),
        "the service is RequireDualStack but requests only 10.0.0.1; request one IP per family or none"
    );
    let r = Request {
        requested_ips: vec![ip("10.0.0.1"), ip("fd00::1"), ip("10.0.0.2")],
        ..req("ns/a")
    };
    assert_eq!(
        a.assign(r).unwrap_err().to_string(),
        "more than two IPs requested (3); give at most one per family"
    );
    assert!(a.assignment("ns/a").is_none());
}

// ---------- dual stack ----------

#[test]
fn require_dual_stack_takes_one_per_family_from_one_pool() {
    let mut a = allocator(vec![
        cidr("v4only", "10.9.0.0/24"),
        cidr("v6only", "fd09::/120"),
        Pool::new("dual")
            .with_cidr("10.0.0.0/31".parse().unwrap())
            .with_cidr("fd00::/127".parse().unwrap()),
    ]);
    let r = |k: &str, primary| Request {
        family: FamilyPolicy::RequireDualStack(primary),
        ..req(k)
    };
    let got = a.assign(r("ns/a", Family::V4)).unwrap();
    assert_eq!(
        (got.pool.as_str(), ips_of(&got)),
        ("dual", vec!["10.0.0.0".into(), "fd00::".into()])
    );
    let got = a.assign(r("ns/b", Family::V6)).unwrap();
    assert_eq!(
        ips_of(&got),
        ["fd00::1", "10.0.0.1"],
        "primary family first"
    );
    let err = a.assign(r("ns/c", Family::V4)).unwrap_err();
    assert_eq!(err.to_string(), "no available IPs");
    // No pool with both families at all.
    let mut b = allocator(vec![
        cidr("v4only", "10.9.0.0/24"),
        cidr("v6only", "fd09::/120"),
    ]);
    assert_eq!(
        b.assign(r("ns/a", Family::V4)).unwrap_err().to_string(),
        "RequireDualStack: no address pool has both IPv4 and IPv6 addresses"
    );
    let named = Request {
        pool: Some("v4only".into()),
        ..r("ns/a", Family::V4)
    };
    assert_eq!(
        b.assign(named).unwrap_err().to_string(),
        "address pool v4only has no IPv6 addresses"
    );
}

#[test]
fn require_dual_stack_does_not_take_half_when_one_family_is_full() {
    let mut a = allocator(vec![
        Pool::new("dual")
            .with_cidr("10.0.0.0/32".parse().unwrap())
            .with_cidr("fd00::/126".parse().unwrap()),
    ]);
    a.assign(req("ns/v4")).unwrap();
    let r = Request {
        family: FamilyPolicy::RequireDualStack(Family::V6),
        ..req("ns/d")
    };
    assert_eq!(a.assign(r).unwrap_err().to_string(), "no available IPs");
    assert_eq!(stats(&a, "dual").1, 1, "no IPv6 address may be taken");
}

#[test]
fn requested_dual_stack_ips_must_share_a_pool() {
    let mut a = allocator(vec![
        cidr("p4", "10.0.0.0/24"),
        cidr("p6", "fd00::/64"),
        Pool::new("dual")
            .with_cidr("10.1.0.0/24".parse().unwrap())
            .with_cidr("fd01::/64".parse().unwrap()),
    ]);
    let r = Request {
        family: FamilyPolicy::RequireDualStack(Family::V4),
        requested_ips: vec![ip("10.0.0.1"), ip("fd00::1")],
        ..req("ns/a")
    };
    assert_eq!(
        a.assign(r).unwrap_err().to_string(),
        "requested IPs 10.0.0.1 and fd00::1 are in different address pools (p4, p6); both families must come from one pool"
    );
    let r = Request {
        family: FamilyPolicy::RequireDualStack(Family::V4),
        requested_ips: vec![ip("fd01::9"), ip("10.1.0.9")],
        ..req("ns/a")
    };
    let got = a.assign(r).unwrap();
    assert_eq!(
        (got.pool.as_str(), ips_of(&got)),
        ("dual", vec!["10.1.0.9".into(), "fd01::9".into()])
    );
}

#[test]
fn prefer_dual_stack_takes_both_where_it_can_else_one() {
    let mut a = allocator(vec![
        cidr("v6only", "fd09::/120"),
        Pool::new("dual")
            .with_cidr("10.0.0.0/32".parse().unwrap())
            .with_cidr("fd00::/127".parse().unwrap()),
    ]);
    let r = |k: &str| Request {
        family: FamilyPolicy::PreferDualStack(Family::V4),
        ..req(k)
    };
    let got = a.assign(r("ns/a")).unwrap();
    assert_eq!(
        (got.pool.as_str(), ips_of(&got)),
        ("dual", vec!["10.0.0.0".into(), "fd00::".into()])
    );
    // IPv4 is gone: the next one gets a single IPv6 address from the first pool in order.
    let got = a.assign(r("ns/b")).unwrap();
    assert_eq!(
        (got.pool.as_str(), ips_of(&got)),
        ("v6only", vec!["fd09::".into()])
    );
    // Only IPv4 pools, IPv6 primary: falls back to IPv4.
    let mut b = allocator(vec![cidr("v4", "10.0.0.0/30")]);
    let r6 = Request {
        family: FamilyPolicy::PreferDualStack(Family::V6),
        ..req("ns/a")
    };
    assert_eq!(ips_of(&b.assign(r6).unwrap()), ["10.0.0.0"]);
    // Nothing at all: the primary family's reason.
    let mut c = allocator(vec![]);
    assert_eq!(
        c.assign(r("ns/a")).unwrap_err().to_string(),
        "no address pool available for automatic assignment has IPv4 addresses"
    );
}

#[test]
fn prefer_dual_stack_completes_later_without_moving() {
    let mut a = allocator(vec![
        Pool::new("dual")
            .with_cidr("10.0.0.0/30".parse().unwrap())
            .with_cidr("fd00::/128".parse().unwrap()),
    ]);
    a.assign(req6("ns/blocker")).unwrap();
    let r = Request {
        family: FamilyPolicy::PreferDualStack(Family::V6),
        ..req("ns/a")
    };
    assert_eq!(ips_of(&a.assign(r.clone()).unwrap()), ["10.0.0.0"]);
    assert_eq!(ips_of(&a.assign(r.clone()).unwrap()), ["10.0.0.0"]);
    a.release("ns/blocker");
    assert_eq!(
        ips_of(&a.assign(r).unwrap()),
        ["fd00::", "10.0.0.0"],
        "IPv4 kept, IPv6 added, primary first"
    );
}

// ---------- sharing ----------

#[test]
fn sharing_same_ip_by_request_and_by_auto_pick() {
    let mut a = allocator(vec![cidr("p", "10.0.0.0/24")]);
    let s1 = with_ip(shared("ns/dns-tcp", "dns", &[Port::tcp(53)]), "10.0.0.53");
    let s2 = with_ip(shared("ns/dns-udp", "dns", &[Port::udp(53)]), "10.0.0.53");
    assert_eq!(ips_of(&a.assign(s1).unwrap()), ["10.0.0.53"]);
    assert_eq!(ips_of(&a.assign(s2).unwrap()), ["10.0.0.53"]);
    // Without a requested IP, a service with the key joins the shared IP rather than 10.0.0.0.
    let s3 = shared("ns/dns-http", "dns", &[Port::tcp(80)]);
    assert_eq!(ips_of(&a.assign(s3).unwrap()), ["10.0.0.53"]);
    assert_eq!(
        a.holders(&ip("10.0.0.53")),
        ["ns/dns-tcp", "ns/dns-udp", "ns/dns-http"]
    );
    assert_eq!(stats(&a, "p"), (256, 1, 3));
    // A port clash with the shared IP sends an auto-picked service to a free address.
    let s4 = shared("ns/dns-tcp2", "dns", &[Port::tcp(53)]);
    assert_eq!(ips_of(&a.assign(s4).unwrap()), ["10.0.0.0"]);
    // The IP stays in use until the last holder leaves.
    a.release("ns/dns-tcp");
    a.release("ns/dns-udp");
    assert_eq!(stats(&a, "p").1, 2);
    let err = a.assign(with_ip(req("ns/x"), "10.0.0.53")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "IP 10.0.0.53 is already in use by service ns/dns-http and cannot be shared: this service does not set allow-shared-ip"
    );
    assert_eq!(err.kind(), ErrorKind::Conflict);
    a.release("ns/dns-http");
    assert_eq!(stats(&a, "p"), (256, 1, 1));
    assert_eq!(
        ips_of(&a.assign(with_ip(req("ns/x"), "10.0.0.53")).unwrap()),
        ["10.0.0.53"]
    );
}

#[test]
fn sharing_refusals_name_the_holder_and_reason_v4_and_v6() {
    let mut a = allocator(vec![cidr("p", "10.0.0.0/24"), cidr("q", "fd00::/64")]);
    a.assign(with_ip(shared("ns/a", "k", &[Port::tcp(80)]), "10.0.0.1"))
        .unwrap();
    a.assign(with_ip(req("ns/plain"), "10.0.0.2")).unwrap();
    let cases = [
        (
            with_ip(shared("ns/b", "k", &[Port::tcp(80)]), "10.0.0.1"),
            "IP 10.0.0.1 is already in use by service ns/a and cannot be shared: port conflict on TCP/80",
        ),
        (
            with_ip(shared("ns/b", "other", &[Port::tcp(81)]), "10.0.0.1"),
            "IP 10.0.0.1 is already in use by service ns/a and cannot be shared: different sharing key (\"other\" vs \"k\")",
        ),
        (
            with_ip(req("ns/b"), "10.0.0.1"),
            "IP 10.0.0.1 is already in use by service ns/a and cannot be shared: this service does not set allow-shared-ip",
        ),
        (
            with_ip(shared("ns/b", "k", &[Port::tcp(81)]), "10.0.0.2"),
            "IP 10.0.0.2 is already in use by service ns/plain and cannot be shared: it does not set allow-shared-ip",
        ),
        (
            Request {
                traffic_policy: TrafficPolicy::Local,
                ..with_ip(shared("ns/b", "k", &[Port::tcp(81)]), "10.0.0.1")
            },
            "IP 10.0.0.1 is already in use by service ns/a and cannot be shared: externalTrafficPolicy/pod selector mismatch (sharing needs both Cluster, or both Local with identical selectors)",
        ),
    ];
    for (r, want) in cases {
        assert_eq!(a.assign(r).unwrap_err().to_string(), want);
        assert!(a.assignment("ns/b").is_none());
    }
    // IPv6: Local services with identical selectors may share; different selectors may not.
    let local = |k: &str, port: u16, app: &str| {
        let mut r = with_ip(shared(k, "web", &[Port::tcp(port)]), "fd00::80");
        r.family = FamilyPolicy::SingleStack(Family::V6);
        r.traffic_policy = TrafficPolicy::Local;
        r.selector.insert("app".into(), app.into());
        r
    };
    a.assign(local("ns/l1", 80, "web")).unwrap();
    assert_eq!(
        ips_of(&a.assign(local("ns/l2", 443, "web")).unwrap()),
        ["fd00::80"]
    );
    assert_eq!(
        a.assign(local("ns/l3", 8080, "api"))
            .unwrap_err()
            .to_string(),
        "IP fd00::80 is already in use by service ns/l1 and cannot be shared: externalTrafficPolicy/pod selector mismatch (sharing needs both Cluster, or both Local with identical selectors)"
    );
    assert_eq!(
        a.assign(local("ns/l3", 443, "web")).unwrap_err().to_string(),
        "IP fd00::80 is already in use by service ns/l1 and cannot be shared: port conflict on TCP/443"
            .replace("ns/l1", "ns/l2")
    );
}

// ---------- stickiness ----------

#[test]
fn assign_is_idempotent_and_unrelated_changes_never_move_ips() {
    let mut a = allocator(vec![cidr("p", "10.0.0.0/29"), cidr("q", "fd00::/125")]);
    let first = a.assign(req("ns/a")).unwrap();
    let b = a.assign(req("ns/b")).unwrap();
    let c = a.assign(req("ns/c")).unwrap();
    assert_eq!(a.assign(req("ns/b")).unwrap(), b);
    a.release("ns/a");
    // MetalLB issue 2723: deleting an unrelated service must not move others.
    assert_eq!(a.assign(req("ns/b")).unwrap(), b);
    assert_eq!(a.assign(req("ns/c")).unwrap(), c);
    // Changing ports or sharing attributes that still fit keeps the IP.
    let b2 = Request {
        ports: vec![Port::tcp(8080)],
        sharing_key: Some("x".into()),
        ..req("ns/b")
    };
    assert_eq!(a.assign(b2).unwrap(), b);
    // The freed first address is reused by the next newcomer.
    assert_eq!(a.assign(req("ns/d")).unwrap(), first);
    // Requesting a different IP moves the service and frees the old address.
    let moved = a.assign(with_ip(req("ns/b"), "10.0.0.6")).unwrap();
    assert_eq!(ips_of(&moved), ["10.0.0.6"]);
    assert!(a.holders(&b.ips[0]).is_empty());
    // Naming another pool moves too; family change likewise.
    let to_v6 = a.assign(req6("ns/c")).unwrap();
    assert_eq!(
        (to_v6.pool.as_str(), ips_of(&to_v6)),
        ("q", vec!["fd00::".to_string()])
    );
    assert_eq!(stats(&a, "p"), (8, 2, 2));
}

#[test]
fn request_change_that_breaks_sharing_moves_only_that_service() {
    let mut a = allocator(vec![cidr("p", "10.0.0.0/29")]);
    let s1 = shared("ns/a", "k", &[Port::tcp(80)]);
    let s2 = shared("ns/b", "k", &[Port::tcp(443)]);
    let ip_a = a.assign(s1.clone()).unwrap();
    assert_eq!(a.assign(s2).unwrap(), ip_a);
    // b now wants port 80 too: it must leave the shared IP, a stays.
    let s2b = shared("ns/b", "k", &[Port::tcp(80)]);
    let moved = a.assign(s2b).unwrap();
    assert_ne!(moved, ip_a);
    assert_eq!(a.assign(s1).unwrap(), ip_a);
}

#[test]
fn invalid_holding_is_released_even_if_no_replacement() {
    let mut a = allocator(vec![cidr("p", "10.0.0.0/31")]);
    a.assign(req("ns/a")).unwrap();
    let err = a.assign(with_ip(req("ns/a"), "10.9.9.9")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "requested IP 10.9.9.9 is not in any configured address pool"
    );
    assert!(a.assignment("ns/a").is_none());
    assert_eq!(stats(&a, "p").1, 0);
}

// ---------- restore ----------

#[test]
fn restore_marks_ips_used_before_any_assign() {
    let mut a = allocator(vec![cidr("p", "10.0.0.0/30"), cidr("q", "fd00::/126")]);
    let got = a.restore(req("ns/old"), &[ip("10.0.0.0")]).unwrap();
    assert_eq!(
        (got.pool.as_str(), ips_of(&got)),
        ("p", vec!["10.0.0.0".to_string()])
    );
    a.restore(req6("ns/old6"), &[ip("fd00::")]).unwrap();
    // A pending service cannot get the restored addresses (MetalLB 1774/1984/2443/2479).
    assert_eq!(ips_of(&a.assign(req("ns/new")).unwrap()), ["10.0.0.1"]);
    assert_eq!(ips_of(&a.assign(req6("ns/new6")).unwrap()), ["fd00::1"]);
    // The restored service's own assign keeps its address.
    assert_eq!(ips_of(&a.assign(req("ns/old")).unwrap()), ["10.0.0.0"]);
    // Restoring the same holding again is harmless.
    assert_eq!(
        ips_of(&a.restore(req("ns/old"), &[ip("10.0.0.0")]).unwrap()),
        ["10.0.0.0"]
    );
    assert_eq!(stats(&a, "p"), (4, 2, 2));
}

#[test]
fn restore_reports_conflicts_and_bad_addresses() {
    let mut a = allocator(vec![
        cidr("p", "10.0.0.0/24").with_avoid_buggy_ips(true),
        cidr("q", "fd00::/64"),
    ]);
    a.restore(req("ns/first"), &[ip("10.0.0.5")]).unwrap();
    let err = a.restore(req("ns/second"), &[ip("10.0.0.5")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "IP 10.0.0.5 is already in use by service ns/first and cannot be shared: this service does not set allow-shared-ip"
    );
    assert!(a.assignment("ns/second").is_none());
    assert_eq!(
        a.restore(req("ns/x"), &[ip("192.0.2.1")])
            .unwrap_err()
            .to_string(),
        "requested IP 192.0.2.1 is not in any configured address pool"
    );
    assert_eq!(
        a.restore(req("ns/x"), &[ip("10.0.0.0")])
            .unwrap_err()
            .to_string(),
        "requested IP 10.0.0.0 ends in .0 or .255, which address pool p avoids (avoid-buggy-ips)"
    );
    let dual = Request {
        family: FamilyPolicy::RequireDualStack(Family::V4),
        ..req("ns/x")
    };
    assert_eq!(
        a.restore(dual, &[ip("10.0.0.9"), ip("fd00::9")])
            .unwrap_err()
            .to_string(),
        "requested IPs 10.0.0.9 and fd00::9 are in different address pools (p, q); both families must come from one pool"
    );
    assert_eq!(
        a.restore(req("ns/x"), &[]).unwrap_err().to_string(),
        "nothing to restore: the service status has no IPs"
    );
    // Shared holdings restore fine when the rules allow it.
    a.restore(shared("ns/s1", "k", &[Port::tcp(1)]), &[ip("fd00::7")])
        .unwrap();
    a.restore(shared("ns/s2", "k", &[Port::udp(1)]), &[ip("fd00::7")])
        .unwrap();
    assert_eq!(a.holders(&ip("fd00::7")), ["ns/s1", "ns/s2"]);
    // A failed re-restore keeps the previous holding.
    assert!(a.restore(req("ns/first"), &[ip("192.0.2.1")]).is_err());
    assert_eq!(ips_of(&a.assignment("ns/first").unwrap()), ["10.0.0.5"]);
}

#[test]
fn restored_ips_that_no_longer_fit_the_request_move_on_assign() {
    let mut a = allocator(vec![cidr("p", "10.0.0.0/30")]);
    a.restore(req("ns/a"), &[ip("10.0.0.2")]).unwrap();
    let got = a.assign(with_ip(req("ns/a"), "10.0.0.3")).unwrap();
    assert_eq!(ips_of(&got), ["10.0.0.3"]);
    assert!(a.holders(&ip("10.0.0.2")).is_empty());
}

// ---------- config changes ----------

#[test]
fn set_pools_keeps_valid_and_reports_invalid() {
    let mut a = allocator(vec![
        cidr("p", "10.0.0.0/24"),
        cidr("q", "fd00::/64"),
        cidr("r", "10.2.0.0/24"),
    ]);
    a.assign(with_ip(req("ns/keep"), "10.0.0.10")).unwrap();
    a.assign(with_ip(req("ns/zero"), "10.0.0.0")).unwrap();
    a.assign(req6("ns/v6")).unwrap();
    let named = Request {
        pool: Some("r".into()),
        ..req("ns/named")
    };
    a.assign(named.clone()).unwrap();
    // New config: p renamed to p2 with avoid-buggy-ips, q dropped, r renamed to r2.
    let invalid = a.set_pools(
        PoolSet::new(vec![
            cidr("p2", "10.0.0.0/24").with_avoid_buggy_ips(true),
            cidr("r2", "10.2.0.0/24"),
        ])
        .unwrap(),
    );
    assert_eq!(invalid, ["ns/named", "ns/v6", "ns/zero"]);
    let keep = a.assignment("ns/keep").unwrap();
    assert_eq!(
        (keep.pool.as_str(), ips_of(&keep)),
        ("p2", vec!["10.0.0.10".to_string()])
    );
    for k in &invalid {
        assert!(a.assignment(k).is_none());
    }
    assert_eq!(stats(&a, "p2"), (254, 1, 1));
    assert_eq!(stats(&a, "r2"), (256, 0, 0));
    assert_eq!(
        a.assign(named).unwrap_err().to_string(),
        "unknown address pool r"
    );
    assert_eq!(
        a.assign(req6("ns/v6")).unwrap_err().to_string(),
        "no address pool available for automatic assignment has IPv6 addresses"
    );
    // The re-allocated .0 service gets the lowest non-buggy free address.
    assert_eq!(ips_of(&a.assign(req("ns/zero")).unwrap()), ["10.0.0.1"]);
}

#[test]
fn set_pools_keeps_shared_holdings() {
    let mut a = allocator(vec![cidr("p", "10.0.0.0/24")]);
    a.assign(with_ip(shared("ns/a", "k", &[Port::tcp(1)]), "10.0.0.9"))
        .unwrap();
    a.assign(with_ip(shared("ns/b", "k", &[Port::tcp(2)]), "10.0.0.9"))
        .unwrap();
    let invalid = a.set_pools(PoolSet::new(vec![cidr("p", "10.0.0.0/16")]).unwrap());
    assert!(invalid.is_empty());
    assert_eq!(a.holders(&ip("10.0.0.9")), ["ns/a", "ns/b"]);
    assert_eq!(stats(&a, "p"), (65536, 1, 2));
    // Sharing index still works after the rebuild.
    let c = shared("ns/c", "k", &[Port::tcp(3)]);
    assert_eq!(ips_of(&a.assign(c).unwrap()), ["10.0.0.9"]);
}

// ---------- scale ----------

#[test]
fn huge_pools_cost_nothing_extra() {
    let mut a = allocator(vec![cidr("v4", "10.0.0.0/8"), cidr("v6", "fd00::/64")]);
    assert_eq!(stats(&a, "v4").0, 1 << 24);
    assert_eq!(stats(&a, "v6").0, 1 << 64);
    for i in 0..1000 {
        a.assign(req(&format!("ns/a{i}"))).unwrap();
        a.assign(req6(&format!("ns/b{i}"))).unwrap();
    }
    assert_eq!(ips_of(&a.assignment("ns/a999").unwrap()), ["10.0.3.231"]);
    assert_eq!(ips_of(&a.assignment("ns/b999").unwrap()), ["fd00::3e7"]);
    // Sequential allocations coalesce into one run per family.
    assert_eq!(a.usage_runs(), vec![(1, 0), (0, 1)]);
    a.release("ns/a500");
    assert_eq!(a.usage_runs()[0], (2, 0));
    assert_eq!(ips_of(&a.assign(req("ns/again")).unwrap()), ["10.0.1.244"]);
    let whole = allocator(vec![cidr("all", "::/0")]);
    assert_eq!(stats(&whole, "all").0, u128::MAX);
    assert_eq!(whole.pool_stats()[0].addresses_total_f64(), 2f64.powi(128));
}

#[test]
fn avoid_buggy_runs_coalesce_across_24_boundaries() {
    let mut a = allocator(vec![cidr("p", "10.0.0.0/16").with_avoid_buggy_ips(true)]);
    for i in 0..600 {
        a.assign(req(&format!("ns/s{i}"))).unwrap();
    }
    // 600 = 254 + 254 + 92: the last one is 10.0.2.92.
    assert_eq!(ips_of(&a.assignment("ns/s599").unwrap()), ["10.0.2.92"]);
    assert_eq!(a.usage_runs(), vec![(1, 0)]);
}

#[test]
fn error_kinds() {
    assert_eq!(AllocError::NoAvailableIps.kind(), ErrorKind::Exhausted);
    assert_eq!(AllocError::NoDualStackPool.kind(), ErrorKind::NotInConfig);
    assert_eq!(
        AllocError::NothingToRestore.kind(),
        ErrorKind::InvalidRequest
    );
}

#[test]
fn malformed_request_keeps_the_current_holding() {
    let mut a = allocator(vec![cidr("p", "10.0.0.0/24")]);
    let held = a.assign(req("ns/a")).unwrap();
    let bad = Request {
        requested_ips: vec![ip("10.0.0.7"), ip("10.0.0.8")],
        ..req("ns/a")
    };
    assert_eq!(a.assign(bad).unwrap_err().kind(), ErrorKind::InvalidRequest);
    assert_eq!(a.assignment("ns/a"), Some(held));
}

#[test]
fn set_pools_drops_restored_holdings_that_never_fitted() {
    let mut a = allocator(vec![cidr("p", "10.0.0.0/24"), cidr("q", "10.1.0.0/24")]);
    let wants_q = Request {
        pool: Some("q".into()),
        ..req("ns/a")
    };
    // Status says 10.0.0.1 (pool p) although the service asks for pool q.
    a.restore(wants_q.clone(), &[ip("10.0.0.1")]).unwrap();
    let invalid = a
        .set_pools(PoolSet::new(vec![cidr("p", "10.0.0.0/24"), cidr("q", "10.1.0.0/24")]).unwrap());
    assert_eq!(invalid, ["ns/a"]);
    assert_eq!(a.assign(wants_q).unwrap().pool, "q");
}
