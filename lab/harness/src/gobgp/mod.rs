//! A real gobgpd inside a namespace, configured from [`GobgpConfig`], read as data through
//! `gobgp -j` over a per-instance Unix-socket API (no port clashes, no `netns exec` needed
//! for queries).

mod config;
mod parse;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ipnet::IpNet;

pub use config::{GobgpConfig, GobgpNeighbor};
pub use parse::{GobgpPeer, parse_neighbors, parse_rib};

use crate::cmd::{self, DEFAULT_TIMEOUT};
use crate::daemon;
use crate::error::Result;
use crate::kernel::Family;
use crate::netns::Netns;
use crate::process::Proc;
use crate::rib::{self, RibRoute};
use crate::wait;

/// Everything read from gobgpd in one poll.
#[derive(Debug, Clone)]
pub struct GobgpState {
    /// Neighbours.
    pub neighbors: Vec<GobgpPeer>,
    /// The global IPv4 unicast RIB.
    pub rib_v4: Vec<RibRoute>,
    /// The global IPv6 unicast RIB.
    pub rib_v6: Vec<RibRoute>,
}

impl GobgpState {
    /// The neighbour with this address.
    pub fn neighbor(&self, addr: IpAddr) -> Option<&GobgpPeer> {
        self.neighbors.iter().find(|n| n.address == addr)
    }

    /// The route for this prefix (either family).
    pub fn route(&self, prefix: IpNet) -> Option<&RibRoute> {
        rib::find(&self.rib_v4, prefix).or_else(|| rib::find(&self.rib_v6, prefix))
    }
}

/// A running gobgpd. The lab stops it at teardown; [`Gobgpd::stop`] stops it earlier.
#[derive(Debug, Clone)]
pub struct Gobgpd {
    proc: Proc,
    config_path: PathBuf,
    socket: PathBuf,
    cli_bin: PathBuf,
}

impl Gobgpd {
    /// Writes `cfg` to the lab directory, starts `gobgpd -f CONF -p --pprof-disable
    /// --api-hosts unix://SOCK` in `ns` and waits until its API answers.
    pub fn start(ns: &Netns, cfg: &GobgpConfig) -> Result<Gobgpd> {
        let bin = cfg.gobgpd_bin.to_string_lossy().into_owned();
        cmd::check_binary(&bin)?;
        cmd::check_binary(&cfg.gobgp_bin.to_string_lossy())?;
        let stem = daemon::fresh_stem(ns.dir(), "gobgpd");
        let config_path = stem.with_extension("toml");
        let socket = stem.with_extension("sock");
        let log = stem.with_extension("log");
        daemon::write_file(&config_path, &cfg.to_toml())?;
        let _ = std::fs::remove_file(&socket);
        let target = format!("unix://{}", socket.display());
        let proc = ns.spawn_logged(
            &bin,
            &[
                "-f",
                &config_path.to_string_lossy(),
                "-p",
                "--pprof-disable",
                "--api-hosts",
                &target,
            ],
            &log,
        )?;
        let g = Gobgpd {
            proc,
            config_path,
            socket,
            cli_bin: cfg.gobgp_bin.clone(),
        };
        daemon::wait_ready("gobgpd", &g.proc, cfg.start_timeout, || {
            g.cli(&["global"]).map(drop)
        })?;
        tracing::info!(
            ns = ns.label(),
            pid = g.proc.pid(),
            asn = cfg.asn,
            "gobgpd up"
        );
        Ok(g)
    }

    /// The daemon process (for `signal(SIGSTOP)`, `log_tail`, ...).
    pub fn proc(&self) -> &Proc {
        &self.proc
    }

    /// The generated config file.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The API socket path (`gobgp --target unix://PATH`).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Runs `gobgp -j --target unix://SOCK args...` and returns stdout.
    pub fn cli<S: AsRef<str>>(&self, args: &[S]) -> Result<String> {
        let mut c = Command::new(&self.cli_bin);
        c.arg("-j")
            .arg("--target")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args.iter().map(AsRef::as_ref));
        cmd::run(c, DEFAULT_TIMEOUT)?.into_stdout()
    }

    /// All neighbours with their session state and counters.
    pub fn neighbors(&self) -> Result<Vec<GobgpPeer>> {
        parse_neighbors(&self.cli(&["neighbor"])?)
    }

    /// The global RIB of one family.
    pub fn rib(&self, family: Family) -> Result<Vec<RibRoute>> {
        parse_rib(&self.cli(&["global", "rib", "-a", family.name()])?)
    }

    /// What `neighbor` sent us (Adj-RIB-In), before import policy.
    pub fn adj_in(&self, neighbor: IpAddr, family: Family) -> Result<Vec<RibRoute>> {
        let n = neighbor.to_string();
        parse_rib(&self.cli(&["neighbor", &n, "adj-in", "-a", family.name()])?)
    }

    /// Adds a route to the global RIB (`gobgp global rib add PREFIX nexthop NH ATTRS...`);
    /// `attrs` are gobgp CLI words, e.g. `["community", "65000:1", "local-pref", "200"]`.
    pub fn announce(&self, prefix: IpNet, next_hop: IpAddr, attrs: &[&str]) -> Result<()> {
        let fam = Family::of(prefix.addr()).name();
        let (p, nh) = (prefix.to_string(), next_hop.to_string());
        let mut args = vec!["global", "rib", "add", "-a", fam, &p, "nexthop", &nh];
        args.extend_from_slice(attrs);
        self.cli(&args).map(drop)
    }

    /// Removes a route added with [`Gobgpd::announce`].
    pub fn withdraw(&self, prefix: IpNet) -> Result<()> {
        let fam = Family::of(prefix.addr()).name();
        let p = prefix.to_string();
        self.cli(&["global", "rib", "del", "-a", fam, &p]).map(drop)
    }

    /// Neighbours and both RIBs, read now.
    pub fn state(&self) -> Result<GobgpState> {
        Ok(GobgpState {
            neighbors: self.neighbors()?,
            rib_v4: self.rib(Family::V4)?,
            rib_v6: self.rib(Family::V6)?,
        })
    }

    /// Polls [`Gobgpd::state`] until `pred` holds; the timeout error shows the last state.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl FnMut(&GobgpState) -> bool,
    ) -> Result<GobgpState> {
        wait::wait_for_state(&format!("gobgpd: {what}"), timeout, || self.state(), pred)
    }

    /// Waits until the session with `peer` is Established.
    pub fn wait_established(&self, peer: IpAddr, timeout: Duration) -> Result<GobgpPeer> {
        let peers = wait::wait_for_state(
            &format!("gobgpd: session with {peer} Established"),
            timeout,
            || self.neighbors(),
            |ns| ns.iter().any(|n| n.address == peer && n.is_established()),
        )?;
        peers
            .into_iter()
            .find(|n| n.address == peer)
            .ok_or_else(|| crate::Error::parse("gobgp -j neighbor", format!("{peer} vanished")))
    }

    /// Waits until `prefix` is in the global RIB and returns it.
    pub fn wait_route(&self, prefix: IpNet, timeout: Duration) -> Result<RibRoute> {
        let fam = Family::of(prefix.addr());
        wait::wait_for(&format!("gobgpd: route {prefix}"), timeout, || {
            Ok(rib::find(&self.rib(fam)?, prefix).cloned())
        })
    }

    /// Stops the daemon now (SIGTERM, then SIGKILL after a grace period).
    pub fn stop(&self) {
        self.proc.kill();
    }
}
