//! Namespaces, links, kernel routes and teardown (needs root; skips otherwise).

use std::net::IpAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrolb_netns::*;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn skip() -> bool {
    match require_root() {
        Ok(()) => false,
        Err(skip) => {
            eprintln!("{skip}");
            true
        }
    }
}

fn netns_list() -> String {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn root_links() -> String {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .expect("ip runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Live (non-zombie) processes whose command line contains `needle`.
fn live_procs_matching(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc")
        .expect("/proc readable")
        .flatten()
    {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(needle) && pid_alive(pid) {
            found.push(pid);
        }
    }
    found
}

fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Field 3 (after the parenthesised name) is the state; Z = zombie = dead.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// What a topology created, to check it is gone afterwards.
#[derive(Default, Debug)]
struct Created {
    lab_id: String,
    namespaces: Vec<String>,
    root_links: Vec<String>,
    pids: Vec<u32>,
}

/// Builds namespaces, a bridge namespace, a root bridge, a root veth, a real gobgpd and an
/// untracked background process; records their names into `rec` as it goes.
fn build(lab: &Lab, rec: &Mutex<Created>) -> Result<()> {
    rec.lock().unwrap().lab_id = lab.id().to_string();
    let a = lab.netns("a")?;
    let b = lab.netns("b")?;
    let sw = lab.netns("switch")?;
    for ns in [&a, &b, &sw] {
        rec.lock()
            .unwrap()
            .namespaces
            .push(ns.name().unwrap().to_string());
    }
    let br = lab.bridge(&sw)?;
    let pa = lab.connect(&a, &sw, &br)?;
    let pb = lab.connect(&b, &sw, &br)?;
    a.add_addr(&pa.a, "10.77.0.1/24".parse().unwrap())?;
    b.add_addr(&pb.a, "10.77.0.2/24".parse().unwrap())?;
    // Links in the root namespace: a bridge and a veth to namespace a.
    let root = lab.root();
    let root_br = lab.bridge(&root)?;
    let rv = lab.veth(&root, &a)?;
    rec.lock()
        .unwrap()
        .root_links
        .extend([root_br.clone(), rv.a.clone()]);
    assert!(root_links().contains(&root_br) && root_links().contains(&rv.a));
    // A real daemon and an untracked background process.
    let g = Gobgpd::start(&a, &GobgpConfig::new(65000, "10.77.0.1".parse().unwrap()))?;
    // TCP from b reaches gobgpd's port 179 in a across the bridge namespace.
    let tcp = b.exec(
        "timeout",
        &["5", "bash", "-c", "exec 3<>/dev/tcp/10.77.0.1/179"],
    )?;
    assert!(tcp.success(), "TCP over the bridge failed: {}", tcp.stderr);
    let bg = b.exec("sh", &["-c", "sleep 300 >/dev/null 2>&1 & echo $!"])?;
    let bg_pid: u32 = bg.stdout.trim().parse().expect("sh printed a pid");
    rec.lock().unwrap().pids.extend([g.proc().pid(), bg_pid]);
    assert!(pid_alive(g.proc().pid()) && pid_alive(bg_pid));
    assert!(
        !live_procs_matching(lab.id()).is_empty(),
        "gobgpd's cmdline names the lab dir"
    );
    Ok(())
}

fn assert_all_gone(c: &Created) {
    assert!(
        !c.namespaces.is_empty() && c.root_links.len() == 2 && c.pids.len() == 2,
        "{c:?}"
    );
    let list = netns_list();
    for ns in &c.namespaces {
        assert!(
            !list.contains(ns.as_str()),
            "namespace {ns} left behind:\n{list}"
        );
    }
    let links = root_links();
    for l in &c.root_links {
        assert!(
            !links.contains(&format!(" {l}:")) && !links.contains(&format!(" {l}@")),
            "link {l} left behind"
        );
    }
    for pid in &c.pids {
        assert!(!pid_alive(*pid), "process {pid} still alive");
    }
    assert!(
        live_procs_matching(&c.lab_id).is_empty(),
        "processes naming {} remain",
        c.lab_id
    );
    assert!(
        !work_root().join(&c.lab_id).exists(),
        "work dir left behind"
    );
}

#[test]
fn teardown_on_drop_removes_everything() {
    if skip() {
        return;
    }
    let rec = Mutex::new(Created::default());
    {
        let lab = Lab::new().expect("lab");
        build(&lab, &rec).expect("topology builds");
        // teardown() twice plus Drop: idempotent.
        lab.teardown().expect("first teardown");
        lab.teardown().expect("second teardown is a no-op");
    }
    assert_all_gone(&rec.lock().unwrap());
}

#[test]
fn teardown_on_plain_drop() {
    if skip() {
        return;
    }
    let rec = Mutex::new(Created::default());
    {
        let lab = Lab::new().expect("lab");
        build(&lab, &rec).expect("topology builds");
    }
    assert_all_gone(&rec.lock().unwrap());
}

#[test]
fn teardown_when_owner_panics() {
    if skip() {
        return;
    }
    let rec = Arc::new(Mutex::new(Created::default()));
    let r2 = rec.clone();
    let result = catch_unwind(AssertUnwindSafe(move || {
        let lab = Lab::new().expect("lab");
        build(&lab, &r2).expect("topology builds");
        panic!("deliberate panic with a live topology");
    }));
    assert!(result.is_err(), "the closure panicked");
    assert_all_gone(&rec.lock().unwrap());
}

#[test]
fn ecmp_kernel_routes_read_back_as_data() {
    if skip() {
        return;
    }
    let lab = Lab::new().expect("lab");
    let a = lab.netns("a").expect("ns");
    let b = lab.netns("b").expect("ns");
    let v = lab.veth(&a, &b).expect("veth");
    a.add_addr(&v.a, "10.78.0.1/24".parse().unwrap())
        .expect("v4 addr");
    a.add_addr(&v.a, "fd78::1/64".parse().unwrap())
        .expect("v6 addr");

    // v4 ECMP via the `ip route add ... nexthop via A nexthop via B` form.
    a.ip(&[
        "route",
        "add",
        "10.200.0.0/24",
        "nexthop",
        "via",
        "10.78.0.2",
        "nexthop",
        "via",
        "10.78.0.3",
    ])
    .expect("ecmp route");
    let routes = a.routes(Family::V4).expect("routes");
    let r = routes
        .iter()
        .find(|r| r.dst == "10.200.0.0/24".parse().unwrap())
        .expect("ecmp route present");
    assert_eq!(r.gateways(), vec![ip("10.78.0.2"), ip("10.78.0.3")]);
    assert!(
        r.nexthops
            .iter()
            .all(|n| n.dev.as_deref() == Some(v.a.as_str()))
    );
    let connected = routes
        .iter()
        .find(|r| r.dst == "10.78.0.0/24".parse().unwrap())
        .expect("connected");
    assert_eq!(connected.protocol.as_deref(), Some("kernel"));
    assert!(connected.gateways().is_empty());

    // v6 ECMP through the helper, and a single-path route with metric and protocol.
    a.add_route(
        "fd00:200::/64".parse().unwrap(),
        &[ip("fd78::2"), ip("fd78::3")],
    )
    .expect("v6 ecmp");
    a.ip(&[
        "route",
        "add",
        "10.201.0.0/24",
        "via",
        "10.78.0.9",
        "metric",
        "50",
        "proto",
        "bird",
    ])
    .expect("single route");
    let v6 = a.routes(Family::V6).expect("v6 routes");
    let r6 = v6
        .iter()
        .find(|r| r.dst == "fd00:200::/64".parse().unwrap())
        .expect("v6 ecmp present");
    assert_eq!(r6.gateways(), vec![ip("fd78::2"), ip("fd78::3")]);
    let single = a.routes(Family::V4).expect("routes");
    let s = single
        .iter()
        .find(|r| r.dst == "10.201.0.0/24".parse().unwrap())
        .expect("single");
    assert_eq!(
        (s.metric, s.protocol.as_deref(), s.gateways()),
        (Some(50), Some("bird"), vec![ip("10.78.0.9")])
    );
    // routes_all also shows the local table.
    assert!(
        a.routes_all(Family::V4)
            .expect("all")
            .iter()
            .any(|r| r.table == "local")
    );

    // Addresses and link state.
    let addrs = a.addresses().expect("addresses");
    assert!(
        addrs
            .iter()
            .any(|x| x.ifname == v.a && x.addr == "fd78::1/64".parse().unwrap())
    );
    assert!(
        addrs
            .iter()
            .any(|x| x.ifname == v.a && x.addr == "10.78.0.1/24".parse().unwrap())
    );
    a.set_link(&v.a, false).expect("down");
    let link = |ns: &Netns, name: &str| {
        ns.links()
            .expect("links")
            .into_iter()
            .find(|l| l.name == name)
            .expect("link")
    };
    let down = link(&a, &v.a);
    assert!(!down.up);
    assert_eq!(down.kind.as_deref(), Some("veth"));
    // Link down removes its routes from the kernel.
    assert!(
        a.routes(Family::V4)
            .expect("routes")
            .iter()
            .all(|r| r.dst != "10.200.0.0/24".parse().unwrap())
    );
    a.set_link(&v.a, true).expect("up");
    assert!(link(&a, &v.a).up);
    assert!(link(&b, &v.b).up);

    // Forwarding is per namespace.
    let fwd = |ns: &Netns| {
        ns.run("cat", &["/proc/sys/net/ipv4/ip_forward"])
            .expect("cat")
    };
    assert_eq!(fwd(&a).trim(), "0");
    a.enable_forwarding().expect("forwarding");
    assert_eq!(fwd(&a).trim(), "1");
    assert_eq!(fwd(&b).trim(), "0");
    let f6 = a
        .run("cat", &["/proc/sys/net/ipv6/conf/all/forwarding"])
        .expect("cat");
    assert_eq!(f6.trim(), "1");
}

#[test]
fn exec_and_spawn_run_inside_the_namespace() {
    if skip() {
        return;
    }
    let lab = Lab::new().expect("lab");
    let a = lab.netns("exec").expect("ns");
    // Inside the namespace only lo exists.
    let out = a.exec("ip", &["-o", "link"]).expect("exec");
    assert!(out.success());
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
    let fail = a
        .exec("sh", &["-c", "echo oops >&2; exit 4"])
        .expect("exec");
    assert_eq!(fail.status.code(), Some(4));
    assert_eq!(fail.stderr.trim(), "oops");
    let err = a
        .run("sh", &["-c", "echo bad >&2; exit 2"])
        .expect_err("run checks status");
    assert!(
        err.to_string().contains("bad") && err.to_string().contains("exit status: 2"),
        "{err}"
    );
    let t = a
        .exec_timeout("sleep", &["10"], Duration::from_millis(300))
        .expect_err("times out");
    assert!(matches!(t, Error::CommandTimeout { .. }), "{t}");

    let plain = a.spawn("sh", &["-c", "echo plain"]).expect("spawn");
    wait_for("plain exits", Duration::from_secs(5), || {
        Ok(plain.try_status())
    })
    .expect("exits");
    assert_eq!(plain.log_tail(1), "plain");
    let mut c = a.command("sh");
    c.args(["-c", "echo hello $FLB_TEST_VAR; exec sleep 300"])
        .env("FLB_TEST_VAR", "world");
    let p = a
        .spawn_command(c, &lab.dir().join("custom.log"))
        .expect("spawn");
    wait_for("log line", Duration::from_secs(5), || {
        Ok(p.log_tail(5).contains("hello world").then_some(()))
    })
    .expect("log");
    assert!(p.is_running());
    p.signal(Signal::SIGSTOP).expect("stop");
    p.signal(Signal::SIGCONT).expect("cont");
    // kill() handles a stopped process too and is idempotent.
    p.signal(Signal::SIGSTOP).expect("stop");
    let status = p.kill();
    assert!(status.is_some() && !p.is_running());
    assert_eq!(p.kill(), status);

    // A process that ignores SIGTERM gets SIGKILL after the grace period.
    let stubborn = a
        .spawn(
            "sh",
            &[
                "-c",
                "trap '' TERM; echo ready; while :; do sleep 0.1; done",
            ],
        )
        .expect("spawn");
    wait_for("stubborn ready", Duration::from_secs(5), || {
        Ok(stubborn.log_tail(1).contains("ready").then_some(()))
    })
    .expect("ready");
    let t0 = std::time::Instant::now();
    let st = stubborn
        .kill_with_grace(Duration::from_millis(300))
        .expect("reaped");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(9), "{st:?}");
}

#[test]
fn names_are_unique_and_stale_cleanup_spares_live_owners() {
    if skip() {
        return;
    }
    let lab = Lab::new().expect("lab");
    let a = lab.netns("live").expect("ns");
    let name = a.name().expect("named").to_string();
    assert_eq!(owner_pid(DEFAULT_PREFIX, &name), Some(std::process::id()));
    // Simulate a crashed run: a namespace and a root veth named for a dead pid.
    let dead_pid = 4_194_303u32; // above any default pid_max in use here; never alive
    assert!(!std::path::Path::new(&format!("/proc/{dead_pid}")).exists());
    let b36 = |mut n: u32| {
        let d = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let mut s = Vec::new();
        while n > 0 {
            s.push(d[(n % 36) as usize]);
            n /= 36;
        }
        s.reverse();
        String::from_utf8(s).unwrap()
    };
    let stale_ns = format!("flb-{}-zz01-crashed", b36(dead_pid));
    let stale_if = format!("flb-{}-zz02", b36(dead_pid));
    let stale_peer = format!("flb-{}-zz03", b36(dead_pid));
    assert!(stale_if.len() <= IFNAME_MAX);
    Command::new("ip")
        .args(["netns", "add", &stale_ns])
        .status()
        .expect("ip");
    Command::new("ip")
        .args([
            "link",
            "add",
            &stale_if,
            "type",
            "veth",
            "peer",
            "name",
            &stale_peer,
        ])
        .status()
        .expect("ip");
    let report = cleanup_stale(DEFAULT_PREFIX).expect("cleanup");
    eprintln!("cleanup_stale: {report:?}");
    assert!(report.namespaces.contains(&stale_ns), "{report:?}");
    assert!(
        report
            .links
            .iter()
            .any(|l| *l == stale_if || *l == stale_peer),
        "{report:?}"
    );
    assert!(!netns_list().contains(&stale_ns));
    assert!(!root_links().contains(&stale_if) && !root_links().contains(&stale_peer));
    // Our own live namespace is untouched.
    assert!(netns_list().contains(&name));
    assert!(a.exec("true", &[] as &[&str]).expect("exec").success());
}

#[test]
fn handles_are_send_and_sync_and_bad_prefixes_are_rejected() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Lab>();
    assert_send_sync::<Netns>();
    assert_send_sync::<Proc>();
    assert_send_sync::<Gobgpd>();
    assert_send_sync::<Bird>();
    // Needs no root: the prefix is checked before anything is created.
    let err = Lab::with_prefix("Bad-Prefix").expect_err("invalid prefix");
    assert!(matches!(err, Error::InvalidName { .. }), "{err}");
    assert!(cleanup_stale("toolong").is_err());
}
