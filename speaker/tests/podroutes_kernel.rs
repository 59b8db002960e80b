//! Pod CIDR routes against a real kernel: the rtnetlink driver and the reconciler in a
//! throw-away network namespace (root; skipped with a message otherwise).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ferrolb_netns::{Family, KernelRoute, Lab, Netns, Veth, require_root, wait_for_state};
use ferrolb_speaker::podroutes::desired::InstalledRoute;
use ferrolb_speaker::podroutes::{
    DEFAULT_METRIC, FEED_CAPACITY, KernelRoutes, LearnedSender, NextHops, PodRoutes,
    PodRoutesHandle, PodRoutesOptions, ROUTE_PROTOCOL, SkipReason, learned_feed,
};
use ipnet::IpNet;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}
fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
fn hops(list: &[&str]) -> NextHops {
    list.iter().map(|s| ip(s)).collect()
}

const WAIT: Duration = Duration::from_secs(10);

/// A node namespace joined to a router namespace by two veths: 10.1.0.0/24 + fd01::/64
/// and 10.2.0.0/24 + fd02::/64, router at .1 / ::1, node at .2 / ::2.
struct Topo {
    _lab: Lab,
    node: Netns,
    v1: Veth,
    v2: Veth,
}

impl Topo {
    fn new() -> Topo {
        let lab = Lab::new().expect("lab");
        let router = lab.netns("router").expect("router ns");
        let node = lab.netns("node").expect("node ns");
        let v1 = lab.veth(&router, &node).expect("veth 1");
        let v2 = lab.veth(&router, &node).expect("veth 2");
        for (i, v) in [(1, &v1), (2, &v2)] {
            router
                .add_addr(&v.a, net(&format!("10.{i}.0.1/24")))
                .expect("addr");
            node.add_addr(&v.b, net(&format!("10.{i}.0.2/24")))
                .expect("addr");
            router
                .add_addr(&v.a, net(&format!("fd0{i}::1/64")))
                .expect("addr6");
            node.add_addr(&v.b, net(&format!("fd0{i}::2/64")))
                .expect("addr6");
        }
        node.set_link("lo", true).expect("lo up");
        Topo {
            _lab: lab,
            node,
            v1,
            v2,
        }
    }

    fn netns_path(&self) -> PathBuf {
        PathBuf::from(format!(
            "/var/run/netns/{}",
            self.node.name().expect("named ns")
        ))
    }

    fn routes(&self, family: Family) -> Vec<KernelRoute> {
        self.node.routes(family).expect("ip route")
    }

    /// Waits until the routes of `family` for `dst` with protocol `proto` satisfy `pred`.
    fn wait_routes(
        &self,
        what: &str,
        dst: IpNet,
        proto: &str,
        pred: impl Fn(&[KernelRoute]) -> bool,
    ) -> Vec<KernelRoute> {
        let family = Family::of(dst.addr());
        wait_for_state(
            what,
            WAIT,
            || {
                Ok(self
                    .node
                    .routes(family)?
                    .into_iter()
                    .filter(|r| r.dst == dst && r.protocol.as_deref() == Some(proto))
                    .collect::<Vec<_>>())
            },
            |rs| pred(rs),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }
}

fn ours() -> String {
    ROUTE_PROTOCOL.to_string()
}

fn gateways(r: &KernelRoute) -> NextHops {
    r.gateways().into_iter().collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn skip() -> bool {
    match require_root() {
        Ok(()) => false,
        Err(s) => {
            eprintln!("{s}");
            true
        }
    }
}

/// Our routes for `dst` in the kernel, as `ip route` shows them.
fn ours_for(t: &Topo, dst: IpNet) -> Vec<KernelRoute> {
    t.routes(Family::of(dst.addr()))
        .into_iter()
        .filter(|r| r.dst == dst && r.protocol.as_deref() == Some(ours().as_str()))
        .collect()
}

#[test]
fn driver_installs_replaces_and_deletes_ecmp_routes_and_leaves_others_alone() {
    if skip() {
        return;
    }
    let t = Topo::new();
    let rt = runtime();
    let k = rt
        .block_on(async { KernelRoutes::connect(Some(&t.netns_path()), DEFAULT_METRIC) })
        .expect("connect");

    // Somebody else's routes: one for the very prefix we will install, one unrelated.
    t.node
        .ip(&[
            "route",
            "add",
            "10.244.3.0/24",
            "via",
            "10.2.0.1",
            "proto",
            "static",
        ])
        .unwrap();
    t.node
        .add_route(net("10.9.0.0/24"), &[ip("10.1.0.1")])
        .unwrap();
    t.node
        .ip(&[
            "-6",
            "route",
            "add",
            "fd00:244:3::/64",
            "via",
            "fd02::1",
            "proto",
            "static",
        ])
        .unwrap();

    for (prefix, two, one) in [
        ("10.244.3.0/24", ["10.1.0.1", "10.2.0.1"], "10.2.0.1"),
        ("fd00:244:3::/64", ["fd01::1", "fd02::1"], "fd02::1"),
    ] {
        let p = net(prefix);
        rt.block_on(k.replace(p, &hops(&two)))
            .expect("install ECMP");
        let r = ours_for(&t, p);
        assert_eq!(r.len(), 1, "{prefix}: one route of ours: {r:?}");
        assert_eq!(gateways(&r[0]), hops(&two), "{prefix}: both next hops");
        assert_eq!(r[0].metric, Some(DEFAULT_METRIC), "{prefix}: our metric");
        let listed = rt.block_on(k.list()).expect("list");
        assert_eq!(
            listed,
            vec![InstalledRoute {
                prefix: p,
                metric: DEFAULT_METRIC,
                next_hops: hops(&two)
            }],
            "{prefix}: list() sees exactly our route"
        );

        rt.block_on(k.replace(p, &hops(&[one])))
            .expect("replace with one next hop");
        let r = ours_for(&t, p);
        assert_eq!(r.len(), 1, "{prefix}: still one route: {r:?}");
        assert_eq!(gateways(&r[0]), hops(&[one]), "{prefix}: single next hop");

        rt.block_on(k.delete(p, DEFAULT_METRIC)).expect("delete");
        assert!(ours_for(&t, p).is_empty(), "{prefix}: our route is gone");
        // Deleting what is already gone is not an error.
        rt.block_on(k.delete(p, DEFAULT_METRIC))
            .expect("delete again");
        // The other protocol's route for the same prefix was never touched.
        let family = Family::of(p.addr());
        let theirs: Vec<KernelRoute> = t
            .routes(family)
            .into_iter()
            .filter(|r| r.dst == p && r.protocol.as_deref() == Some("static"))
            .collect();
        assert_eq!(
            theirs.len(),
            1,
            "{prefix}: the static route stays: {theirs:?}"
        );
        assert_eq!(gateways(&theirs[0]), hops(&[one]));
    }
    assert!(
        t.routes(Family::V4)
            .iter()
            .any(|r| r.dst == net("10.9.0.0/24")),
        "unrelated route stays"
    );
    assert!(rt.block_on(k.list()).expect("list").is_empty());

    // The kernel's refusal (gateway not reachable) is an error, not a panic.
    let err = rt
        .block_on(k.replace(net("10.244.7.0/24"), &hops(&["10.77.0.1"])))
        .expect_err("unreachable gateway must be refused");
    assert!(
        err.to_string().contains("10.244.7.0/24"),
        "error names the route: {err}"
    );
}

#[test]
fn start_removes_stale_routes_of_a_previous_run_only() {
    if skip() {
        return;
    }
    let t = Topo::new();
    let p = ROUTE_PROTOCOL.to_string();
    // A "previous run": routes with our protocol, one at another metric, and v6.
    t.node
        .ip(&[
            "route",
            "add",
            "10.244.9.0/24",
            "via",
            "10.1.0.1",
            "proto",
            &p,
        ])
        .unwrap();
    t.node
        .ip(&[
            "route",
            "add",
            "10.244.8.0/24",
            "via",
            "10.1.0.1",
            "proto",
            &p,
            "metric",
            "5",
        ])
        .unwrap();
    t.node
        .ip(&[
            "-6",
            "route",
            "add",
            "fd00:244:9::/64",
            "via",
            "fd01::1",
            "proto",
            &p,
        ])
        .unwrap();
    // Unrelated routes.
    t.node
        .add_route(net("10.9.0.0/24"), &[ip("10.1.0.1")])
        .unwrap();
    t.node
        .ip(&[
            "route",
            "add",
            "10.244.10.0/24",
            "via",
            "10.2.0.1",
            "proto",
            "static",
        ])
        .unwrap();
    assert_eq!(
        ours_for(&t, net("10.244.9.0/24")).len(),
        1,
        "stale route set up"
    );

    let rt = runtime();
    let opts = PodRoutesOptions {
        netns: Some(t.netns_path()),
        ..Default::default()
    };
    let (_feed, learned) = learned_feed(FEED_CAPACITY);
    let (h, task) = rt.block_on(async { PodRoutes::spawn(opts, learned) });

    // No explicit pass: the start-up pass alone removes them.
    for stale in ["10.244.9.0/24", "10.244.8.0/24", "fd00:244:9::/64"] {
        t.wait_routes("stale route removed", net(stale), &p, |rs| rs.is_empty());
    }
    let v4 = t.routes(Family::V4);
    assert!(
        v4.iter().any(|r| r.dst == net("10.9.0.0/24")),
        "unrelated route stays: {v4:?}"
    );
    assert!(
        v4.iter()
            .any(|r| r.dst == net("10.244.10.0/24") && r.protocol.as_deref() == Some("static")),
        "other protocol stays: {v4:?}"
    );
    assert!(h.installed().is_empty());
    drop(h);
    rt.block_on(task)
        .expect("task ends when the handles are dropped");
}

/// A reconciler with short timers, and the learned-route feed that drives it (the one
/// the BGP speaker's sessions write to in the daemon).
fn spawn_fast(
    t: &Topo,
    rt: &tokio::runtime::Runtime,
) -> (PodRoutesHandle, LearnedSender, tokio::task::JoinHandle<()>) {
    let opts = PodRoutesOptions {
        netns: Some(t.netns_path()),
        resync_interval: Duration::from_millis(300),
        coalesce: Duration::from_millis(20),
        retry_interval: Duration::from_millis(200),
        ..Default::default()
    };
    let (feed, learned) = learned_feed(FEED_CAPACITY);
    let (h, task) = rt.block_on(async { PodRoutes::spawn(opts, learned) });
    (h, feed, task)
}

#[test]
fn reconciler_follows_learned_routes_and_repairs_hand_deleted_ones() {
    if skip() {
        return;
    }
    let t = Topo::new();
    let rt = runtime();
    let (h, feed, _task) = spawn_fast(&t, &rt);
    let p = ours();
    let (peer_a, peer_b) = (ip("10.1.0.1"), ip("10.2.0.1"));
    let pod3 = net("10.244.3.0/24");

    // Two peers offer the same prefix: ECMP.
    feed.learned(peer_a, pod3, ip("10.1.0.1"));
    feed.learned(peer_b, pod3, ip("10.2.0.1"));
    let both = hops(&["10.1.0.1", "10.2.0.1"]);
    t.wait_routes("ECMP route installed", pod3, &p, |rs| {
        rs.len() == 1 && gateways(&rs[0]) == both
    });
    let report = rt.block_on(h.reconcile_now()).expect("pass");
    assert_eq!(
        (report.applied, report.failed, report.installed),
        (0, 0, 1),
        "nothing left to do"
    );
    assert_eq!(
        h.installed(),
        vec![(pod3, both.iter().copied().collect::<Vec<_>>())]
    );

    // Deleted by hand: the periodic resync puts it back without any update.
    t.node
        .ip(&["route", "del", "10.244.3.0/24", "proto", &p])
        .unwrap();
    assert!(ours_for(&t, pod3).is_empty(), "deleted by hand");
    t.wait_routes("hand-deleted route repaired", pod3, &p, |rs| {
        rs.len() == 1 && gateways(&rs[0]) == both
    });

    // Changed by hand (one path dropped): repaired too.
    t.node
        .ip(&[
            "route",
            "replace",
            "10.244.3.0/24",
            "via",
            "10.1.0.1",
            "proto",
            &p,
            "metric",
            &DEFAULT_METRIC.to_string(),
        ])
        .unwrap();
    t.wait_routes("hand-changed route repaired", pod3, &p, |rs| {
        rs.len() == 1 && gateways(&rs[0]) == both
    });

    // One peer withdraws: single next hop. Then the other peer goes down: gone.
    feed.withdrawn(peer_a, pod3);
    t.wait_routes("withdrawn path removed", pod3, &p, |rs| {
        rs.len() == 1 && gateways(&rs[0]) == hops(&["10.2.0.1"])
    });
    // (A session going down withdraws each of its routes, as the speaker does.)
    feed.withdrawn(peer_b, pod3);
    t.wait_routes("route removed on peer down", pod3, &p, |rs| rs.is_empty());

    // Exclusions: our own pod CIDR and a LoadBalancer IP are never installed; our own
    // address as next hop is not used.
    let own = net("10.244.1.0/24");
    let lb = net("10.244.200.10/32");
    h.set_exclusions([own, lb].into_iter().collect());
    feed.learned(peer_a, own, ip("10.1.0.1"));
    feed.learned(peer_a, lb, ip("10.1.0.1"));
    feed.learned(peer_a, net("10.244.4.0/24"), ip("10.1.0.2")); // the node's own address
    feed.learned(peer_a, net("10.244.5.0/24"), ip("10.1.0.1"));
    t.wait_routes("allowed route installed", net("10.244.5.0/24"), &p, |rs| {
        rs.len() == 1
    });
    rt.block_on(h.reconcile_now()).expect("pass");
    for never in [own, lb, net("10.244.4.0/24")] {
        assert!(
            ours_for(&t, never).is_empty(),
            "{never} must not be installed"
        );
    }
    let skipped = h.skipped();
    assert!(
        skipped.contains(&(own, SkipReason::Excluded(own))),
        "{skipped:?}"
    );
    assert!(
        skipped.contains(&(lb, SkipReason::Excluded(lb))),
        "{skipped:?}"
    );
    assert!(
        skipped.contains(&(net("10.244.4.0/24"), SkipReason::NoUsableNextHop)),
        "{skipped:?}"
    );

    // A route that becomes excluded later is removed.
    h.set_exclusions([own, lb, net("10.244.5.0/24")].into_iter().collect());
    t.wait_routes(
        "newly excluded route removed",
        net("10.244.5.0/24"),
        &p,
        |rs| rs.is_empty(),
    );

    // Stop with removal leaves nothing of ours behind.
    h.set_exclusions(BTreeSet::new());
    t.wait_routes("re-allowed", net("10.244.5.0/24"), &p, |rs| rs.len() == 1);
    rt.block_on(h.stop(true)).expect("stop");
    assert!(rt.block_on(h.reconcile_now()).is_err(), "stopped");
    let left: Vec<KernelRoute> = t
        .routes(Family::V4)
        .into_iter()
        .filter(|r| r.protocol.as_deref() == Some(p.as_str()))
        .collect();
    assert!(left.is_empty(), "stop(true) removes our routes: {left:?}");
}

#[test]
fn netlink_errors_are_retried_not_fatal() {
    if skip() {
        return;
    }
    let t = Topo::new();
    let rt = runtime();
    let (h, feed, task) = spawn_fast(&t, &rt);
    let p = ours();
    let pod = net("10.244.7.0/24");
    // The gateway is not reachable yet: the kernel refuses the route.
    feed.learned(ip("10.1.0.1"), pod, ip("10.77.0.1"));
    let report = rt.block_on(h.reconcile_now()).expect("pass");
    assert_eq!(
        report.failed, 1,
        "the refused route is reported: {report:?}"
    );
    assert!(ours_for(&t, pod).is_empty());
    assert!(!task.is_finished(), "an error is not fatal");
    // Once it is reachable, the retry installs it without any further update.
    t.node.add_addr(&t.v1.b, net("10.77.0.2/24")).unwrap();
    t.wait_routes("retried route installed", pod, &p, |rs| {
        rs.len() == 1 && gateways(&rs[0]) == hops(&["10.77.0.1"])
    });

    // A namespace that does not exist: every pass fails, the task lives on.
    let opts = PodRoutesOptions {
        netns: Some(PathBuf::from("/var/run/netns/ferrolb-no-such-namespace")),
        ..Default::default()
    };
    let (_feed2, learned2) = learned_feed(FEED_CAPACITY);
    let (h2, task2) = rt.block_on(async { PodRoutes::spawn(opts, learned2) });
    let report = rt.block_on(h2.reconcile_now()).expect("pass");
    assert_eq!(report.failed, 1, "{report:?}");
    assert!(!task2.is_finished());
}

/// The daemon's pod-route installer, fed through the same channels the speaker uses:
/// the learned-route feed (which the BGP sessions write to), the daemon's context and
/// the Nodes' pod CIDRs.
struct RunningInstaller {
    routes: LearnedSender,
    context: tokio::sync::watch::Sender<ferrolb_speaker::learned::PodRouteContext>,
    report: tokio::sync::watch::Receiver<ferrolb_speaker::learned::PodRouteReport>,
    cancel: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
    _node_pod_cidrs: tokio::sync::watch::Sender<Option<BTreeSet<IpNet>>>,
}

impl RunningInstaller {
    fn start(
        rt: &tokio::runtime::Runtime,
        opts: PodRoutesOptions,
        node_pod_cidrs: Option<&[&str]>,
    ) -> RunningInstaller {
        Self::start_with(rt, opts, node_pod_cidrs, false)
    }

    /// [`RunningInstaller::start`]; `keep_routes_on_stop` as the daemon sets it for
    /// `--on-sigterm restart`.
    fn start_with(
        rt: &tokio::runtime::Runtime,
        opts: PodRoutesOptions,
        node_pod_cidrs: Option<&[&str]>,
        keep_routes_on_stop: bool,
    ) -> RunningInstaller {
        use ferrolb_speaker::learned::{PodRouteContext, PodRouteFeed, PodRouteReport};
        use tokio::sync::watch;

        let (routes, learned) = learned_feed(FEED_CAPACITY);
        let (context, context_rx) = watch::channel(PodRouteContext::default());
        let cidrs = node_pod_cidrs.map(|l| l.iter().map(|s| net(s)).collect());
        let (node_tx, node_rx) = watch::channel(cidrs);
        let (report_tx, report) = watch::channel(PodRouteReport::default());
        let cancel = tokio_util::sync::CancellationToken::new();
        let feed = PodRouteFeed {
            routes: learned,
            context: context_rx,
            node_pod_cidrs: node_rx,
            report: report_tx,
            cancel: cancel.clone(),
            keep_routes_on_stop,
        };
        let task = {
            let _enter = rt.enter();
            ferrolb_speaker::podroutes::installer(opts)(feed)
        };
        RunningInstaller {
            routes,
            context,
            report,
            cancel,
            task,
            _node_pod_cidrs: node_tx,
        }
    }

    /// Cancels the feed, as the daemon does at shutdown, and waits for the installer.
    fn stop(self, rt: &tokio::runtime::Runtime) {
        self.cancel.cancel();
        rt.block_on(self.task).expect("installer ends on cancel");
    }
}

#[test]
fn installer_follows_the_daemons_learned_table_and_cleans_up_on_shutdown() {
    use ferrolb_speaker::learned::{InstalledRoute as Row, PodRouteContext};

    if skip() {
        return;
    }
    let t = Topo::new();
    let rt = runtime();
    let p = ours();
    let inst = RunningInstaller::start(
        &rt,
        PodRoutesOptions {
            netns: Some(t.netns_path()),
            coalesce: Duration::from_millis(20),
            retry_interval: Duration::from_millis(200),
            ..Default::default()
        },
        Some(&["10.244.0.0/16"]),
    );
    let (feed, report_rx) = (&inst.routes, &inst.report);

    let pod3 = net("10.244.3.0/24");
    let own = net("10.244.1.0/24");
    let unreachable = net("10.244.7.0/24");
    inst.context.send_replace(PodRouteContext {
        local_pod_cidrs: vec![own],
        ..Default::default()
    });
    feed.learned(ip("10.1.0.1"), pod3, ip("10.1.0.1"));
    feed.learned(ip("10.2.0.1"), pod3, ip("10.2.0.1"));
    feed.learned(ip("10.1.0.1"), own, ip("10.1.0.1"));
    feed.learned(ip("10.1.0.1"), unreachable, ip("10.77.0.1"));

    let both = hops(&["10.1.0.1", "10.2.0.1"]);
    t.wait_routes("ECMP route from the feed", pod3, &p, |rs| {
        rs.len() == 1 && gateways(&rs[0]) == both
    });
    let rows = wait_for_state(
        "installer report",
        WAIT,
        || Ok(report_rx.borrow().routes.clone()),
        |rows: &Vec<Row>| rows.len() == 2,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows[0].prefix, pod3);
    assert_eq!(rows[0].next_hops, vec![ip("10.1.0.1"), ip("10.2.0.1")]);
    assert_eq!(rows[0].error, None);
    assert_eq!(rows[1].prefix, unreachable, "the refused route is reported");
    assert!(rows[1].error.is_some(), "{rows:?}");
    assert!(
        ours_for(&t, own).is_empty(),
        "our own pod CIDR (from the feed) is excluded"
    );

    // Withdrawn by both peers: it goes.
    feed.withdrawn(ip("10.1.0.1"), pod3);
    feed.withdrawn(ip("10.2.0.1"), pod3);
    t.wait_routes("route gone with the table", pod3, &p, |rs| rs.is_empty());

    // Back again, then shutdown removes it.
    feed.learned(ip("10.1.0.1"), pod3, ip("10.1.0.1"));
    t.wait_routes("route back", pod3, &p, |rs| rs.len() == 1);
    inst.stop(&rt);
    assert!(ours_for(&t, pod3).is_empty(), "shutdown removes our routes");
}

/// A stop for a restart (`--on-sigterm restart`) leaves the routes in the kernel for the
/// next instance to adopt, so pods keep reaching the other nodes meanwhile.
#[test]
fn restart_stop_leaves_the_routes_for_the_next_instance() {
    if skip() {
        return;
    }
    let t = Topo::new();
    let rt = runtime();
    let p = ours();
    let inst = RunningInstaller::start_with(
        &rt,
        PodRoutesOptions {
            netns: Some(t.netns_path()),
            coalesce: Duration::from_millis(20),
            ..Default::default()
        },
        Some(&["10.244.0.0/16"]),
        true,
    );
    let pod3 = net("10.244.3.0/24");
    inst.routes.learned(ip("10.1.0.1"), pod3, ip("10.1.0.1"));
    t.wait_routes("route in", pod3, &p, |rs| rs.len() == 1);
    inst.stop(&rt);
    assert_eq!(
        ours_for(&t, pod3).len(),
        1,
        "a restart leaves our routes for the successor"
    );
}

/// One unusable gateway must not take a whole ECMP route down: the kernel refuses a
/// multipath route if any gateway is unreachable, so the route goes in over the others,
/// the refused one is reported, retries do not touch the route, and the full set returns
/// once the kernel accepts it. Also when a link goes down under a live session.
#[test]
fn ecmp_route_goes_in_over_the_usable_next_hops_and_recovers() {
    if skip() {
        return;
    }
    let t = Topo::new();
    let rt = runtime();
    let (h, feed, _task) = spawn_fast(&t, &rt);
    let p = ours();
    let pod4 = net("10.244.4.0/24");
    feed.learned(ip("10.1.0.1"), pod4, ip("10.1.0.1"));
    feed.learned(ip("10.2.0.1"), pod4, ip("10.2.0.1"));
    // A third peer offers a next hop on no connected network.
    feed.learned(ip("10.3.0.1"), pod4, ip("10.77.0.1"));
    let report = rt.block_on(h.reconcile_now()).expect("pass");
    assert_eq!(report.failed, 1, "partial install is retried: {report:?}");
    let two = hops(&["10.1.0.1", "10.2.0.1"]);
    let rs = ours_for(&t, pod4);
    assert!(
        rs.len() == 1 && gateways(&rs[0]) == two,
        "installed over the usable next hops: {rs:?}"
    );
    let snap = h.subscribe().borrow().clone();
    let failed: Vec<_> = snap.failed.iter().filter(|f| f.0 == pod4).collect();
    assert_eq!(failed.len(), 1, "{snap:?}");
    assert_eq!(
        failed[0].1,
        vec![ip("10.77.0.1")],
        "only the refused hop is reported"
    );
    assert!(
        failed[0].2.contains("next hop 10.77.0.1 refused"),
        "{}",
        failed[0].2
    );

    // Retries leave the route alone: `ip monitor` sees no change for it.
    let log = t.node.dir().join("monitor.log");
    let monitor = t
        .node
        .spawn_logged("ip", &["monitor", "route"], &log)
        .expect("ip monitor");
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..3 {
        let r = rt.block_on(h.reconcile_now()).expect("pass");
        assert_eq!(r.failed, 1, "{r:?}");
    }
    std::thread::sleep(Duration::from_millis(300));
    monitor.kill();
    let seen = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !seen.contains("10.244.4.0/24"),
        "retries changed the route:\n{seen}"
    );

    // The third gateway becomes reachable: the retry adds it without any BGP update.
    t.node.add_addr(&t.v1.b, net("10.77.0.2/24")).unwrap();
    let three = hops(&["10.1.0.1", "10.2.0.1", "10.77.0.1"]);
    t.wait_routes("all three next hops", pod4, &p, |rs| {
        rs.len() == 1 && gateways(&rs[0]) == three
    });

    // A link goes down while its session is still up: a route learned now goes in over
    // the other link, and gets both once the link is back.
    t.node.set_link(&t.v2.b, false).expect("link down");
    let pod5 = net("10.244.5.0/24");
    feed.learned(ip("10.1.0.1"), pod5, ip("10.1.0.1"));
    feed.learned(ip("10.2.0.1"), pod5, ip("10.2.0.1"));
    t.wait_routes("route over the remaining link", pod5, &p, |rs| {
        rs.len() == 1 && gateways(&rs[0]) == hops(&["10.1.0.1"])
    });
    t.node.set_link(&t.v2.b, true).expect("link up");
    t.wait_routes("both next hops again", pod5, &p, |rs| {
        rs.len() == 1 && gateways(&rs[0]) == two
    });
}

/// `--pod-route-allow`: the daemon's flag reaches the installer, and a learned prefix
/// outside the allow-list (a router leaking other routes) stays out of the kernel.
#[test]
fn pod_route_allow_flag_keeps_leaked_routes_out_of_the_kernel() {
    use clap::Parser;
    use ferrolb_speaker::cli::Cli;

    if skip() {
        return;
    }
    let t = Topo::new();
    let rt = runtime();
    let p = ours();
    let cli = Cli::try_parse_from([
        "ferrolb-speaker",
        "--node-name",
        "n",
        "--pod-cidr-mode",
        "advertise-and-install",
        "--pod-route-allow",
        "10.244.0.0/16,fd00:10:244::/56",
    ])
    .expect("flags");
    let inst = RunningInstaller::start(
        &rt,
        PodRoutesOptions {
            netns: Some(t.netns_path()),
            coalesce: Duration::from_millis(20),
            ..cli.pod_routes_options()
        },
        None,
    );

    let pod = net("10.244.3.0/24");
    let leaked = net("192.0.2.0/24");
    let pod6 = net("fd00:10:244:3::/64");
    let leaked6 = net("2001:db8::/48");
    for (prefix, nh) in [
        (pod, "10.1.0.1"),
        (leaked, "10.1.0.1"),
        (pod6, "fd01::1"),
        (leaked6, "fd01::1"),
    ] {
        inst.routes.learned(ip(nh), prefix, ip(nh));
    }

    // One pass handles the whole table: once the allowed routes are in, the others were
    // considered too.
    t.wait_routes("allowed IPv4 route", pod, &p, |rs| rs.len() == 1);
    t.wait_routes("allowed IPv6 route", pod6, &p, |rs| rs.len() == 1);
    assert!(
        ours_for(&t, leaked).is_empty(),
        "192.0.2.0/24 is outside the allow-list"
    );
    assert!(
        ours_for(&t, leaked6).is_empty(),
        "2001:db8::/48 is outside the allow-list"
    );

    inst.stop(&rt);
    assert!(ours_for(&t, pod).is_empty(), "shutdown removes our routes");
}

/// Scale: 2,000 pod CIDRs from two peers (ECMP) are installed in one burst and all
/// removed when both peers go down. Prints how long each took.
#[test]
fn two_thousand_ecmp_routes_install_and_go_away() {
    if skip() {
        return;
    }
    let t = Topo::new();
    let rt = runtime();
    // Passes only when asked, so that each one's work can be counted.
    let opts = PodRoutesOptions {
        netns: Some(t.netns_path()),
        coalesce: Duration::from_secs(600),
        resync_interval: Duration::from_secs(600),
        ..Default::default()
    };
    let (feed, learned) = learned_feed(FEED_CAPACITY);
    let (h, _task) = rt.block_on(async { PodRoutes::spawn(opts, learned) });
    rt.block_on(h.reconcile_now()).expect("start-up pass");
    let (a, b) = (ip("10.1.0.1"), ip("10.2.0.1"));
    let prefixes: Vec<IpNet> = (0..2000u32)
        .map(|i| net(&format!("10.{}.{}.0/24", 100 + i / 256, i % 256)))
        .collect();
    let started = std::time::Instant::now();
    for p in &prefixes {
        feed.learned(a, *p, a);
        feed.learned(b, *p, b);
    }
    let report = rt.block_on(h.reconcile_now()).expect("pass");
    let install = started.elapsed();
    assert_eq!(
        (report.applied, report.failed, report.installed),
        (2000, 0, 2000)
    );
    let kernel: Vec<KernelRoute> = t
        .routes(Family::V4)
        .into_iter()
        .filter(|r| r.protocol.as_deref() == Some(ours().as_str()))
        .collect();
    assert_eq!(kernel.len(), 2000);
    assert!(
        kernel.iter().all(|r| r.gateways().len() == 2),
        "every route is ECMP"
    );

    let started = std::time::Instant::now();
    let report = rt.block_on(h.reconcile_now()).expect("pass");
    let idle = started.elapsed();
    assert_eq!(
        (report.applied, report.installed),
        (0, 2000),
        "nothing to do"
    );

    let started = std::time::Instant::now();
    // Both sessions go down: the speaker withdraws each of their routes.
    for p in &prefixes {
        feed.withdrawn(a, *p);
        feed.withdrawn(b, *p);
    }
    let report = rt.block_on(h.reconcile_now()).expect("pass");
    let remove = started.elapsed();
    assert_eq!(
        (report.applied, report.failed, report.installed),
        (2000, 0, 0)
    );
    eprintln!("2000 ECMP routes: install {install:?}, idle pass {idle:?}, remove {remove:?}");
}

/// `apply_all` writes many routes per system call (one acknowledgement per batch): each
/// op still gets its own result, a refused route in the middle of a batch fails alone,
/// and the kernel ends up with exactly the routes that succeeded.
#[test]
fn batched_writes_report_each_refusal_and_install_the_rest() {
    use ferrolb_speaker::podroutes::desired::Op;
    if skip() {
        return;
    }
    let t = Topo::new();
    let rt = runtime();
    let k = rt
        .block_on(async { KernelRoutes::connect(Some(&t.netns_path()), DEFAULT_METRIC) })
        .expect("connect");
    // 200 ops, more than three batches: every 7th over a gateway nobody can reach.
    let refused = |i: u32| i % 7 == 3;
    let prefix = |i: u32| net(&format!("10.{}.{}.0/24", 100 + i / 200, i % 200));
    let ops: Vec<Op> = (0..200)
        .map(|i| Op::Replace {
            prefix: prefix(i),
            next_hops: hops(&[if refused(i) { "10.77.0.1" } else { "10.1.0.1" }]),
        })
        .chain([Op::Replace {
            prefix: net("fd00:244:9::/64"),
            next_hops: hops(&["fd01::1"]),
        }])
        .collect();
    let results = rt.block_on(k.apply_all(&ops));
    assert_eq!(results.len(), ops.len(), "one result per op");
    for (i, r) in results.iter().enumerate().take(200) {
        if refused(i as u32) {
            let e = r.as_ref().expect_err("unreachable gateway refused");
            assert!(
                e.to_string().contains(&prefix(i as u32).to_string()),
                "error names the route: {e}"
            );
            assert!(
                !e.is_connection_lost(),
                "a refusal is not a lost socket: {e}"
            );
        } else {
            assert!(r.is_ok(), "op {i}: {r:?}");
        }
    }
    assert!(
        results[200].is_ok(),
        "IPv6 in the same call: {:?}",
        results[200]
    );
    let listed = rt.block_on(k.list()).expect("list");
    let want: BTreeSet<IpNet> = (0..200)
        .filter(|i| !refused(*i))
        .map(prefix)
        .chain([net("fd00:244:9::/64")])
        .collect();
    let got: BTreeSet<IpNet> = listed.iter().map(|r| r.prefix).collect();
    assert_eq!(got, want, "exactly the accepted routes are in the kernel");

    // A dump is read one part at a time on the write socket. A reader dropped after its
    // first part (a cancelled pass) leaves the rest of that dump queued; the next
    // request still gets its own answers, and the next dump all routes, once each.
    let mut parts = 0;
    rt.block_on(async {
        let mut dump = std::pin::pin!(k.for_each_route(|_| parts += 1));
        assert!(
            futures::poll!(dump.as_mut()).is_pending(),
            "the dump lets other tasks run after its first part"
        );
    });
    assert!(parts > 0 && parts < want.len(), "stopped part-way: {parts}");
    rt.block_on(k.replace(net("10.99.0.0/24"), &hops(&["10.1.0.1"])))
        .expect("a write after an abandoned dump");
    let listed = rt.block_on(k.list()).expect("list after an abandoned dump");
    let got: Vec<IpNet> = listed.iter().map(|r| r.prefix).collect();
    let mut want_now: Vec<IpNet> = want.iter().copied().collect();
    want_now.push(net("10.99.0.0/24"));
    want_now.sort();
    assert_eq!(got, want_now, "every route once after an abandoned dump");
    rt.block_on(k.delete(net("10.99.0.0/24"), DEFAULT_METRIC))
        .expect("delete");

    // Deletes in batches: present ones go, absent ones are no error.
    let deletes: Vec<Op> = (0..200)
        .map(|i| Op::Delete {
            prefix: prefix(i),
            metric: DEFAULT_METRIC,
        })
        .collect();
    let results = rt.block_on(k.apply_all(&deletes));
    assert!(
        results.iter().all(Result::is_ok),
        "deleting routes, some never installed: {results:?}"
    );
    let left: Vec<IpNet> = rt
        .block_on(k.list())
        .expect("list")
        .into_iter()
        .map(|r| r.prefix)
        .collect();
    assert_eq!(left, [net("fd00:244:9::/64")]);
}
