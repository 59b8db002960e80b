//! BFD end to end (issue 12): the netns lab with BIRD or FRR as the router running BFD to
//! every node, and real `ferrolb-speaker`s whose ConfigMap peer names a `bfd-profile`.
//!
//! A *silent* node is node 3 with its link set down and then its speaker SIGKILLed (no
//! FIN, no RST, no Cease, no carrier change at the router, whose bridge keeps its other
//! ports); the clean case is a SIGTERM (Cease). What is timed is how long until the
//! router's FIB no longer uses node 3 for the Service IP, seen by `ip monitor` in the
//! router's namespace (each event re-reads the route).
//!
//! `bfd_failover_with_bird_and_frr_routers` runs in CI (one measurement per case).
//! `bench_bfd_failover` (ignored; see bgp/README.md) compares against BIRD or FRR itself as
//! node 3's speaker with the same timers, medians over `FLB_BFD_RUNS` (default 11) runs:
//!
//! ```text
//! cargo test --release -p ferrolb-tests --test e2e_bfd -- --ignored --nocapture
//! ```

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ferrolb_lab::netlab::NetLab;
use ferrolb_lab::procs;
use ferrolb_lab::router::{RouterBfd, RouterKind};
use ferrolb_lab::topology::{self, addr};
use ferrolb_netns::Signal;
use ipnet::{IpNet, Ipv4Net};

const MULT: u8 = 3;
const SILENT_NODE: u8 = 3;

/// The lab's ConfigMap with a `bfd-profile` on the router peer.
fn config(interval_ms: u32) -> String {
    format!(
        "peers:\n- peer-address: 172.17.0.1\n  peer-asn: 64512\n  my-asn: 64522\n  bfd-profile: lab\n\
         bfd-profiles:\n- name: lab\n  receive-interval: {interval_ms}\n  transmit-interval: {interval_ms}\n  \
         detect-multiplier: {MULT}\n\
         address-pools:\n- name: default\n  protocol: bgp\n  avoid-buggy-ips: true\n  addresses:\n  - 172.17.254.0/24\n"
    )
}

fn installed(kind: RouterKind) -> bool {
    let missing: Vec<&str> = kind
        .requirements()
        .iter()
        .map(|(bin, _)| *bin)
        .chain((kind == RouterKind::Frr).then_some("/usr/lib/frr/bfdd"))
        .filter(|bin| !Path::new(bin).exists())
        .collect();
    if !missing.is_empty() {
        eprintln!("skipping {kind:?}: {missing:?} not installed");
    }
    missing.is_empty()
}

/// A lab whose router runs BFD with `interval_ms` x 3, all three paths up; returns it with
/// the Service's prefix.
fn bfd_lab(kind: RouterKind, interval_ms: u32) -> Result<(NetLab, IpNet)> {
    let mut spec = ferrolb_lab::testing::spec()?;
    spec.router = kind;
    spec.router_bfd = Some(RouterBfd::symmetric(interval_ms, MULT));
    spec.config = config(interval_ms);
    let lab = NetLab::up(spec, &mut |_| {})?;
    lab.wait_sessions(3, Duration::from_secs(30))?;
    let ip = lab.wait_service_ip(Duration::from_secs(20))?;
    let prefix = IpNet::V4(Ipv4Net::new(ip, 32)?);
    lab.wait_paths(prefix, 3, Duration::from_secs(20))?;
    for n in 1..=3 {
        wait_router_bfd_up(&lab, n, interval_ms)?;
    }
    Ok((lab, prefix))
}

fn node_ip(n: u8) -> IpAddr {
    IpAddr::V4(addr::node(n))
}

/// Waits until the router's BFD session to node `n` is Up at the fast interval (so the next
/// measurement starts from a settled session).
fn wait_router_bfd_up(lab: &NetLab, n: u8, interval_ms: u32) -> Result<()> {
    lab.wait(
        &format!("router BFD to node {n} up at {interval_ms} ms"),
        Duration::from_secs(20),
        || {
            let s = lab.router().bfd_sessions()?;
            Ok(s.iter()
                .any(|(ip, st, tx)| {
                    *ip == node_ip(n) && st == "up" && *tx == u64::from(interval_ms)
                })
                .then_some(()))
        },
    )
}

/// `ip monitor route nexthop` in the router's namespace, lines with their arrival time.
struct FibWatch {
    child: Child,
    lines: mpsc::Receiver<Instant>,
}

impl FibWatch {
    fn start(lab: &NetLab) -> Result<FibWatch> {
        let mut child = Command::new("ip")
            .args(["-n", &lab.names().rt(), "-o", "monitor", "route", "nexthop"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("ip monitor")?;
        let out = child.stdout.take().context("stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                if line.is_err() || tx.send(Instant::now()).is_err() {
                    break;
                }
            }
        });
        // Let it subscribe before anything happens.
        std::thread::sleep(Duration::from_millis(100));
        Ok(FibWatch { child, lines })
    }

    /// Time from `t0` until the FIB no longer uses `node` for `prefix`: each routing event
    /// re-reads the route; a 100 ms poll is the fallback should an event be missed.
    fn node_gone(
        &self,
        lab: &NetLab,
        prefix: IpNet,
        node: IpAddr,
        t0: Instant,
        timeout: Duration,
    ) -> Result<Duration> {
        let deadline = t0 + timeout;
        loop {
            let at = match self.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(at) => at,
                Err(mpsc::RecvTimeoutError::Timeout) => Instant::now(),
                Err(e) => bail!("ip monitor stopped: {e}"),
            };
            if !lab.fib_next_hops(prefix)?.contains(&node) {
                return Ok(at.duration_since(t0));
            }
            if Instant::now() > deadline {
                bail!("the router still uses {node} for {prefix} after {timeout:?}");
            }
        }
    }
}

impl Drop for FibWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How node 3 leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    /// Link down, then SIGKILL.
    Silent,
    /// SIGTERM (Cease).
    Clean,
}

/// Who speaks BGP (and BFD) on node 3.
trait NodeSpeaker {
    fn name(&self) -> &'static str;
    /// Start and wait until the router uses node 3 again with BFD Up.
    fn start(&mut self, lab: &NetLab, prefix: IpNet, interval_ms: u32) -> Result<()>;
    /// Signal every process of it (and reap them).
    fn signal(&mut self, lab: &NetLab, sig: Signal) -> Result<()>;
}

struct Ferrolb;

impl NodeSpeaker for Ferrolb {
    fn name(&self) -> &'static str {
        "ferrolb"
    }

    fn start(&mut self, lab: &NetLab, prefix: IpNet, interval_ms: u32) -> Result<()> {
        lab.start_speaker(SILENT_NODE)?;
        lab.wait_paths(prefix, 3, Duration::from_secs(30))?;
        wait_router_bfd_up(lab, SILENT_NODE, interval_ms)
    }

    fn signal(&mut self, lab: &NetLab, sig: Signal) -> Result<()> {
        lab.stop(&format!("speaker-{SILENT_NODE}"), sig)
    }
}

/// BIRD or FRR itself as node 3's speaker, announcing the Service /32 with BFD.
struct Reference {
    kind: RouterKind,
    children: Vec<Child>,
}

impl Reference {
    fn spawn(&mut self, lab: &NetLab, name: &str, prog: &str, args: Vec<String>) -> Result<()> {
        let ns = lab.names().node_ns(SILENT_NODE);
        let child = procs::spawn_in(lab.state(), &ns, name, Path::new(prog), &args, &[])?;
        self.children.push(child);
        Ok(())
    }

    fn start_bird(&mut self, lab: &NetLab, prefix: IpNet, interval_ms: u32) -> Result<()> {
        let conf = lab.state().path("ref-bird.conf");
        let me = addr::node(SILENT_NODE);
        std::fs::write(
            &conf,
            format!(
                "router id {me};\nlog stderr all;\nprotocol device {{}}\n\
                 protocol static {{ ipv4; route {prefix} blackhole; }}\n\
                 protocol bfd {{ interface \"*\" {{ min rx interval {interval_ms} ms; min tx interval {interval_ms} ms; multiplier {MULT}; }}; }}\n\
                 protocol bgp uplink {{ local {me} as {}; neighbor {} as {}; connect delay time 1; \
                 graceful restart off; bfd on; ipv4 {{ import none; export all; }}; }}\n",
                addr::CLUSTER_ASN,
                addr::RT_CLUSTER,
                addr::ROUTER_ASN
            ),
        )?;
        let sock = lab.state().path("ref-bird.ctl").display().to_string();
        self.spawn(
            lab,
            "ref-bird",
            "/usr/sbin/bird",
            vec![
                "-f".into(),
                "-c".into(),
                conf.display().to_string(),
                "-s".into(),
                sock,
                "-P".into(),
                lab.state().path("ref-bird.pid").display().to_string(),
            ],
        )
    }

    fn start_frr(&mut self, lab: &NetLab, prefix: IpNet, interval_ms: u32) -> Result<()> {
        let dir = lab.state().path("ref-frr");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        if let Ok(Some(u)) = nix::unistd::User::from_name("frr") {
            nix::unistd::chown(&dir, Some(u.uid), Some(u.gid))?;
        }
        let me = addr::node(SILENT_NODE);
        let confs = [
            ("zebra", "hostname ref\n".to_string()),
            (
                "bgpd",
                format!(
                    "frr defaults traditional\nhostname ref\n!\nrouter bgp {}\n bgp router-id {me}\n \
                     no bgp ebgp-requires-policy\n no bgp network import-check\n neighbor {} remote-as {}\n \
                     neighbor {} timers connect 1\n neighbor {} bfd profile lab\n address-family ipv4 unicast\n  \
                     network {prefix}\n exit-address-family\n!\n",
                    addr::CLUSTER_ASN,
                    addr::RT_CLUSTER,
                    addr::ROUTER_ASN,
                    addr::RT_CLUSTER,
                    addr::RT_CLUSTER
                ),
            ),
            (
                "bfdd",
                format!(
                    "bfd\n profile lab\n  receive-interval {interval_ms}\n  transmit-interval {interval_ms}\n  \
                     detect-multiplier {MULT}\n !\n!\n"
                ),
            ),
        ];
        for (daemon, text) in confs {
            let conf = dir.join(format!("{daemon}.conf"));
            std::fs::write(&conf, text)?;
            let mut args = ferrolb_lab::router::frr_daemon_args(&dir, daemon, &conf);
            if daemon == "bgpd" {
                args.extend(["-p".to_string(), "179".to_string()]);
            }
            self.spawn(
                lab,
                &format!("ref-{daemon}"),
                &format!("/usr/lib/frr/{daemon}"),
                args,
            )?;
            if daemon == "zebra" {
                lab.wait("reference zebra", Duration::from_secs(10), || {
                    Ok(dir.join("zserv.api").exists().then_some(()))
                })?;
            }
        }
        Ok(())
    }
}

impl NodeSpeaker for Reference {
    fn name(&self) -> &'static str {
        match self.kind {
            RouterKind::Frr => "FRR",
            _ => "BIRD",
        }
    }

    fn start(&mut self, lab: &NetLab, prefix: IpNet, interval_ms: u32) -> Result<()> {
        match self.kind {
            RouterKind::Frr => self.start_frr(lab, prefix, interval_ms)?,
            _ => self.start_bird(lab, prefix, interval_ms)?,
        }
        let logs = |lab: &NetLab| {
            ["ref-bird", "ref-bgpd", "ref-bfdd", "bird", "bgpd"]
                .iter()
                .map(|n| format!("{n}:\n{}", lab.state().log_tail(n, 15)))
                .collect::<Vec<_>>()
                .join("\n")
        };
        lab.wait_paths(prefix, 3, Duration::from_secs(40))
            .with_context(|| logs(lab))?;
        wait_router_bfd_up(lab, SILENT_NODE, interval_ms).with_context(|| logs(lab))
    }

    fn signal(&mut self, _lab: &NetLab, sig: Signal) -> Result<()> {
        for c in self.children.iter().rev() {
            procs::signal(c.id(), sig);
        }
        let pids: Vec<u32> = self.children.iter().map(Child::id).collect();
        if !procs::wait_gone(&pids, Duration::from_secs(10)).is_empty() {
            for p in &pids {
                procs::signal(*p, Signal::SIGKILL);
            }
        }
        for mut c in self.children.drain(..) {
            let _ = c.wait();
        }
        Ok(())
    }
}

/// One measurement: node 3 leaves as `exit`; returns how long until the router's FIB stops
/// using it. Node 3 is back (same speaker, BFD Up) when this returns.
fn measure(
    lab: &NetLab,
    prefix: IpNet,
    interval_ms: u32,
    who: &mut dyn NodeSpeaker,
    exit: Exit,
) -> Result<Duration> {
    let watch = FibWatch::start(lab)?;
    let t0 = Instant::now();
    match exit {
        Exit::Silent => {
            topology::set_node_link(lab.names(), SILENT_NODE, false)?;
            who.signal(lab, Signal::SIGKILL)?;
        }
        Exit::Clean => who.signal(lab, Signal::SIGTERM)?,
    }
    let took = watch.node_gone(
        lab,
        prefix,
        node_ip(SILENT_NODE),
        t0,
        Duration::from_secs(10),
    );
    drop(watch);
    if exit == Exit::Silent {
        topology::set_node_link(lab.names(), SILENT_NODE, true)?;
    }
    let took = took?;
    who.start(lab, prefix, interval_ms)?;
    Ok(took)
}

/// `curl` inside a node's namespace (the speaker serves on 0.0.0.0:7472 there).
fn speaker_http(lab: &NetLab, n: u8, path: &str) -> Result<String> {
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.names().node_ns(n), "curl", "-sf"])
        .arg(format!("http://127.0.0.1:7472{path}"))
        .output()?;
    if !out.status.success() {
        bail!("curl {path} on node {n}: {}", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn bfd_failover_with_bird_and_frr_routers() {
    if let Err(skip) = ferrolb_netns::require_root() {
        eprintln!("{skip}");
        return;
    }
    for kind in [RouterKind::Bird, RouterKind::Frr] {
        if !installed(kind) {
            continue;
        }
        let (lab, prefix) = bfd_lab(kind, 300).unwrap_or_else(|e| panic!("{kind:?}: {e:#}"));
        // The speaker shows the session and exports MetalLB's BFD metrics.
        let status: serde_json::Value =
            serde_json::from_str(&speaker_http(&lab, 1, "/status?format=json").unwrap()).unwrap();
        let bfd = &status["peers"][0]["bfd"];
        assert_eq!(bfd["profile"], "lab", "{status}");
        assert_eq!(bfd["state"], "Up", "{status}");
        assert_eq!(bfd["transmit_interval_ms"], 300);
        assert_eq!(bfd["detect_time_ms"], 900);
        let metrics = speaker_http(&lab, 1, "/metrics").unwrap();
        assert!(
            metrics.contains("metallb_bfd_session_up{peer=\"172.17.0.1\"} 1"),
            "{metrics}"
        );
        assert!(metrics.contains("metallb_bfd_control_packet_input{peer=\"172.17.0.1\"}"));

        // Silent node: the router's BFD notices within its detection time (900 ms after
        // the last packet it got), long before any hold timer (90 s here).
        let t = measure(&lab, prefix, 300, &mut Ferrolb, Exit::Silent)
            .unwrap_or_else(|e| panic!("{kind:?} silent: {e:#}"));
        eprintln!("{kind:?}: silent node 3 left the FIB after {t:?}");
        assert!(
            t >= Duration::from_millis(300) && t < Duration::from_secs(1),
            "{kind:?}: {t:?}"
        );
        // Clean exit (Cease) is still immediate.
        let t = measure(&lab, prefix, 300, &mut Ferrolb, Exit::Clean)
            .unwrap_or_else(|e| panic!("{kind:?} clean: {e:#}"));
        eprintln!("{kind:?}: SIGTERM node 3 left the FIB after {t:?}");
        assert!(t < Duration::from_secs(1), "{kind:?}: {t:?}");
        // And the node is back on all paths (measure restarted it).
        assert_eq!(lab.fib_next_hops(prefix).unwrap().len(), 3);
        let status = speaker_http(&lab, SILENT_NODE, "/status").unwrap();
        assert!(
            status.contains("BFD:") && status.contains("Up/Up"),
            "{status}"
        );
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn fmt_s(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

#[test]
#[ignore = "benchmark: cargo test --release -p ferrolb-tests --test e2e_bfd -- --ignored --nocapture"]
fn bench_bfd_failover() {
    if let Err(skip) = ferrolb_netns::require_root() {
        eprintln!("{skip}");
        return;
    }
    let runs: usize = std::env::var("FLB_BFD_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(11);
    let mut table = Vec::new();
    for kind in [RouterKind::Bird, RouterKind::Frr] {
        if !installed(kind) {
            continue;
        }
        for interval in [300u32, 50] {
            let (lab, prefix) = bfd_lab(kind, interval).unwrap_or_else(|e| panic!("{e:#}"));
            let mut reference = Reference {
                kind,
                children: Vec::new(),
            };
            let mut results: Vec<(&str, Exit, Vec<Duration>)> = Vec::new();
            for (who, exit) in [
                ("ferrolb", Exit::Silent),
                ("ferrolb", Exit::Clean),
                ("ref", Exit::Silent),
                ("ref", Exit::Clean),
            ] {
                results.push((who, exit, Vec::new()));
            }
            for round in 0..runs {
                // ferrolb on node 3 (it runs at the start of each round).
                for slot in results.iter_mut().filter(|r| r.0 == "ferrolb") {
                    let t = measure(&lab, prefix, interval, &mut Ferrolb, slot.1)
                        .unwrap_or_else(|e| panic!("{e:#}"));
                    slot.2.push(t);
                }
                // Switch node 3 to the reference daemon, measure, switch back.
                Ferrolb.signal(&lab, Signal::SIGTERM).unwrap();
                lab.wait_paths(prefix, 2, Duration::from_secs(10)).unwrap();
                reference
                    .start(&lab, prefix, interval)
                    .unwrap_or_else(|e| panic!("{e:#}"));
                for slot in results.iter_mut().filter(|r| r.0 == "ref") {
                    let t = measure(&lab, prefix, interval, &mut reference, slot.1)
                        .unwrap_or_else(|e| panic!("{e:#}"));
                    slot.2.push(t);
                }
                reference.signal(&lab, Signal::SIGTERM).unwrap();
                lab.wait_paths(prefix, 2, Duration::from_secs(10)).unwrap();
                Ferrolb
                    .start(&lab, prefix, interval)
                    .unwrap_or_else(|e| panic!("{e:#}"));
                eprintln!(
                    "{kind:?} {interval} ms round {}: {}",
                    round + 1,
                    results
                        .iter()
                        .map(|(w, e, v)| format!("{w} {e:?} {}", fmt_s(*v.last().unwrap())))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            for (who, exit, mut v) in results {
                let all: Vec<String> = v.iter().map(|d| fmt_s(*d)).collect();
                let m = median(&mut v);
                let name = if who == "ref" {
                    reference.name()
                } else {
                    "ferrolb"
                };
                table.push(format!(
                    "| {} | {interval} ms x {MULT} | {name} | {exit:?} | {} | {} | {} |",
                    kind.label(),
                    fmt_s(m),
                    fmt_s(v[0]),
                    all.join(" ")
                ));
            }
            drop(lab);
        }
    }
    println!("| router | BFD | node 3 speaker | exit | median s | min s | all runs (s) |");
    println!("|---|---|---|---|---:|---:|---|");
    for row in table {
        println!("{row}");
    }
}
