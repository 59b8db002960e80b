//! End-to-end tests of planned restarts and drains (issue 13) in the netns lab, with BIRD
//! and FRR as the router (both act as graceful-restart helpers and honour the
//! GRACEFUL_SHUTDOWN community through the lab's import policy):
//!
//! - graceful restart (RFC 4724): with `ferrolb-graceful-restart` on the peer, a speaker
//!   stopped with SIGTERM (`--on-sigterm restart`, the default) and started again never
//!   leaves the router's FIB (sampled every 10 ms); a speaker that stays away is dropped
//!   by the router after the restart time, not before;
//! - graceful shutdown (RFC 8326): `--on-sigterm drain` re-announces the node's Service
//!   routes with 65535:0 (the router gives them LOCAL_PREF 0, so its FIB leaves the node
//!   while the route is still there), and withdraws them after `--drain-period`; the
//!   exclusion label (and, with `--drain-on-cordon`, a cordon) does the same without a
//!   stop. Client requests in the drain all succeed, none on the drained node;
//! - graceful restart with BFD, and a speaker restart under client traffic (nothing
//!   breaks); the issue's benchmark is `bench_rolling_restart_and_drain` (ignored).
//!
//! Root and the router's binaries are required (skipped with a message otherwise); each
//! lab has unique names and is torn down on drop, also on panic.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ferrolb_lab::k8s;
use ferrolb_lab::netlab::{ApiServerKind, NetLab};
use ferrolb_lab::router::RouterKind;
use ferrolb_lab::topology::{Names, addr};
use ferrolb_lab::traffic::{Background, Load, Report};
use ferrolb_netns::Signal;
use ipnet::IpNet;

/// The seed configuration; graceful restart on the peer with this restart time.
fn config(restart_time: Option<u32>) -> String {
    let gr = restart_time.map_or(String::new(), |t| {
        format!("  ferrolb-graceful-restart: true\n  ferrolb-graceful-restart-time: {t}s\n")
    });
    format!(
        "peers:\n- peer-address: 172.17.0.1\n  peer-asn: 64512\n  my-asn: 64522\n{gr}\
         address-pools:\n- name: default\n  protocol: bgp\n  avoid-buggy-ips: true\n  \
         addresses:\n  - 172.17.254.0/24\n"
    )
}

fn up(router: RouterKind, config: String, speaker_args: &[&str]) -> Option<NetLab> {
    let mut spec = ferrolb_lab::testing::spec_with_router(router)?;
    // The restart and drain behaviour is the speaker's and the router's; the lab API
    // server keeps these tests fast (the API edges are tested on both servers elsewhere).
    spec.apiserver = ApiServerKind::Lab;
    spec.config = config;
    spec.speaker_args = speaker_args.iter().map(|s| s.to_string()).collect();
    Some(NetLab::up(spec, &mut |_| {}).unwrap_or_else(|e| panic!("{router:?}: {e:#}")))
}

use ferrolb_lab::testing::node_ips as nodes;

fn ready(lab: &NetLab) -> IpNet {
    ferrolb_lab::testing::host(ferrolb_lab::testing::seed_ready(lab))
}

/// Samples the router's FIB next hops for `prefix` every 10 ms until stopped; returns
/// the samples that lacked `node` (with their time since the start).
struct FibWatch {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<(usize, Vec<Duration>)>,
}

impl FibWatch {
    fn start(lab: &NetLab, prefix: IpNet, node: IpAddr) -> FibWatch {
        let router = lab.router().clone();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let start = Instant::now();
            let (mut samples, mut missing) = (0, Vec::new());
            while !flag.load(Ordering::Relaxed) {
                if let Ok(fib) = router.fib() {
                    samples += 1;
                    let has = fib
                        .iter()
                        .any(|r| r.dst == prefix && r.gateways().contains(&node));
                    if !has {
                        missing.push(start.elapsed());
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            (samples, missing)
        });
        FibWatch { stop, handle }
    }

    fn finish(self) -> (usize, Vec<Duration>) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("sampler")
    }
}

fn graceful_restart_keeps_routes_then_expires(router: RouterKind) {
    let restart_time = 6;
    let Some(lab) = up(router, config(Some(restart_time)), &[]) else {
        return;
    };
    let prefix = ready(&lab);
    let node3 = IpAddr::V4(addr::node(3));

    // A planned restart of node 3's speaker: SIGTERM (the default --on-sigterm restart),
    // a second away, started again. The router's FIB never loses node 3.
    let watch = FibWatch::start(&lab, prefix, node3);
    std::thread::sleep(Duration::from_millis(200));
    lab.stop("speaker-3", Signal::SIGTERM).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    lab.start_speaker(3).unwrap();
    lab.wait_sessions(3, Duration::from_secs(20))
        .expect("node 3's session back");
    // Past the new session's End-of-RIB, when a helper drops what was not refreshed.
    std::thread::sleep(Duration::from_secs(2));
    let (samples, missing) = watch.finish();
    assert!(samples > 100, "{router:?}: only {samples} FIB samples");
    assert!(
        missing.is_empty(),
        "{router:?}: node 3 left the FIB during a graceful restart at {missing:?} ({samples} samples)"
    );
    assert_eq!(lab.fib_next_hops(prefix).unwrap(), nodes(&[1, 2, 3]));

    // Stopped for a restart that never comes: the router keeps node 3 for the restart
    // time, then drops it by itself.
    let t0 = Instant::now();
    lab.stop("speaker-3", Signal::SIGTERM).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        lab.fib_next_hops(prefix).unwrap(),
        nodes(&[1, 2, 3]),
        "{router:?}: kept while the restart time runs"
    );
    lab.wait(
        "node 3 gone after the restart time",
        Duration::from_secs(u64::from(restart_time) + 10),
        || Ok((lab.fib_next_hops(prefix)? == nodes(&[1, 2])).then_some(())),
    )
    .unwrap_or_else(|e| panic!("{router:?}: {e:#}"));
    let gone = t0.elapsed();
    eprintln!(
        "{router:?}: stale routes dropped {gone:?} after the stop (restart time {restart_time}s)"
    );
    assert!(
        gone >= Duration::from_secs(u64::from(restart_time) - 1),
        "{router:?}: dropped after {gone:?}, before the restart time"
    );
}

/// The seed configuration with graceful restart (`GR_BFD_RESTART_TIME`) and a 300 ms x 3
/// BFD profile.
fn config_gr_bfd() -> String {
    format!(
        "peers:\n- peer-address: 172.17.0.1\n  peer-asn: 64512\n  my-asn: 64522\n  \
         bfd-profile: lab\n  ferrolb-graceful-restart: true\n  \
         ferrolb-graceful-restart-time: {GR_BFD_RESTART_TIME}s\n\
         bfd-profiles:\n- name: lab\n  receive-interval: 300\n  transmit-interval: 300\n  \
         detect-multiplier: 3\n\
         address-pools:\n- name: default\n  protocol: bgp\n  avoid-buggy-ips: true\n  \
         addresses:\n  - 172.17.254.0/24\n"
    )
}

const GR_BFD_RESTART_TIME: u64 = 8;

fn router_bfd_up(lab: &NetLab, n: u8) {
    lab.wait(
        &format!("router BFD to node {n} up"),
        Duration::from_secs(20),
        || {
            let s = lab.router().bfd_sessions()?;
            Ok(s.iter()
                .any(|(ip, st, _)| *ip == IpAddr::V4(addr::node(n)) && st == "up")
                .then_some(()))
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
}

/// Polls the router's FIB every 10 ms until `prefix` has no path via node `n`; returns
/// how long that took, or `None` if it still had one after `timeout`.
fn time_until_gone(lab: &NetLab, prefix: IpNet, n: u8, timeout: Duration) -> Option<Duration> {
    let node = IpAddr::V4(addr::node(n));
    let start = Instant::now();
    while start.elapsed() < timeout {
        if lab
            .fib_next_hops(prefix)
            .is_ok_and(|hops| !hops.contains(&node))
        {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

fn restart_node3(lab: &NetLab, prefix: IpNet) {
    lab.start_speaker(3).unwrap();
    lab.wait_paths(prefix, 3, Duration::from_secs(30))
        .expect("node 3 back");
    router_bfd_up(lab, 3);
}

/// Graceful restart together with BFD (300 ms x 3), as the routers really behave:
///
/// - a node that dies (link down, then the speaker killed: nothing reaches the router)
///   leaves within BFD's detection time with both routers: BFD goes Down while the BGP
///   session is still Established, which ends it without graceful restart;
/// - a crashed speaker on a live node (SIGKILL: the kernel closes the TCP connection
///   without a NOTIFICATION, as in a restart): BIRD ends its helper mode on the BFD Down
///   that follows and drops the node within about a second; FRR 8.4 stays in helper mode
///   (the BGP session was already down when BFD went Down) and keeps the node, which
///   still forwards, for the restart time;
/// - a planned restart (SIGTERM, BFD AdminDown): FRR keeps the node throughout; BIRD
///   treats the peer's AdminDown as a failure and drops the node at once, so with BIRD,
///   BFD and graceful restart do not combine for planned restarts (docs say so).
fn graceful_restart_with_bfd(router: RouterKind) {
    if router == RouterKind::Frr && !std::path::Path::new("/usr/lib/frr/bfdd").exists() {
        eprintln!("skipping FRR: /usr/lib/frr/bfdd not installed");
        return;
    }
    let Some(mut spec) = ferrolb_lab::testing::spec_with_router(router) else {
        return;
    };
    spec.apiserver = ApiServerKind::Lab;
    spec.router_bfd = Some(ferrolb_lab::router::RouterBfd::symmetric(300, 3));
    spec.config = config_gr_bfd();
    let lab = NetLab::up(spec, &mut |_| {}).unwrap_or_else(|e| panic!("{router:?}: {e:#}"));
    let prefix = ready(&lab);
    router_bfd_up(&lab, 3);
    let restart_time = Duration::from_secs(GR_BFD_RESTART_TIME);

    // A dead node.
    ferrolb_lab::topology::set_node_link(lab.names(), 3, false).unwrap();
    lab.stop("speaker-3", Signal::SIGKILL).unwrap();
    let dead = time_until_gone(&lab, prefix, 3, Duration::from_secs(10));
    ferrolb_lab::topology::set_node_link(lab.names(), 3, true).unwrap();
    eprintln!("{router:?}: dead node with GR + BFD left the FIB after {dead:?}");
    assert!(
        dead.is_some_and(|d| d < Duration::from_secs(2)),
        "{router:?}: a dead node must leave within BFD's detection time: {dead:?}"
    );
    restart_node3(&lab, prefix);

    // A crashed speaker on a live node.
    lab.stop("speaker-3", Signal::SIGKILL).unwrap();
    let crashed = time_until_gone(&lab, prefix, 3, restart_time + Duration::from_secs(5));
    eprintln!("{router:?}: crashed speaker with GR + BFD left the FIB after {crashed:?}");
    match router {
        RouterKind::Bird => assert!(
            crashed.is_some_and(|d| d < Duration::from_secs(3)),
            "BIRD ends the helper mode on BFD Down: {crashed:?}"
        ),
        _ => assert!(
            crashed.is_some_and(|d| d >= restart_time - Duration::from_secs(1)),
            "FRR keeps a crashed speaker's routes for the restart time: {crashed:?}"
        ),
    }
    restart_node3(&lab, prefix);

    // A planned restart.
    let watch = FibWatch::start(&lab, prefix, IpAddr::V4(addr::node(3)));
    std::thread::sleep(Duration::from_millis(200));
    lab.stop("speaker-3", Signal::SIGTERM).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    restart_node3(&lab, prefix);
    std::thread::sleep(Duration::from_secs(2));
    let (samples, missing) = watch.finish();
    eprintln!(
        "{router:?}: planned restart with GR + BFD: node 3 missing in {} of {samples} samples",
        missing.len()
    );
    match router {
        RouterKind::Bird => assert!(
            !missing.is_empty(),
            "BIRD drops the node on the peer's BFD AdminDown; if this changed, update the docs"
        ),
        _ => assert!(
            missing.is_empty(),
            "FRR keeps the node through a planned restart with BFD: missing at {missing:?}"
        ),
    }
}

/// Without graceful restart on the peer, the default `--on-sigterm restart` still sends a
/// Cease: the node leaves the router at once, as before.
fn without_graceful_restart_sigterm_withdraws_at_once(router: RouterKind) {
    let Some(lab) = up(router, config(None), &[]) else {
        return;
    };
    let prefix = ready(&lab);
    let t0 = Instant::now();
    lab.stop("speaker-3", Signal::SIGTERM).unwrap();
    lab.wait("node 3 gone", Duration::from_secs(5), || {
        Ok((lab.fib_next_hops(prefix)? == nodes(&[1, 2])).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{router:?}: {e:#}"));
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
}

/// Requests from the client during a drain: every one answered, none by `drained`.
fn requests_avoid(lab: &NetLab, prefix: IpNet, drained: u8) {
    let IpNet::V4(p) = prefix else { unreachable!() };
    let target = SocketAddr::new(IpAddr::V4(p.addr()), k8s::SERVICE_PORT);
    let answers = lab.http_from(&lab.names().client(), target, 20).unwrap();
    let seen: BTreeSet<String> = answers
        .iter()
        .map(|a| {
            ferrolb_lab::echo::parse_body(a)
                .unwrap_or_else(|| panic!("failed request during the drain: {a:?}"))
                .0
        })
        .collect();
    assert!(
        !seen.contains(&Names::node_name(drained)),
        "the drained node still got requests: {answers:?}"
    );
}

/// Waits until node `n`'s path to `prefix` carries GRACEFUL_SHUTDOWN on the router;
/// returns every such path with its LOCAL_PREF.
fn wait_gshut_path(lab: &NetLab, prefix: IpNet, n: u8) -> Vec<(IpAddr, Option<u32>)> {
    lab.wait(
        &format!("node {n}'s path with GRACEFUL_SHUTDOWN"),
        Duration::from_secs(3),
        || {
            let paths = lab.router().graceful_shutdown_paths(prefix)?;
            Ok(paths
                .iter()
                .any(|(h, _)| *h == IpAddr::V4(addr::node(n)))
                .then_some(paths))
        },
    )
    .unwrap_or_else(|e| panic!("{:?}: {e:#}", lab.spec().router))
}

/// Waits until the router's RIB has no path to `prefix` via node `n`.
fn wait_withdrawn(lab: &NetLab, prefix: IpNet, n: u8, timeout: Duration) {
    lab.wait(&format!("node {n}'s path withdrawn"), timeout, || {
        let rib = lab.rib_next_hops(prefix)?;
        Ok((!rib.contains(&IpAddr::V4(addr::node(n)))).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{:?}: {e:#}", lab.spec().router));
}

/// Merge-patches node `n`'s Node object.
fn patch_node(lab: &NetLab, n: u8, patch: serde_json::Value) {
    lab.kube(move |c| async move {
        let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(c);
        nodes
            .patch(
                &Names::node_name(n),
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(patch),
            )
            .await?;
        Ok(())
    })
    .unwrap();
}

fn drain_on_sigterm_label_and_cordon(router: RouterKind) {
    let period: u32 = 4;
    let Some(lab) = up(
        router,
        config(None),
        &[
            "--on-sigterm",
            "drain",
            "--drain-period",
            &period.to_string(),
            "--drain-on-cordon",
        ],
    ) else {
        return;
    };
    let prefix = ready(&lab);

    // SIGTERM on node 3: its path stays in the RIB with 65535:0 and LOCAL_PREF 0, the FIB
    // moves to nodes 1 and 2, the process still runs; after the period the path is gone.
    let pid = lab.pid("speaker-3").expect("speaker-3 runs");
    let t0 = Instant::now();
    ferrolb_lab::procs::signal(pid, Signal::SIGTERM);
    let marked = wait_gshut_path(&lab, prefix, 3);
    assert!(
        marked.iter().all(|(_, lp)| *lp == Some(0)),
        "{router:?}: the router's policy gives drained paths LOCAL_PREF 0: {marked:?}"
    );
    lab.wait("FIB without node 3", Duration::from_secs(3), || {
        Ok((lab.fib_next_hops(prefix)? == nodes(&[1, 2])).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{router:?}: {e:#}"));
    let moved = t0.elapsed();
    assert!(
        lab.pid("speaker-3").is_some(),
        "{router:?}: the speaker waits out the drain period"
    );
    requests_avoid(&lab, prefix, 3);
    assert!(
        ferrolb_lab::procs::wait_gone(&[pid], Duration::from_secs(u64::from(period) + 5))
            .is_empty(),
        "{router:?}: speaker-3 exits after the drain period"
    );
    let exited = t0.elapsed();
    eprintln!(
        "{router:?}: SIGTERM drain: FIB moved after {moved:?}, speaker gone after {exited:?}"
    );
    assert!(
        exited >= Duration::from_secs(u64::from(period) - 1),
        "{router:?}: exited after {exited:?}, before the drain period"
    );
    wait_withdrawn(&lab, prefix, 3, Duration::from_secs(5));

    // The exclusion label on node 2: the same drain without a stop.
    let t0 = Instant::now();
    patch_node(
        &lab,
        2,
        serde_json::json!({"metadata": {"labels": {
            "node.kubernetes.io/exclude-from-external-load-balancers": ""}}}),
    );
    wait_gshut_path(&lab, prefix, 2);
    lab.wait("FIB on node 1 only", Duration::from_secs(3), || {
        Ok((lab.fib_next_hops(prefix)? == nodes(&[1])).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{router:?}: {e:#}"));
    requests_avoid(&lab, prefix, 2);
    wait_withdrawn(&lab, prefix, 2, Duration::from_secs(u64::from(period) + 5));
    assert!(
        t0.elapsed() >= Duration::from_secs(u64::from(period) - 1),
        "{router:?}: withdrawn after {:?}, before the drain period",
        t0.elapsed()
    );

    // A cordon on node 1 (`--drain-on-cordon`): drained the same way, then withdrawn.
    patch_node(
        &lab,
        1,
        serde_json::json!({"spec": {"unschedulable": true}}),
    );
    wait_gshut_path(&lab, prefix, 1);
    wait_withdrawn(&lab, prefix, 1, Duration::from_secs(u64::from(period) + 5));
}

/// One speaker after another restarted under client traffic (SIGTERM, a second away,
/// started, sessions and paths back, 2 s more), as a DaemonSet rollout does.
fn rolling_restart(lab: &NetLab, prefix: IpNet, nodes_to_restart: &[u8]) -> Report {
    let IpNet::V4(p) = prefix else { unreachable!() };
    let target = SocketAddr::new(IpAddr::V4(p.addr()), k8s::SERVICE_PORT);
    lab.wait_nodes_forward(target, Duration::from_secs(10))
        .unwrap();
    let traffic = Background::start(&lab.names().client(), target, Load::ISSUE_13);
    std::thread::sleep(Duration::from_secs(2));
    for n in nodes_to_restart {
        lab.stop(&format!("speaker-{n}"), Signal::SIGTERM).unwrap();
        std::thread::sleep(Duration::from_secs(1));
        lab.start_speaker(*n).unwrap();
        lab.wait_sessions(3, Duration::from_secs(20))
            .expect("session back");
        lab.wait_paths(prefix, 3, Duration::from_secs(20))
            .expect("paths back");
        std::thread::sleep(Duration::from_secs(2));
    }
    traffic.finish().expect("traffic")
}

/// A speaker restart under the issue's load with graceful restart on: nothing breaks.
fn rolling_restart_with_graceful_restart_breaks_nothing(router: RouterKind) {
    let Some(lab) = up(router, config(Some(60)), &[]) else {
        return;
    };
    let prefix = ready(&lab);
    let r = rolling_restart(&lab, prefix, &[3]);
    eprintln!(
        "{router:?}: restart with GR: {}/{} long-lived broken, {}/{} new failed",
        r.long_broken, r.long_lived, r.new_failed, r.new_total
    );
    assert!(
        r.new_total > 300,
        "{router:?}: only {} new connections",
        r.new_total
    );
    assert_eq!(
        (r.long_broken, r.new_failed),
        (0, 0),
        "{router:?}: {:?}",
        r.failures
    );
}

/// The issue's benchmark: a rolling restart of all three speakers with GR on and off, and
/// a drain of one node, under 20 long-lived connections (a ping every 100 ms) and 100 new
/// connections per second, with BIRD and FRR. Prints the table recorded in docs/STATUS.md.
#[test]
#[ignore = "benchmark: cargo test -p ferrolb-tests --test e2e_graceful -- --ignored --nocapture"]
fn bench_rolling_restart_and_drain() {
    let mut rows = Vec::new();
    for router in [RouterKind::Bird, RouterKind::Frr] {
        for gr in [true, false] {
            let Some(lab) = up(router, config(gr.then_some(60)), &[]) else {
                return;
            };
            let prefix = ready(&lab);
            let r = rolling_restart(&lab, prefix, &[1, 2, 3]);
            rows.push(format!(
                "| {router:?} | rolling restart, GR {} | {}/{} | {}/{} |",
                if gr { "on" } else { "off" },
                r.long_broken,
                r.long_lived,
                r.new_failed,
                r.new_total
            ));
        }
        let Some(lab) = up(
            router,
            config(None),
            &["--on-sigterm", "drain", "--drain-period", "5"],
        ) else {
            return;
        };
        let prefix = ready(&lab);
        let IpNet::V4(p) = prefix else { unreachable!() };
        let target = SocketAddr::new(IpAddr::V4(p.addr()), k8s::SERVICE_PORT);
        lab.wait_nodes_forward(target, Duration::from_secs(10))
            .unwrap();
        let started = Instant::now();
        let traffic = Background::start(&lab.names().client(), target, Load::ISSUE_13);
        std::thread::sleep(Duration::from_secs(2));
        let pid = lab.pid("speaker-3").unwrap();
        let drain_at = started.elapsed();
        ferrolb_lab::procs::signal(pid, Signal::SIGTERM);
        let moved = time_until_gone(&lab, prefix, 3, Duration::from_secs(5));
        ferrolb_lab::procs::wait_gone(&[pid], Duration::from_secs(15));
        std::thread::sleep(Duration::from_secs(2));
        let r = traffic.finish().expect("traffic");
        let after = drain_at + moved.unwrap_or_default() + Duration::from_millis(100);
        rows.push(format!(
            "| {router:?} | drain of node 3 (5 s) | {}/{} | {}/{} (to node 3 after the FIB moved, {moved:?} after SIGTERM: {}) |",
            r.long_broken,
            r.long_lived,
            r.new_failed,
            r.new_total,
            r.new_to_node_since(&Names::node_name(3), after)
        ));
    }
    println!("| router | scenario | long-lived broken | new connections failed |");
    println!("|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
}

macro_rules! per_router {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use super::*;
                #[test]
                fn bird() {
                    super::$name(RouterKind::Bird);
                }
                #[test]
                fn frr() {
                    super::$name(RouterKind::Frr);
                }
            }
        )*
    };
}

per_router!(
    graceful_restart_keeps_routes_then_expires,
    rolling_restart_with_graceful_restart_breaks_nothing,
    graceful_restart_with_bfd,
    without_graceful_restart_sigterm_withdraws_at_once,
    drain_on_sigterm_label_and_cordon,
);
