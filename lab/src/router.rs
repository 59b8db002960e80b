//! The lab router `rt`: gobgpd (default, with [`crate::fib`] programming the kernel), BIRD
//! (`merge paths`) or FRR (bgpd + zebra), all peering with every node and installing ECMP
//! routes into the router namespace's kernel. Their configs share one policy: accept Service
//! /32s from the pool and node pod CIDRs (/24 of 10.244.0.0/16) from the nodes, and send the
//! pod CIDRs back to the nodes with the cluster AS replaced (every node is AS 64522, so the
//! AS-path loop check would drop them otherwise).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ferrolb_netns::{Family, KernelRoute, RibPath, RibRoute};

use crate::procs::{self, StateDir};
use crate::topology::{Names, addr, addr6};

pub use crate::router_config::gobgp_toml;

/// Which routing daemon runs on the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RouterKind {
    /// gobgpd 3.x (the seed's router) + the lab's fib-sync for the kernel.
    Gobgp,
    /// BIRD 2 with `merge paths` in its kernel protocol.
    Bird,
    /// FRR bgpd + zebra (`apt-get install -y frr`).
    Frr,
}

impl RouterKind {
    /// The daemon's name for messages.
    pub fn label(self) -> &'static str {
        match self {
            RouterKind::Gobgp => "gobgpd",
            RouterKind::Bird => "BIRD",
            RouterKind::Frr => "FRR",
        }
    }

    /// The kernel `proto` of the routes this router installs.
    pub fn kernel_proto(self) -> &'static str {
        match self {
            RouterKind::Gobgp => crate::fib::PROTO,
            RouterKind::Bird => "bird",
            RouterKind::Frr => "bgp",
        }
    }

    /// The binaries of [`RouterKind::requirements`] that are not installed.
    pub fn missing(self) -> Vec<&'static str> {
        self.requirements()
            .iter()
            .filter(|(bin, _)| !Path::new(bin).exists())
            .map(|(bin, _)| *bin)
            .collect()
    }

    /// Binaries it needs, with the Debian package providing them.
    pub fn requirements(self) -> &'static [(&'static str, &'static str)] {
        match self {
            RouterKind::Gobgp => &[("/usr/bin/gobgpd", "gobgpd"), ("/usr/bin/gobgp", "gobgpd")],
            RouterKind::Bird => &[("/usr/sbin/bird", "bird2"), ("/usr/sbin/birdc", "bird2")],
            RouterKind::Frr => &[
                ("/usr/lib/frr/zebra", "frr"),
                ("/usr/lib/frr/bgpd", "frr"),
                ("/usr/bin/vtysh", "frr"),
            ],
        }
    }
}

/// The router's settings.
#[derive(Debug, Clone)]
pub struct RouterSpec {
    /// Which daemon.
    pub kind: RouterKind,
    /// Number of nodes to peer with.
    pub nodes: u8,
    /// The `ferrolb-lab` binary (runs fib-sync for gobgpd).
    pub lab_bin: PathBuf,
    /// BFD towards every node (BIRD and FRR; gobgpd has none).
    pub bfd: Option<RouterBfd>,
    /// Also peer with every node over IPv6 (the dual-stack lab, see [`crate::router6`]).
    pub dual_stack: bool,
}

/// The router's BFD timers (as a MetalLB `bfd-profiles` entry on the nodes' side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouterBfd {
    /// Desired Min TX (ms).
    pub transmit_ms: u32,
    /// Required Min RX (ms).
    pub receive_ms: u32,
    /// Detect multiplier.
    pub multiplier: u8,
}

impl RouterBfd {
    /// The same interval both ways.
    pub fn symmetric(interval_ms: u32, multiplier: u8) -> RouterBfd {
        RouterBfd {
            transmit_ms: interval_ms,
            receive_ms: interval_ms,
            multiplier,
        }
    }
}

fn node_ips(nodes: u8) -> Vec<std::net::Ipv4Addr> {
    (1..=nodes).map(addr::node).collect()
}

/// FRR's integrated config for bgpd (zebra needs none): multipath, `as-override` towards
/// the nodes, passive neighbours, pool /32s and pod CIDRs in, pod CIDRs out.
pub fn frr_conf(nodes: u8) -> String {
    frr_conf_with_bfd(nodes, false)
}

/// bfdd's config: the `lab` profile that [`frr_conf_with_bfd`] names.
pub fn frr_bfdd_conf(b: &RouterBfd) -> String {
    format!(
        "hostname rt\nbfd\n profile lab\n  receive-interval {}\n  transmit-interval {}\n  detect-multiplier {}\n !\n!\n",
        b.receive_ms, b.transmit_ms, b.multiplier
    )
}

/// [`frr_conf`], with `neighbor X bfd profile lab` when `bfd` (bfdd runs the profile).
pub fn frr_conf_with_bfd(nodes: u8, bfd: bool) -> String {
    let mut s = format!(
        "frr defaults traditional\nhostname rt\nlog stdout debugging\nno ipv6 forwarding\n!\n\
         ip prefix-list from-cluster seq 10 permit {pool} ge 32\n\
         ip prefix-list from-cluster seq 20 permit {podnet} ge 24 le 24\n\
         ip prefix-list to-cluster seq 10 permit {podnet} ge 24 le 24\n!\n\
         bgp community-list standard gshut seq 5 permit 65535:0\n\
         route-map gshut permit 10\n match community gshut\n set local-preference 0\n\
         route-map gshut permit 20\n!\n\
         router bgp {asn}\n bgp router-id {rid}\n no bgp ebgp-requires-policy\n no bgp network import-check\n\
         \x20bgp bestpath as-path multipath-relax\n",
        pool = addr::POOL,
        podnet = addr::POD_NET,
        asn = addr::ROUTER_ASN,
        rid = addr::RT_CLUSTER,
    );
    for ip in node_ips(nodes) {
        let _ = writeln!(s, " neighbor {ip} remote-as {}", addr::CLUSTER_ASN);
        let _ = writeln!(s, " neighbor {ip} passive");
        if bfd {
            let _ = writeln!(s, " neighbor {ip} bfd profile lab");
        }
    }
    s.push_str(" address-family ipv4 unicast\n  maximum-paths 64\n");
    for ip in node_ips(nodes) {
        let _ = writeln!(s, "  neighbor {ip} as-override");
        let _ = writeln!(s, "  neighbor {ip} prefix-list from-cluster in");
        let _ = writeln!(s, "  neighbor {ip} route-map gshut in");
        let _ = writeln!(s, "  neighbor {ip} prefix-list to-cluster out");
    }
    s.push_str(" exit-address-family\n!\n");
    s
}

/// The command line of FRR daemon `daemon` with its config `conf`, pid file, vty sockets
/// and zserv socket all in `dir` (zebra listens on `dir/zserv.api`, the others connect).
pub fn frr_daemon_args(dir: &Path, daemon: &str, conf: &Path) -> Vec<String> {
    let d = dir.display().to_string();
    vec![
        "-f".into(),
        conf.display().to_string(),
        "-i".into(),
        format!("{d}/{daemon}.pid"),
        "--vty_socket".into(),
        d.clone(),
        "-z".into(),
        format!("{d}/zserv.api"),
        "-A".into(),
        "127.0.0.1".into(),
    ]
}

/// A handle to the lab's router (works for a router started by another process too: it
/// only needs the state directory).
#[derive(Debug, Clone)]
pub struct Router {
    /// Which daemon.
    pub kind: RouterKind,
    /// Its namespace.
    pub ns: String,
    /// The lab is dual-stack: RIB, FIB and session reads cover IPv6 too.
    pub ipv6: bool,
    state: StateDir,
}

fn run(prog: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(prog)
        .args(args)
        .output()
        .with_context(|| format!("running {prog}"))?;
    if !out.status.success() {
        bail!(
            "`{prog} {}` failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn wait_ready(
    what: &str,
    state: &StateDir,
    component: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<()>,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let err = match probe() {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let dead = state.pid(component).is_some_and(|p| !procs::pid_alive(p));
        if dead || Instant::now() >= deadline {
            bail!(
                "{what} did not come up ({}): {err:#}\nlog tail ({}):\n{}",
                if dead { "it exited" } else { "timed out" },
                state.log(component).display(),
                state.log_tail(component, 20)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Router {
    /// A handle for the router of the lab named `names` with state in `state`.
    pub fn new(kind: RouterKind, names: &Names, state: &StateDir) -> Router {
        Router {
            kind,
            ns: names.rt(),
            ipv6: false,
            state: state.clone(),
        }
    }

    /// gobgpd's API socket.
    pub fn gobgp_socket(&self) -> PathBuf {
        self.state.path("gobgp.sock")
    }

    /// `unix://...` for gobgp `--target` and fib-sync `--api`.
    pub fn gobgp_target(&self) -> String {
        format!("unix://{}", self.gobgp_socket().display())
    }

    fn bird_socket(&self) -> PathBuf {
        self.state.path("bird.ctl")
    }

    fn frr_dir(&self) -> PathBuf {
        self.state.path("frr")
    }

    /// Writes the config and starts the daemon(s) detached in the router namespace; waits
    /// until the control interface answers.
    pub fn start(&self, spec: &RouterSpec) -> Result<()> {
        if spec.bfd.is_some() && self.kind == RouterKind::Gobgp {
            bail!("gobgpd has no BFD: use the BIRD or FRR router for BFD");
        }
        match self.kind {
            RouterKind::Gobgp => self.start_gobgp(spec),
            RouterKind::Bird => self.start_bird(spec),
            RouterKind::Frr => self.start_frr(spec),
        }
    }

    fn start_gobgp(&self, spec: &RouterSpec) -> Result<()> {
        let conf = self.state.path("gobgpd.toml");
        std::fs::write(&conf, gobgp_toml(spec.nodes, spec.dual_stack))?;
        let _ = std::fs::remove_file(self.gobgp_socket());
        let args: Vec<String> = vec![
            "-f".into(),
            conf.display().to_string(),
            "-p".into(),
            "--pprof-disable".into(),
            "--log-plain".into(),
            "--api-hosts".into(),
            self.gobgp_target(),
        ];
        procs::spawn_in(
            &self.state,
            &self.ns,
            "gobgpd",
            Path::new("/usr/bin/gobgpd"),
            &args,
            &[],
        )?;
        let target = self.gobgp_target();
        wait_ready(
            "gobgpd",
            &self.state,
            "gobgpd",
            Duration::from_secs(10),
            || run("gobgp", &["--target", &target, "global"]).map(drop),
        )?;
        let fib_args: Vec<String> = vec!["fib-sync".into(), "--api".into(), target];
        procs::spawn_in(
            &self.state,
            &self.ns,
            "fib-sync",
            &spec.lab_bin,
            &fib_args,
            &[("RUST_LOG", "info")],
        )?;
        Ok(())
    }

    fn start_bird(&self, spec: &RouterSpec) -> Result<()> {
        let conf = self.state.path("bird.conf");
        let text = crate::router_config::bird_conf(spec.nodes, spec.dual_stack, spec.bfd.as_ref());
        std::fs::write(&conf, text)?;
        let sock = self.bird_socket();
        let _ = std::fs::remove_file(&sock);
        let args: Vec<String> = vec![
            "-f".into(),
            "-c".into(),
            conf.display().to_string(),
            "-s".into(),
            sock.display().to_string(),
            "-P".into(),
            self.state.path("bird.pid").display().to_string(),
        ];
        procs::spawn_in(
            &self.state,
            &self.ns,
            "bird",
            Path::new("/usr/sbin/bird"),
            &args,
            &[],
        )?;
        let s = sock.display().to_string();
        wait_ready("bird", &self.state, "bird", Duration::from_secs(10), || {
            run("birdc", &["-s", &s, "show", "status"]).map(drop)
        })
    }

    fn start_frr(&self, spec: &RouterSpec) -> Result<()> {
        let dir = self.frr_dir();
        std::fs::create_dir_all(&dir)?;
        // FRR drops privileges to its `frr` user: it must own its pid/socket directory.
        if let Ok(Some(user)) = nix::unistd::User::from_name("frr") {
            nix::unistd::chown(&dir, Some(user.uid), Some(user.gid))
                .with_context(|| format!("chown frr {}", dir.display()))?;
        }
        let conf = dir.join("bgpd.conf");
        let mut text = frr_conf_with_bfd(spec.nodes, spec.bfd.is_some());
        if spec.dual_stack {
            text.push_str(&crate::router_config::frr_conf_v6(spec.nodes));
        }
        std::fs::write(&conf, text)?;
        let zconf = dir.join("zebra.conf");
        std::fs::write(&zconf, "hostname rt\n")?;
        let zsock = dir.join("zserv.api");
        let common = |daemon: &str, conf: &Path| frr_daemon_args(&dir, daemon, conf);
        let mut zargs = common("zebra", &zconf);
        zargs.extend(["--retain".to_string()]);
        procs::spawn_in(
            &self.state,
            &self.ns,
            "zebra",
            Path::new("/usr/lib/frr/zebra"),
            &zargs,
            &[],
        )?;
        wait_ready(
            "FRR zebra",
            &self.state,
            "zebra",
            Duration::from_secs(10),
            || {
                if zsock.exists() {
                    Ok(())
                } else {
                    bail!("no zserv socket yet")
                }
            },
        )?;
        let mut bargs = common("bgpd", &conf);
        bargs.extend(["-p".to_string(), "179".to_string()]);
        procs::spawn_in(
            &self.state,
            &self.ns,
            "bgpd",
            Path::new("/usr/lib/frr/bgpd"),
            &bargs,
            &[],
        )?;
        wait_ready(
            "FRR bgpd",
            &self.state,
            "bgpd",
            Duration::from_secs(10),
            || self.vtysh("show bgp summary").map(drop),
        )?;
        let Some(b) = &spec.bfd else {
            return Ok(());
        };
        let bconf = dir.join("bfdd.conf");
        std::fs::write(&bconf, frr_bfdd_conf(b))?;
        procs::spawn_in(
            &self.state,
            &self.ns,
            "bfdd",
            Path::new("/usr/lib/frr/bfdd"),
            &common("bfdd", &bconf),
            &[],
        )?;
        wait_ready(
            "FRR bfdd",
            &self.state,
            "bfdd",
            Duration::from_secs(10),
            || self.vtysh("show bfd peers").map(drop),
        )
    }

    fn vtysh(&self, cmd: &str) -> Result<String> {
        let d = self.frr_dir().display().to_string();
        run("vtysh", &["--vty_socket", &d, "-c", cmd])
    }

    /// The router's BGP RIB (IPv4) as data.
    pub fn rib(&self) -> Result<Vec<RibRoute>> {
        self.rib_family(Family::V4)
    }

    /// The router's BGP RIB of one address family as data.
    pub fn rib_family(&self, family: Family) -> Result<Vec<RibRoute>> {
        match self.kind {
            RouterKind::Gobgp => {
                let t = self.gobgp_target();
                let json = run(
                    "gobgp",
                    &["-j", "--target", &t, "global", "rib", "-a", family.name()],
                )?;
                Ok(ferrolb_netns::parse_gobgp_rib(&json)?)
            }
            RouterKind::Bird => {
                let s = self.bird_socket().display().to_string();
                let table = match family {
                    Family::V4 => "master4",
                    Family::V6 => "master6",
                };
                let text = run("birdc", &["-s", &s, "show", "route", "table", table, "all"])?;
                let mut routes = ferrolb_netns::parse_bird_routes(&text)?;
                // BIRD lists merged kernel paths as separate BGP routes per protocol, good;
                // keep only the ones learned over BGP.
                for r in &mut routes {
                    r.paths
                        .retain(|p| p.source.as_deref().is_some_and(|s| s.starts_with("node")));
                }
                routes.retain(|r| !r.paths.is_empty());
                Ok(routes)
            }
            RouterKind::Frr => {
                parse_frr_rib(&self.vtysh(&format!("show bgp {} unicast json", family.name()))?)
            }
        }
    }

    /// The router's BFD sessions as its daemon reports them: neighbour, state (lowercase:
    /// `up`, `down`, `init`, ...), negotiated transmit interval in ms. gobgpd has none.
    pub fn bfd_sessions(&self) -> Result<Vec<(std::net::IpAddr, String, u64)>> {
        match self.kind {
            RouterKind::Gobgp => Ok(Vec::new()),
            RouterKind::Bird => {
                let s = self.bird_socket().display().to_string();
                let text = run("birdc", &["-s", &s, "show", "bfd", "sessions"])?;
                Ok(ferrolb_netns::parse_bird_bfd_sessions(&text)?
                    .into_iter()
                    .map(|b| {
                        let ms = (b.interval * 1000.0).round() as u64;
                        (b.address, b.state.to_lowercase(), ms)
                    })
                    .collect())
            }
            RouterKind::Frr => Ok(ferrolb_netns::parse_frr_bfd_peers(
                &self.vtysh("show bfd peers json")?,
            )?
            .into_iter()
            .map(|p| (p.peer, p.status, p.transmit_interval))
            .collect()),
        }
    }

    /// The router namespace's kernel routes installed by the routing daemon.
    pub fn fib(&self) -> Result<Vec<KernelRoute>> {
        kernel_routes(&self.ns, Some(self.kind.kernel_proto()))
    }

    /// [`Router::fib`] for one address family.
    pub fn fib_family(&self, family: Family) -> Result<Vec<KernelRoute>> {
        kernel_routes_family(&self.ns, family, Some(self.kind.kernel_proto()))
    }

    /// FRR only: the standard communities of each IPv4 path to `prefix`, as FRR prints them
    /// (`64500:1`; well-known ones by name), from `show bgp ipv4 unicast PREFIX json`
    /// (FRR's table summary leaves communities out).
    pub fn frr_path_communities(&self, prefix: ipnet::IpNet) -> Result<Vec<Vec<String>>> {
        ensure!(self.kind == RouterKind::Frr, "FRR only");
        let v: serde_json::Value =
            serde_json::from_str(&self.vtysh(&format!("show bgp ipv4 unicast {prefix} json"))?)?;
        Ok(v.get("paths")
            .and_then(|p| p.as_array())
            .into_iter()
            .flatten()
            .map(|p| {
                p.pointer("/community/string")
                    .and_then(|s| s.as_str())
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(String::from)
                    .collect()
            })
            .collect())
    }

    /// The next hops of the IPv4 paths to `prefix` that carry the GRACEFUL_SHUTDOWN
    /// community (65535:0, RFC 8326), with the LOCAL_PREF the router gave them. BIRD and
    /// FRR (gobgpd is not asked).
    pub fn graceful_shutdown_paths(
        &self,
        prefix: ipnet::IpNet,
    ) -> Result<Vec<(std::net::IpAddr, Option<u32>)>> {
        match self.kind {
            RouterKind::Gobgp => bail!("graceful shutdown is checked on BIRD and FRR only"),
            RouterKind::Bird => {
                let gshut = ferrolb_netns::Community::new(65535, 0);
                Ok(self
                    .rib()?
                    .into_iter()
                    .filter(|r| r.prefix == prefix)
                    .flat_map(|r| r.paths)
                    .filter(|p| p.communities.contains(&gshut))
                    .flat_map(|p| {
                        let lp = p.local_pref;
                        p.next_hops.into_iter().map(move |h| (h, lp))
                    })
                    .collect())
            }
            RouterKind::Frr => {
                let v: serde_json::Value = serde_json::from_str(
                    &self.vtysh(&format!("show bgp ipv4 unicast {prefix} json"))?,
                )?;
                let mut out = Vec::new();
                for p in v
                    .get("paths")
                    .and_then(|p| p.as_array())
                    .into_iter()
                    .flatten()
                {
                    let comm = p
                        .pointer("/community/string")
                        .and_then(|s| s.as_str())
                        .unwrap_or_default();
                    if !comm
                        .split_whitespace()
                        .any(|c| c == "graceful-shutdown" || c == "65535:0")
                    {
                        continue;
                    }
                    let lp = p
                        .get("locPrf")
                        .and_then(|l| l.as_u64())
                        .and_then(|l| u32::try_from(l).ok());
                    for h in p
                        .get("nexthops")
                        .and_then(|n| n.as_array())
                        .into_iter()
                        .flatten()
                    {
                        if let Some(ip) = h
                            .get("ip")
                            .and_then(|i| i.as_str())
                            .and_then(|i| i.parse().ok())
                        {
                            out.push((ip, lp));
                        }
                    }
                }
                Ok(out)
            }
        }
    }

    /// FRR only: how many times each IPv4 neighbour's session has been established
    /// (`connectionsEstablished`), to show that a change went through without a reset.
    pub fn frr_connections_established(
        &self,
    ) -> Result<std::collections::BTreeMap<std::net::IpAddr, u64>> {
        ensure!(
            self.kind == RouterKind::Frr,
            "session counters are read from FRR only, not {:?}",
            self.kind
        );
        let v: serde_json::Value =
            serde_json::from_str(&self.vtysh("show bgp ipv4 unicast summary json")?)?;
        let mut out = std::collections::BTreeMap::new();
        for (ip, p) in v
            .get("peers")
            .and_then(|p| p.as_object())
            .into_iter()
            .flatten()
        {
            if let (Ok(ip), Some(n)) = (
                ip.parse(),
                p.get("connectionsEstablished").and_then(|n| n.as_u64()),
            ) {
                out.insert(ip, n);
            }
        }
        Ok(out)
    }

    /// Established BGP sessions, by neighbour address.
    pub fn established(&self) -> Result<Vec<std::net::IpAddr>> {
        match self.kind {
            RouterKind::Gobgp => {
                let t = self.gobgp_target();
                let peers = ferrolb_netns::parse_gobgp_neighbors(&run(
                    "gobgp",
                    &["-j", "--target", &t, "neighbor"],
                )?)?;
                Ok(peers
                    .into_iter()
                    .filter(|p| p.state == "established")
                    .map(|p| p.address)
                    .collect())
            }
            RouterKind::Bird => {
                let s = self.bird_socket().display().to_string();
                let text = run("birdc", &["-s", &s, "show", "protocols"])?;
                let protos = ferrolb_netns::parse_bird_protocols(&text)?;
                Ok(protos
                    .into_iter()
                    .filter(|p| p.name.starts_with("node") && p.info.contains("Established"))
                    .filter_map(|p| match p.name.trim_start_matches("node").parse::<u8>() {
                        Ok(n) => Some(IpAddr::V4(addr::node(n))),
                        Err(_) => crate::router_config::bird_node_v6(&p.name)
                            .map(|n| IpAddr::V6(addr6::node(n))),
                    })
                    .collect())
            }
            RouterKind::Frr => {
                // A neighbour shows in the summary of the families it is activated in: the
                // IPv6 sessions only in IPv6 unicast.
                let mut out = Vec::new();
                let families: &[&str] = if self.ipv6 {
                    &["ipv4", "ipv6"]
                } else {
                    &["ipv4"]
                };
                for family in families {
                    let v: serde_json::Value = serde_json::from_str(
                        &self.vtysh(&format!("show bgp {family} unicast summary json"))?,
                    )?;
                    if let Some(peers) = v.get("peers").and_then(|p| p.as_object()) {
                        for (ip, p) in peers {
                            if p.get("state").and_then(|s| s.as_str()) == Some("Established")
                                && let Ok(ip) = ip.parse()
                            {
                                out.push(ip);
                            }
                        }
                    }
                }
                Ok(out)
            }
        }
    }
}

/// `ip -j route` of namespace `ns` (main table, IPv4), optionally only one protocol.
pub fn kernel_routes(ns: &str, proto: Option<&str>) -> Result<Vec<KernelRoute>> {
    kernel_routes_family(ns, Family::V4, proto)
}

/// [`kernel_routes`] for one address family.
pub fn kernel_routes_family(
    ns: &str,
    family: Family,
    proto: Option<&str>,
) -> Result<Vec<KernelRoute>> {
    let flag = match family {
        Family::V4 => "-4",
        Family::V6 => "-6",
    };
    let json = run("ip", &["-n", ns, "-j", flag, "route", "show"])?;
    let routes = ferrolb_netns::parse_kernel_routes(family, &json)?;
    Ok(routes
        .into_iter()
        .filter(|r| proto.is_none() || r.protocol.as_deref() == proto)
        .collect())
}

/// Parses FRR's `show bgp ipv4 unicast json`.
pub fn parse_frr_rib(json: &str) -> Result<Vec<RibRoute>> {
    let v: serde_json::Value = serde_json::from_str(json).context("parsing FRR's RIB JSON")?;
    let mut out = Vec::new();
    let Some(routes) = v.get("routes").and_then(|r| r.as_object()) else {
        return Ok(out);
    };
    for (prefix, paths) in routes {
        let Ok(prefix) = prefix.parse() else { continue };
        let mut rib_paths = Vec::new();
        for p in paths.as_array().into_iter().flatten() {
            let next_hops = p
                .get("nexthops")
                .and_then(|n| n.as_array())
                .into_iter()
                .flatten()
                .filter_map(|n| n.get("ip").and_then(|i| i.as_str()))
                .filter_map(|s| s.parse().ok())
                .collect();
            let as_path = p
                .get("path")
                .and_then(|s| s.as_str())
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|a| a.parse().ok())
                .collect();
            rib_paths.push(RibPath {
                next_hops,
                as_path,
                best: p.get("bestpath").and_then(|b| b.as_bool()).unwrap_or(false),
                source: p.get("peerId").and_then(|s| s.as_str()).map(String::from),
                kind: "unicast".into(),
                ..RibPath::default()
            });
        }
        out.push(RibRoute {
            prefix,
            paths: rib_paths,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bfd_router_configs() {
        let b = RouterBfd::symmetric(300, 3);
        let c = crate::router_config::bird_conf(2, false, Some(&b));
        assert!(c.contains("bfd on;"), "{c}");
        assert!(c.contains("error wait time 1, 10;"));
        assert!(c.contains("min rx interval 300 ms; min tx interval 300 ms; multiplier 3;"));
        assert!(!crate::router_config::bird_conf(2, false, None).contains("bfd"));
        let f = frr_conf_with_bfd(2, true);
        assert_eq!(f.matches("bfd profile lab").count(), 2, "{f}");
        assert!(frr_bfdd_conf(&b).contains(" profile lab\n  receive-interval 300\n"));
    }

    #[test]
    fn frr_rib_json() {
        let json = r#"{"routes":{"172.17.254.1/32":[
          {"valid":true,"bestpath":true,"path":"64522","peerId":"172.17.0.21","nexthops":[{"ip":"172.17.0.21"}]},
          {"valid":true,"multipath":true,"path":"64522","peerId":"172.17.0.22","nexthops":[{"ip":"172.17.0.22"}]}]}}"#;
        let rib = parse_frr_rib(json).unwrap();
        assert_eq!(rib.len(), 1);
        assert_eq!(rib[0].paths.len(), 2);
        assert!(rib[0].paths[0].best);
        assert_eq!(rib[0].paths[1].as_path, vec![64522]);
    }
}
