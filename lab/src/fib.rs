//! The lab router's FIB programmer: gobgpd's RIB into the kernel, as ECMP routes.
//!
//! The seed lab pushed gobgpd's routes into the kernel with quagga's zebra. Debian's gobgpd
//! 3.10 panics on FRR 8.4 zebra's ZAPI, so the netns lab runs this small component inside
//! the router namespace instead: it reads `gobgp -j global rib`, picks the multipath set of
//! every prefix, and keeps the kernel's `proto bgp` routes equal to it (level-triggered: the
//! whole desired FIB is recomputed and diffed on every trigger, so a route deleted by hand is
//! repaired too).
//!
//! Multipath rule (what a router with `maximum-paths` would do, simplified): the paths that
//! tie with the best path on LOCAL_PREF and AS-path length, learned from peers (never the
//! router's own locally added routes), next hops deduplicated.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ferrolb_netns::{Family, KernelRoute, RibPath, RibRoute};
use ipnet::IpNet;

/// The kernel protocol tag of the routes we own (`186 bgp` in `/etc/iproute2/rt_protos`).
pub const PROTO: &str = "bgp";

/// Prefix -> the next hops it should be routed over.
pub type Fib = BTreeMap<IpNet, BTreeSet<IpAddr>>;

/// One change to the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FibOp {
    /// Install or replace the route with exactly these next hops.
    Replace(IpNet, BTreeSet<IpAddr>),
    /// Remove the route.
    Delete(IpNet),
}

fn rank(p: &RibPath) -> (u32, usize) {
    (p.local_pref.unwrap_or(100), p.as_path.len())
}

/// The desired FIB from a gobgpd RIB.
pub fn desired_fib(rib: &[RibRoute]) -> Fib {
    let mut fib = Fib::new();
    for route in rib {
        let learned: Vec<&RibPath> = route.paths.iter().filter(|p| p.source.is_some()).collect();
        let Some(best) = learned.iter().copied().find(|p| p.best).or_else(|| {
            learned
                .iter()
                .copied()
                .max_by_key(|p| (rank(p).0, usize::MAX - rank(p).1))
        }) else {
            continue;
        };
        let hops: BTreeSet<IpAddr> = learned
            .iter()
            .filter(|p| rank(p) == rank(best))
            .flat_map(|p| p.next_hops.first().copied())
            .filter(|ip| !ip.is_unspecified())
            .collect();
        if !hops.is_empty() {
            fib.insert(route.prefix, hops);
        }
    }
    fib
}

/// The kernel's current `proto bgp` routes as a [`Fib`].
pub fn current_fib(routes: &[KernelRoute]) -> Fib {
    routes
        .iter()
        .filter(|r| r.protocol.as_deref() == Some(PROTO))
        .map(|r| (r.dst, r.gateways().into_iter().collect()))
        .collect()
}

/// The operations that turn `current` into `desired`; empty when they are equal.
pub fn plan(desired: &Fib, current: &Fib) -> Vec<FibOp> {
    let mut ops: Vec<FibOp> = current
        .keys()
        .filter(|p| !desired.contains_key(p))
        .map(|p| FibOp::Delete(*p))
        .collect();
    for (prefix, hops) in desired {
        if current.get(prefix) != Some(hops) {
            ops.push(FibOp::Replace(*prefix, hops.clone()));
        }
    }
    ops
}

/// The `ip` arguments for one operation.
pub fn ip_args(op: &FibOp) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    match op {
        FibOp::Delete(prefix) => {
            args.extend(["route", "del", &prefix.to_string(), "proto", PROTO].map(String::from));
        }
        FibOp::Replace(prefix, hops) => {
            args.extend(
                ["route", "replace", &prefix.to_string(), "proto", PROTO].map(String::from),
            );
            if hops.len() == 1 {
                args.extend(hops.iter().flat_map(|h| ["via".to_string(), h.to_string()]));
            } else {
                for hop in hops {
                    args.extend(["nexthop".to_string(), "via".to_string(), hop.to_string()]);
                }
            }
        }
    }
    args
}

fn run(prog: &str, args: &[String]) -> Result<String> {
    let out = Command::new(prog)
        .args(args)
        .output()
        .with_context(|| format!("running {prog}"))?;
    if !out.status.success() {
        bail!(
            "{prog} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// How to reach gobgpd's API: the `gobgp` CLI's connection flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GobgpApi {
    args: Vec<String>,
}

impl GobgpApi {
    /// `unix:///path/to.sock` (gobgpd `--api-hosts unix://...`, `gobgp --target`),
    /// `HOST:PORT`, or a bare port on 127.0.0.1.
    pub fn parse(s: &str) -> Result<GobgpApi> {
        let args = if s.starts_with("unix://") {
            vec!["--target".to_string(), s.to_string()]
        } else if let Ok(port) = s.parse::<u16>() {
            vec!["-p".to_string(), port.to_string()]
        } else if let Some((host, port)) = s.rsplit_once(':') {
            let port: u16 = port
                .parse()
                .with_context(|| format!("bad port in gobgpd API address {s:?}"))?;
            vec![
                "-u".to_string(),
                host.trim_matches(['[', ']']).to_string(),
                "-p".to_string(),
                port.to_string(),
            ]
        } else {
            bail!("gobgpd API address {s:?}: use unix:///path.sock, HOST:PORT or PORT");
        };
        Ok(GobgpApi { args })
    }

    /// The TCP API on 127.0.0.1:`port`.
    pub fn port(port: u16) -> GobgpApi {
        GobgpApi {
            args: vec!["-p".to_string(), port.to_string()],
        }
    }

    fn with(&self, rest: &[&str]) -> Vec<String> {
        let mut v = self.args.clone();
        v.extend(rest.iter().map(|s| s.to_string()));
        v
    }
}

fn read_rib(api: &GobgpApi) -> Result<Vec<RibRoute>> {
    let mut all = Vec::new();
    for family in ["ipv4", "ipv6"] {
        let args = api.with(&["-j", "global", "rib", "-a", family]);
        all.extend(ferrolb_netns::parse_gobgp_rib(&run("gobgp", &args)?)?);
    }
    Ok(all)
}

fn read_kernel() -> Result<Fib> {
    let mut fib = Fib::new();
    for family in [Family::V4, Family::V6] {
        let flag = if family == Family::V4 { "-4" } else { "-6" };
        // Not `show proto bgp`: iproute2 then leaves the protocol out of its JSON, and
        // `current_fib` keeps only routes whose protocol it sees.
        let args: Vec<String> = [flag, "-j", "route", "show", "table", "main"]
            .map(String::from)
            .to_vec();
        fib.extend(current_fib(&ferrolb_netns::parse_kernel_routes(
            family,
            &run("ip", &args)?,
        )?));
    }
    Ok(fib)
}

/// One reconciliation pass in the current network namespace; returns the ops applied.
pub fn sync_once(api: &GobgpApi) -> Result<Vec<FibOp>> {
    let ops = plan(&desired_fib(&read_rib(api)?), &read_kernel()?);
    for op in &ops {
        match run("ip", &ip_args(op)) {
            Ok(_) => tracing::info!(op = ?op, "fib updated"),
            Err(e) => tracing::warn!(op = ?op, error = %e, "fib update failed; retried next pass"),
        }
    }
    Ok(ops)
}

/// Runs forever: a pass whenever `gobgp monitor` reports anything, and every `period`.
pub fn run_loop(api: &GobgpApi, period: Duration) -> Result<()> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    for what in [&["adj-in"][..], &["neighbor"][..], &["global", "rib"][..]] {
        let tx = tx.clone();
        let mut args = api.with(&["monitor"]);
        args.extend(what.iter().map(|s| s.to_string()));
        std::thread::spawn(move || monitor_trigger(args, tx));
    }
    loop {
        if let Err(e) = sync_once(api) {
            tracing::warn!(error = %e, "fib sync pass failed");
        }
        let _ = rx.recv_timeout(period);
        // Coalesce a burst of monitor lines into one pass.
        std::thread::sleep(Duration::from_millis(20));
        while rx.try_recv().is_ok() {}
    }
}

/// Follows one `gobgp monitor` stream and pokes the sync loop for every line; restarts the
/// monitor when it exits (gobgpd restarting).
fn monitor_trigger(args: Vec<String>, tx: std::sync::mpsc::Sender<()>) {
    use std::io::BufRead;
    loop {
        let child = Command::new("gobgp")
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn();
        if let Ok(mut child) = child {
            if let Some(out) = child.stdout.take() {
                for _line in std::io::BufReader::new(out).lines().map_while(|l| l.ok()) {
                    if tx.send(()).is_err() {
                        let _ = child.kill();
                        return;
                    }
                }
            }
            let _ = child.wait();
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(nh: &str, as_path: &[u32], best: bool, source: Option<&str>) -> RibPath {
        RibPath {
            next_hops: vec![nh.parse().unwrap()],
            as_path: as_path.to_vec(),
            best,
            source: source.map(String::from),
            kind: "unicast".into(),
            ..RibPath::default()
        }
    }

    fn set(ips: &[&str]) -> BTreeSet<IpAddr> {
        ips.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn ecmp_over_equal_paths_only() {
        let rib = vec![
            RibRoute {
                prefix: "172.17.254.1/32".parse().unwrap(),
                paths: vec![
                    path("172.17.0.21", &[64522], true, Some("172.17.0.21")),
                    path("172.17.0.22", &[64522], false, Some("172.17.0.22")),
                    path("172.17.0.23", &[64522], false, Some("172.17.0.23")),
                    path("172.17.0.24", &[64522, 64522], false, Some("172.17.0.24")),
                ],
            },
            RibRoute {
                prefix: "172.17.1.0/24".parse().unwrap(),
                paths: vec![path("0.0.0.0", &[], true, None)],
            },
        ];
        let fib = desired_fib(&rib);
        assert_eq!(
            fib.len(),
            1,
            "locally originated routes are not installed: {fib:?}"
        );
        assert_eq!(
            fib[&"172.17.254.1/32".parse().unwrap()],
            set(&["172.17.0.21", "172.17.0.22", "172.17.0.23"])
        );
    }

    #[test]
    fn plan_is_minimal_and_empty_when_equal() {
        let a: IpNet = "10.0.0.1/32".parse().unwrap();
        let b: IpNet = "10.0.0.2/32".parse().unwrap();
        let c: IpNet = "10.0.0.3/32".parse().unwrap();
        let desired: Fib = [(a, set(&["1.1.1.1", "2.2.2.2"])), (b, set(&["1.1.1.1"]))].into();
        let current: Fib = [
            (a, set(&["1.1.1.1"])),
            (b, set(&["1.1.1.1"])),
            (c, set(&["3.3.3.3"])),
        ]
        .into();
        assert_eq!(
            plan(&desired, &current),
            vec![
                FibOp::Delete(c),
                FibOp::Replace(a, set(&["1.1.1.1", "2.2.2.2"]))
            ]
        );
        assert!(plan(&desired, &desired).is_empty());
    }

    #[test]
    fn api_address_forms() {
        assert_eq!(
            GobgpApi::parse("unix:///run/x.sock").unwrap().args,
            ["--target", "unix:///run/x.sock"]
        );
        assert_eq!(GobgpApi::parse("50051").unwrap().args, ["-p", "50051"]);
        assert_eq!(
            GobgpApi::parse("10.0.0.1:50052").unwrap().args,
            ["-u", "10.0.0.1", "-p", "50052"]
        );
        assert!(GobgpApi::parse("nonsense").is_err());
    }

    #[test]
    fn ip_arguments() {
        let p: IpNet = "172.17.254.1/32".parse().unwrap();
        assert_eq!(
            ip_args(&FibOp::Replace(p, set(&["172.17.0.21", "172.17.0.22"]))).join(" "),
            "route replace 172.17.254.1/32 proto bgp nexthop via 172.17.0.21 nexthop via 172.17.0.22"
        );
        assert_eq!(
            ip_args(&FibOp::Replace(p, set(&["172.17.0.21"]))).join(" "),
            "route replace 172.17.254.1/32 proto bgp via 172.17.0.21"
        );
        assert_eq!(
            ip_args(&FibOp::Delete(p)).join(" "),
            "route del 172.17.254.1/32 proto bgp"
        );
    }
}
