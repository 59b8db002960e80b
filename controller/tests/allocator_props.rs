//! Property tests for the allocator: random sequences of assign / release / restore /
//! set_pools over small pools, checked after every step against an independent oracle (pool
//! membership from explicitly enumerated addresses, the sharing rule re-implemented here, and
//! pools reserved for one namespace by `serviceAllocation`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use ferrolb_controller::allocator::{
    AllocError, Allocator, Assignment, ErrorKind, Family, FamilyPolicy, Pool, PoolSet, Port,
    Protocol, Request, ServiceAllocation, TrafficPolicy,
};
use proptest::prelude::*;

// ---------- pool configurations and their oracle ----------

struct PoolDef {
    name: &'static str,
    /// Inclusive ranges.
    ranges: &'static [(&'static str, &'static str)],
    auto_assign: bool,
    avoid_buggy: bool,
    /// `serviceAllocation.namespaces`; empty: no `serviceAllocation`.
    namespaces: &'static [&'static str],
}

const CONFIGS: &[&[PoolDef]] = &[
    &[
        PoolDef {
            name: "a",
            ranges: &[("10.0.0.0", "10.0.0.3"), ("fd00::", "fd00::3")],
            auto_assign: true,
            avoid_buggy: false,
            namespaces: &[],
        },
        PoolDef {
            name: "b",
            ranges: &[("10.0.1.254", "10.0.2.1")],
            auto_assign: true,
            avoid_buggy: true,
            namespaces: &["ns"],
        },
        PoolDef {
            name: "c",
            ranges: &[("fd01::", "fd01::1")],
            auto_assign: false,
            avoid_buggy: false,
            namespaces: &["other"],
        },
    ],
    &[
        PoolDef {
            name: "a2",
            ranges: &[("10.0.0.0", "10.0.0.1"), ("fd00::", "fd00::1")],
            auto_assign: true,
            avoid_buggy: false,
            namespaces: &[],
        },
        PoolDef {
            name: "c",
            ranges: &[("fd01::", "fd01::1")],
            auto_assign: true,
            avoid_buggy: false,
            namespaces: &["other"],
        },
        PoolDef {
            name: "b",
            ranges: &[("10.0.1.254", "10.0.2.1")],
            auto_assign: true,
            avoid_buggy: false,
            namespaces: &[],
        },
    ],
    &[
        PoolDef {
            name: "a",
            ranges: &[("10.0.0.0", "10.0.0.7")],
            auto_assign: true,
            avoid_buggy: false,
            namespaces: &[],
        },
        PoolDef {
            name: "d",
            ranges: &[("fd00::", "fd00::7")],
            auto_assign: false,
            avoid_buggy: false,
            namespaces: &[],
        },
    ],
];

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn pool_set(cfg: usize) -> PoolSet {
    PoolSet::new(
        CONFIGS[cfg]
            .iter()
            .map(|d| {
                let mut p = Pool::new(d.name)
                    .with_auto_assign(d.auto_assign)
                    .with_avoid_buggy_ips(d.avoid_buggy);
                for (a, b) in d.ranges {
                    p = p.with_range(ip(a), ip(b));
                }
                if !d.namespaces.is_empty() {
                    p = p.with_service_allocation(ServiceAllocation {
                        namespaces: d.namespaces.iter().map(|n| n.to_string()).collect(),
                        ..ServiceAllocation::default()
                    });
                }
                p
            })
            .collect(),
    )
    .expect("valid test config")
}

fn as_u128(ip: &IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(a) => (false, u128::from(u32::from(*a))),
        IpAddr::V6(a) => (true, u128::from(*a)),
    }
}

/// Every assignable address of every pool, enumerated one by one.
fn oracle_addresses(cfg: usize) -> BTreeMap<IpAddr, &'static str> {
    let mut out = BTreeMap::new();
    for d in CONFIGS[cfg] {
        for (a, b) in d.ranges {
            let (v6, lo) = as_u128(&ip(a));
            let (_, hi) = as_u128(&ip(b));
            for v in lo..=hi {
                let addr = if v6 {
                    IpAddr::V6(v.into())
                } else {
                    IpAddr::V4(u32::try_from(v).expect("v4").into())
                };
                if d.avoid_buggy && !v6 && matches!(v & 0xff, 0 | 255) {
                    continue;
                }
                out.insert(addr, d.name);
            }
        }
    }
    out
}

/// Addresses covered by any pool's ranges (buggy or not).
fn covered(cfg: usize, addr: &IpAddr) -> bool {
    let (v6, v) = as_u128(addr);
    CONFIGS[cfg].iter().any(|d| {
        d.ranges.iter().any(|(a, b)| {
            let (f, lo) = as_u128(&ip(a));
            let (_, hi) = as_u128(&ip(b));
            f == v6 && lo <= v && v <= hi
        })
    })
}

/// The sharing rule, written independently of the library.
fn may_share(a: &Request, b: &Request) -> bool {
    let key = |r: &Request| r.sharing_key.clone().filter(|k| !k.is_empty());
    let backend = |r: &Request| match r.traffic_policy {
        TrafficPolicy::Cluster => None,
        TrafficPolicy::Local => Some(r.selector.clone()),
    };
    key(a).is_some()
        && key(a) == key(b)
        && backend(a) == backend(b)
        && a.ports.iter().all(|p| !b.ports.contains(p))
}

/// Whether `pool` of config `cfg` may serve `req`'s namespace.
fn admitted(cfg: usize, req: &Request, pool: &str) -> bool {
    let ns = req.key.split('/').next().unwrap_or_default();
    CONFIGS[cfg]
        .iter()
        .find(|d| d.name == pool)
        .is_some_and(|d| d.namespaces.is_empty() || d.namespaces.contains(&ns))
}

/// Whether holding `ips` from `pool` of config `cfg` fits `req` (named pool, requested IPs,
/// families, the pool's namespaces).
fn satisfied(cfg: usize, req: &Request, pool: &str, ips: &[IpAddr]) -> bool {
    let fams: BTreeSet<Family> = ips.iter().map(Family::of).collect();
    let family_ok = fams.len() == ips.len()
        && match req.family {
            FamilyPolicy::SingleStack(f) => ips.len() == 1 && fams.contains(&f),
            FamilyPolicy::PreferDualStack(_) => !ips.is_empty(),
            FamilyPolicy::RequireDualStack(_) => ips.len() == 2,
        };
    let requested_ok = req.requested_ips.is_empty()
        || req.requested_ips.iter().collect::<BTreeSet<_>>() == ips.iter().collect::<BTreeSet<_>>();
    family_ok
        && requested_ok
        && req.pool.as_deref().is_none_or(|p| p == pool)
        && admitted(cfg, req, pool)
}

/// The key of Service number `k`: even ones in namespace `ns`, odd ones in `other`.
fn key(k: usize) -> String {
    let ns = if k.is_multiple_of(2) { "ns" } else { "other" };
    format!("{ns}/s{k}")
}

// ---------- generators ----------

const KEYS: usize = 6;

const CANDIDATE_IPS: &[&str] = &[
    "10.0.0.0",
    "10.0.0.1",
    "10.0.0.3",
    "10.0.0.5",
    "10.0.1.254",
    "10.0.1.255",
    "10.0.2.0",
    "10.0.2.1",
    "192.0.2.1",
    "fd00::",
    "fd00::3",
    "fd00::6",
    "fd01::1",
    "fd99::1",
];

fn family_policy() -> impl Strategy<Value = FamilyPolicy> {
    let fam = prop_oneof![Just(Family::V4), Just(Family::V6)];
    (0..3u8, fam).prop_map(|(k, f)| match k {
        0 => FamilyPolicy::SingleStack(f),
        1 => FamilyPolicy::PreferDualStack(f),
        _ => FamilyPolicy::RequireDualStack(f),
    })
}

fn request() -> impl Strategy<Value = Request> {
    let ports = proptest::sample::subsequence(
        vec![
            Port::tcp(80),
            Port::tcp(443),
            Port::udp(53),
            Port {
                protocol: Protocol::Sctp,
                port: 80,
            },
        ],
        1..=2,
    );
    let sharing = prop_oneof![
        3 => Just(None),
        3 => Just(Some("k1".to_string())),
        1 => Just(Some("k2".to_string())),
        1 => Just(Some(String::new())),
    ];
    let pool = prop_oneof![
        6 => Just(None),
        1 => Just(Some("a".to_string())),
        1 => Just(Some("b".to_string())),
        1 => Just(Some("c".to_string())),
        1 => Just(Some("a2".to_string())),
        1 => Just(Some("nope".to_string())),
    ];
    let requested = prop_oneof![
        5 => Just(vec![]),
        3 => (0..CANDIDATE_IPS.len()).prop_map(|i| vec![ip(CANDIDATE_IPS[i])]),
        1 => (0..CANDIDATE_IPS.len(), 0..CANDIDATE_IPS.len())
            .prop_map(|(i, j)| vec![ip(CANDIDATE_IPS[i]), ip(CANDIDATE_IPS[j])]),
    ];
    (
        0..KEYS,
        requested,
        pool,
        sharing,
        ports,
        any::<bool>(),
        any::<bool>(),
        family_policy(),
    )
        .prop_map(
            |(k, requested_ips, pool, sharing_key, ports, local, app, family)| {
                let mut selector = BTreeMap::new();
                selector.insert("app".to_string(), if app { "x" } else { "y" }.to_string());
                Request {
                    key: key(k),
                    requested_ips,
                    pool,
                    sharing_key,
                    ports,
                    traffic_policy: if local {
                        TrafficPolicy::Local
                    } else {
                        TrafficPolicy::Cluster
                    },
                    selector,
                    family,
                    ..Request::default()
                }
            },
        )
}

#[derive(Debug, Clone)]
enum Op {
    Assign(Request),
    Release(usize),
    Restore(Request, Vec<IpAddr>),
    SetPools(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let restore_ips = prop_oneof![
        (0..CANDIDATE_IPS.len()).prop_map(|i| vec![ip(CANDIDATE_IPS[i])]),
        (0..CANDIDATE_IPS.len(), 0..CANDIDATE_IPS.len())
            .prop_map(|(i, j)| vec![ip(CANDIDATE_IPS[i]), ip(CANDIDATE_IPS[j])]),
    ];
    prop_oneof![
        8 => request().prop_map(Op::Assign),
        3 => (0..KEYS).prop_map(Op::Release),
        2 => (request(), restore_ips).prop_map(|(r, ips)| Op::Restore(r, ips)),
        1 => (0..CONFIGS.len()).prop_map(Op::SetPools),
    ]
}

// ---------- the model and its checks ----------

/// What the test knows about each Service: the request it was last given and whether the
/// holding came from `assign` (then it must satisfy the request) or `restore`.
struct Model {
    cfg: usize,
    requests: HashMap<String, (Request, bool)>,
}

fn all_assignments(a: &Allocator) -> BTreeMap<String, Assignment> {
    (0..KEYS)
        .map(key)
        .filter_map(|k| a.assignment(&k).map(|x| (k, x)))
        .collect()
}

fn check_invariants(a: &Allocator, m: &Model) -> Result<(), TestCaseError> {
    let addrs = oracle_addresses(m.cfg);
    let held = all_assignments(a);
    let keys: BTreeSet<&String> = held.keys().collect();
    let model_keys: BTreeSet<&String> = m.requests.keys().collect();
    prop_assert_eq!(
        keys,
        model_keys,
        "allocator and model disagree on who holds IPs"
    );

    let mut by_ip: BTreeMap<IpAddr, Vec<&str>> = BTreeMap::new();
    for (key, asg) in &held {
        let (req, via_assign) = &m.requests[key];
        prop_assert!(!asg.ips.is_empty() && asg.ips.len() <= 2);
        let fams: BTreeSet<Family> = asg.ips.iter().map(Family::of).collect();
        prop_assert_eq!(fams.len(), asg.ips.len(), "one IP per family at most");
        for x in &asg.ips {
            // Every held address is assignable in the pool the assignment names.
            prop_assert_eq!(
                addrs.get(x).copied(),
                Some(asg.pool.as_str()),
                "{} held outside its pool",
                x
            );
            by_ip.entry(*x).or_default().push(key);
        }
        if *via_assign {
            match req.family {
                FamilyPolicy::SingleStack(f) => {
                    prop_assert_eq!(asg.ips.len(), 1);
                    prop_assert_eq!(Family::of(&asg.ips[0]), f);
                }
                FamilyPolicy::RequireDualStack(f) => {
                    prop_assert_eq!(asg.ips.len(), 2);
                    prop_assert_eq!(Family::of(&asg.ips[0]), f, "primary first");
                }
                FamilyPolicy::PreferDualStack(_) => {}
            }
            if !req.requested_ips.is_empty() {
                let want: BTreeSet<_> = req.requested_ips.iter().collect();
                let have: BTreeSet<_> = asg.ips.iter().collect();
                prop_assert_eq!(want, have);
            }
            if let Some(p) = &req.pool {
                prop_assert_eq!(&asg.pool, p);
            }
            prop_assert!(
                admitted(m.cfg, req, &asg.pool),
                "{} holds from {}, which is reserved for other namespaces",
                key,
                asg.pool
            );
        }
    }
    // No IP held by two services that may not share.
    for (x, holders) in &by_ip {
        for (i, h1) in holders.iter().enumerate() {
            for h2 in &holders[i + 1..] {
                let (r1, _) = &m.requests[*h1];
                let (r2, _) = &m.requests[*h2];
                prop_assert!(
                    may_share(r1, r2),
                    "{} held by {} and {} which may not share",
                    x,
                    h1,
                    h2
                );
            }
        }
        let mut listed: Vec<&str> = a.holders(x);
        listed.sort_unstable();
        let mut expected = holders.clone();
        expected.sort_unstable();
        prop_assert_eq!(listed, expected);
    }
    // Stats match the holdings.
    for s in a.pool_stats() {
        let in_use = by_ip
            .keys()
            .filter(|x| addrs.get(x) == Some(&s.pool.as_str()))
            .count();
        let services = held.values().filter(|x| x.pool == s.pool).count();
        let total = addrs.values().filter(|p| **p == s.pool).count();
        prop_assert_eq!(s.in_use, in_use as u128, "in_use of {}", s.pool);
        prop_assert_eq!(s.services_allocated, services, "services of {}", s.pool);
        prop_assert_eq!(s.addresses_total, total as u128, "total of {}", s.pool);
    }
    Ok(())
}

/// Applies `op`, checks everything, and returns labels of the notable things that happened
/// (used to show the generator reaches the interesting cases).
fn apply(
    a: &mut Allocator,
    m: &mut Model,
    op: &Op,
) -> Result<BTreeSet<&'static str>, TestCaseError> {
    let before = all_assignments(a);
    let mut touched: Option<String> = None;
    let mut events = BTreeSet::new();
    match op {
        Op::Assign(req) => {
            touched = Some(req.key.clone());
            let previous = m.requests.get(&req.key).cloned();
            let result = a.assign(req.clone());
            events.insert(match &result {
                Ok(x) if x.ips.len() == 2 => "assigned dual stack",
                Ok(_) => "assigned",
                Err(AllocError::InUse { .. }) => "refused: in use",
                Err(AllocError::NotInAnyPool { .. }) => "refused: not in any pool",
                Err(AllocError::PoolExhausted { .. } | AllocError::NoAvailableIps) => {
                    "refused: exhausted"
                }
                Err(e) if e.kind() == ErrorKind::InvalidRequest => "refused: invalid request",
                Err(
                    AllocError::PoolNotForService { .. }
                    | AllocError::RequestedIpNotForService { .. },
                ) => "refused: pool not for this service",
                Err(_) => "refused: other",
            });
            if result.is_ok()
                && before.contains_key(&req.key)
                && a.assignment(&req.key).map(|x| x.ips)
                    == before.get(&req.key).map(|x| x.ips.clone())
            {
                events.insert("kept IPs on re-assign");
            }
            match &result {
                Ok(asg) => {
                    // Sticky: same request as last assign => the old IPs are kept.
                    if let (Some((old_req, true)), Some(old)) = (&previous, before.get(&req.key))
                        && old_req == req
                    {
                        for x in &old.ips {
                            prop_assert!(
                                asg.ips.contains(x),
                                "{} lost {} on an identical assign",
                                req.key,
                                x
                            );
                        }
                    }
                    m.requests.insert(req.key.clone(), (req.clone(), true));
                }
                Err(e) if e.kind() == ErrorKind::InvalidRequest => {
                    // A malformed request changes nothing.
                    prop_assert_eq!(a.assignment(&req.key), before.get(&req.key).cloned());
                }
                Err(_) => {
                    prop_assert!(a.assignment(&req.key).is_none());
                    m.requests.remove(&req.key);
                }
            }
            // Requested IPs outside every pool are refused for that reason.
            let well_formed = !matches!(&result, Err(e) if e.kind() == ErrorKind::InvalidRequest);
            if well_formed
                && req.pool.is_none()
                && let Some(first) = req.requested_ips.first()
                && !covered(m.cfg, first)
            {
                prop_assert_eq!(result.clone(), Err(AllocError::NotInAnyPool { ip: *first }));
            }
            if let Err(AllocError::NotInAnyPool { ip }) = &result {
                prop_assert!(!covered(m.cfg, ip));
            }
        }
        Op::Release(k) => {
            let key = key(*k);
            let freed = a.release(&key);
            prop_assert_eq!(freed, before.get(&key).cloned());
            m.requests.remove(&key);
            touched = Some(key);
        }
        Op::Restore(req, ips) => {
            touched = Some(req.key.clone());
            let result = a.restore(req.clone(), ips);
            events.insert(if result.is_ok() {
                "restored"
            } else {
                "restore refused"
            });
            match result {
                Ok(asg) => {
                    let want: BTreeSet<_> = ips.iter().collect();
                    let have: BTreeSet<_> = asg.ips.iter().collect();
                    prop_assert_eq!(want, have);
                    m.requests.insert(req.key.clone(), (req.clone(), false));
                }
                Err(e) => {
                    if let AllocError::NotInAnyPool { ip } = e {
                        prop_assert!(!covered(m.cfg, &ip));
                    }
                    prop_assert_eq!(a.assignment(&req.key), before.get(&req.key).cloned());
                }
            }
        }
        Op::SetPools(cfg) => {
            let before_requests = m.requests.clone();
            let invalid = a.set_pools(pool_set(*cfg));
            if !invalid.is_empty() {
                events.insert("set_pools invalidated some");
            }
            if before.keys().any(|k| !invalid.contains(k)) {
                events.insert("set_pools kept some");
            }
            m.cfg = *cfg;
            let addrs = oracle_addresses(*cfg);
            for (key, old) in &before {
                if invalid.contains(key) {
                    prop_assert!(a.assignment(key).is_none());
                    m.requests.remove(key);
                } else {
                    let now = a.assignment(key);
                    prop_assert_eq!(
                        now.as_ref().map(|x| &x.ips),
                        Some(&old.ips),
                        "{} moved on a config change",
                        key
                    );
                    // Only IPs that became invalid are reported.
                    for x in &old.ips {
                        prop_assert!(addrs.contains_key(x));
                    }
                }
            }
            for key in &invalid {
                prop_assert!(before.contains_key(key));
                let old = &before[key];
                let pools: BTreeSet<&str> = old
                    .ips
                    .iter()
                    .filter_map(|x| addrs.get(x).copied())
                    .collect();
                let all_in = old.ips.iter().all(|x| addrs.contains_key(x));
                // Invalid because an address left the pools, the pools split, or the request
                // (named pool, requested IPs, families) no longer matches.
                if all_in && pools.len() == 1 {
                    let pool = pools.iter().next().copied().unwrap_or_default();
                    let (req, _) = &before_requests[key];
                    prop_assert!(
                        !satisfied(*cfg, req, pool, &old.ips),
                        "{} reported invalid though still valid in {}",
                        key,
                        pool
                    );
                }
            }
        }
    }
    // Unrelated services never move.
    if !matches!(op, Op::SetPools(_)) {
        for (key, old) in &before {
            if Some(key) != touched.as_ref() {
                let now = a.assignment(key);
                prop_assert_eq!(
                    now.as_ref(),
                    Some(old),
                    "{} changed by an unrelated op",
                    key
                );
            }
        }
    }
    check_invariants(a, m)?;
    if all_assignments(a)
        .values()
        .flat_map(|x| x.ips.iter())
        .any(|x| a.holders(x).len() > 1)
    {
        events.insert("an IP is shared");
    }
    Ok(events)
}

/// After releasing everything nothing is in use and every address can be handed out again.
fn check_no_leak(a: &mut Allocator, m: &Model) -> Result<(), TestCaseError> {
    for k in 0..KEYS {
        a.release(&key(k));
    }
    for s in a.pool_stats() {
        prop_assert_eq!(s.in_use, 0, "pool {} leaks", s.pool);
        prop_assert_eq!(s.services_allocated, 0);
    }
    prop_assert_eq!(a.services_len(), 0);
    let addrs = oracle_addresses(m.cfg);
    let mut got = BTreeSet::new();
    for d in CONFIGS[m.cfg] {
        for family in [Family::V4, Family::V6] {
            for i in 0.. {
                let ns = d.namespaces.first().copied().unwrap_or("drain");
                let r = Request {
                    pool: Some(d.name.to_string()),
                    family: FamilyPolicy::SingleStack(family),
                    ..Request::new(format!("{ns}/{}-{family}-{i}", d.name))
                };
                match a.assign(r) {
                    Ok(x) => {
                        prop_assert!(got.insert(x.ips[0]), "{} handed out twice", x.ips[0]);
                    }
                    Err(_) => break,
                }
            }
        }
    }
    let all: BTreeSet<IpAddr> = addrs.keys().copied().collect();
    prop_assert_eq!(got, all);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_operation_sequences_keep_every_invariant(ops in proptest::collection::vec(op(), 1..60)) {
        let mut a = Allocator::new(pool_set(0));
        let mut m = Model { cfg: 0, requests: HashMap::new() };
        for op in &ops {
            apply(&mut a, &mut m, op)?;
        }
        check_no_leak(&mut a, &m)?;
    }
}

/// The drain check above, on a fresh allocator, is itself meaningful: it must see every
/// address of every pool (so a leak would show as a missing address).
#[test]
fn drain_sees_every_address() {
    let mut a = Allocator::new(pool_set(0));
    let m = Model {
        cfg: 0,
        requests: HashMap::new(),
    };
    a.assign(Request::new("ns/s0")).expect("assign");
    check_no_leak(&mut a, &m).expect("no leak");
    assert_eq!(oracle_addresses(0).len(), 4 + 4 + 2 + 2);
}

/// The properties above would pass vacuously if the generator never reached the interesting
/// states; this runs the same generator deterministically and checks it does.
#[test]
fn generated_sequences_reach_the_interesting_cases() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let strategy = proptest::collection::vec(op(), 1..60);
    let mut seen = BTreeSet::new();
    for _ in 0..300 {
        let ops = strategy.new_tree(&mut runner).expect("tree").current();
        let mut a = Allocator::new(pool_set(0));
        let mut m = Model {
            cfg: 0,
            requests: HashMap::new(),
        };
        for op in &ops {
            seen.extend(apply(&mut a, &mut m, op).expect("invariants hold"));
        }
    }
    for want in [
        "assigned",
        "assigned dual stack",
        "kept IPs on re-assign",
        "refused: in use",
        "refused: not in any pool",
        "refused: exhausted",
        "refused: invalid request",
        "refused: pool not for this service",
        "restored",
        "restore refused",
        "set_pools invalidated some",
        "set_pools kept some",
        "an IP is shared",
    ] {
        assert!(seen.contains(want), "never saw {want:?}; saw {seen:?}");
    }
}
