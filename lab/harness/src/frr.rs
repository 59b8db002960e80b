//! A real FRR (zebra, plus bgpd and/or bfdd) inside a namespace, configured from text and
//! read as data through `vtysh --vty_socket` on a per-instance directory.
//!
//! bgpd and bfdd talk to each other through zebra (ZAPI), so zebra always runs; bgpd's
//! `neighbor X bfd profile P` needs the profile in bfdd's config.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::cmd::{self, DEFAULT_TIMEOUT};
use crate::daemon;
use crate::error::{Error, Result};
use crate::netns::Netns;
use crate::process::Proc;
use crate::wait;

/// What to run.
#[derive(Debug, Clone)]
pub struct FrrConfig {
    /// bgpd's config (`router bgp ...`); `None`: no bgpd.
    pub bgpd: Option<String>,
    /// bfdd's config (`bfd` block with profiles and peers); `None`: no bfdd.
    pub bfdd: Option<String>,
    /// Directory of the FRR binaries.
    pub bin_dir: PathBuf,
    /// How long each daemon may take to answer.
    pub start_timeout: Duration,
}

impl FrrConfig {
    /// bgpd and bfdd with these configs, Debian's binaries.
    pub fn new(bgpd: Option<String>, bfdd: Option<String>) -> FrrConfig {
        FrrConfig {
            bgpd,
            bfdd,
            bin_dir: PathBuf::from("/usr/lib/frr"),
            start_timeout: Duration::from_secs(15),
        }
    }
}

/// One `show bfd peers json` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrrBfdPeer {
    /// Peer address.
    pub peer: IpAddr,
    /// `up`, `down`, `init`, `shutdown`.
    pub status: String,
    /// Multihop session.
    pub multihop: bool,
    /// Negotiated transmit interval (ms).
    pub transmit_interval: u64,
    /// Negotiated receive interval (ms).
    pub receive_interval: u64,
    /// The peer's detect multiplier.
    pub remote_detect_multiplier: u64,
    /// The last diagnostic (`ok`, `control detection time expired`, ...).
    pub diagnostic: String,
}

/// A running FRR. The lab stops its processes at teardown; [`Frr::stop`] does it earlier.
#[derive(Debug)]
pub struct Frr {
    dir: PathBuf,
    procs: Vec<Proc>,
}

fn parse_json(what: &str, text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| Error::parse(what, format!("{e}: {text}")))
}

/// Parses `show bfd peers json`.
pub fn parse_bfd_peers(json: &str) -> Result<Vec<FrrBfdPeer>> {
    let v = parse_json("vtysh show bfd peers json", json)?;
    let mut out = Vec::new();
    for p in v.as_array().into_iter().flatten() {
        let Some(peer) = p
            .get("peer")
            .and_then(|x| x.as_str())
            .and_then(|s| s.parse().ok())
        else {
            continue;
        };
        let num = |k: &str| p.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        let text = |k: &str| {
            p.get(k)
                .and_then(|x| x.as_str())
                .unwrap_or_default()
                .to_string()
        };
        out.push(FrrBfdPeer {
            peer,
            status: text("status"),
            multihop: p.get("multihop").and_then(|x| x.as_bool()).unwrap_or(false),
            transmit_interval: num("transmit-interval"),
            receive_interval: num("receive-interval"),
            remote_detect_multiplier: num("remote-detect-multiplier"),
            diagnostic: text("diagnostic"),
        });
    }
    Ok(out)
}

/// Parses `show bgp summary json` into neighbour -> state (`Established`, `Active`, ...),
/// over all address families.
pub fn parse_bgp_summary(json: &str) -> Result<BTreeMap<IpAddr, String>> {
    let v = parse_json("vtysh show bgp summary json", json)?;
    let mut out = BTreeMap::new();
    for af in v.as_object().into_iter().flat_map(|o| o.values()) {
        for (ip, p) in af
            .get("peers")
            .and_then(|x| x.as_object())
            .into_iter()
            .flatten()
        {
            if let (Ok(ip), Some(state)) = (ip.parse(), p.get("state").and_then(|s| s.as_str())) {
                out.insert(ip, state.to_string());
            }
        }
    }
    Ok(out)
}

impl Frr {
    /// Writes the configs into a fresh directory (owned by the `frr` user, which FRR drops
    /// to), starts zebra, then bgpd and bfdd, each waited for until vtysh reaches it.
    pub fn start(ns: &Netns, cfg: &FrrConfig) -> Result<Frr> {
        let dir = daemon::fresh_stem(ns.dir(), "frr");
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        if let Ok(Some(user)) = nix::unistd::User::from_name("frr") {
            nix::unistd::chown(&dir, Some(user.uid), Some(user.gid)).map_err(|e| {
                Error::io(
                    format!("chown frr {}", dir.display()),
                    std::io::Error::from_raw_os_error(e as i32),
                )
            })?;
        }
        let mut frr = Frr {
            dir: dir.clone(),
            procs: Vec::new(),
        };
        let mut daemons = vec![("zebra", Some("hostname frr\n".to_string()))];
        daemons.push(("bgpd", cfg.bgpd.clone()));
        daemons.push(("bfdd", cfg.bfdd.clone()));
        for (name, conf) in daemons {
            let Some(conf) = conf else { continue };
            let conf_path = dir.join(format!("{name}.conf"));
            daemon::write_file(&conf_path, &conf)?;
            let bin = cfg.bin_dir.join(name);
            let mut args: Vec<String> = vec![
                "-f".into(),
                conf_path.display().to_string(),
                "-i".into(),
                dir.join(format!("{name}.pid")).display().to_string(),
                "--vty_socket".into(),
                dir.display().to_string(),
                "-z".into(),
                dir.join("zserv.api").display().to_string(),
                "-A".into(),
                "127.0.0.1".into(),
            ];
            if name == "bgpd" {
                args.extend(["-p".into(), "179".into()]);
            }
            let log = dir.join(format!("{name}.log"));
            let proc = ns.spawn_logged(&bin.to_string_lossy(), &args, &log)?;
            let probe_cmd = match name {
                "zebra" => "show version",
                "bgpd" => "show bgp summary",
                _ => "show bfd peers",
            };
            daemon::wait_ready(name, &proc, cfg.start_timeout, || {
                frr.vtysh(&[probe_cmd]).map(drop)
            })?;
            frr.procs.push(proc);
        }
        tracing::info!(ns = ns.label(), dir = %dir.display(), "frr up");
        Ok(frr)
    }

    /// The instance directory (configs, logs, vty sockets).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `vtysh --vty_socket DIR -c CMD...` and returns stdout.
    pub fn vtysh(&self, cmds: &[&str]) -> Result<String> {
        let mut c = Command::new("vtysh");
        c.arg("--vty_socket").arg(&self.dir);
        for x in cmds {
            c.args(["-c", x]);
        }
        cmd::run(c, DEFAULT_TIMEOUT)?.into_stdout()
    }

    /// `show bfd peers json`.
    pub fn bfd_peers(&self) -> Result<Vec<FrrBfdPeer>> {
        parse_bfd_peers(&self.vtysh(&["show bfd peers json"])?)
    }

    /// BGP neighbour states.
    pub fn bgp_states(&self) -> Result<BTreeMap<IpAddr, String>> {
        parse_bgp_summary(&self.vtysh(&["show bgp summary json"])?)
    }

    /// Prefixes in bgpd's IPv4 unicast table (any path).
    pub fn bgp_prefixes(&self) -> Result<Vec<String>> {
        let v = parse_json(
            "vtysh show bgp ipv4 unicast json",
            &self.vtysh(&["show bgp ipv4 unicast json"])?,
        )?;
        Ok(v.get("routes")
            .and_then(|r| r.as_object())
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default())
    }

    /// Polls until `pred` holds on the BFD peers.
    pub fn wait_bfd(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl FnMut(&Vec<FrrBfdPeer>) -> bool,
    ) -> Result<Vec<FrrBfdPeer>> {
        wait::wait_for_state(&format!("frr: {what}"), timeout, || self.bfd_peers(), pred)
    }

    /// The daemons' processes (zebra first).
    pub fn procs(&self) -> &[Proc] {
        &self.procs
    }

    /// Stops every daemon now.
    pub fn stop(&self) {
        for p in self.procs.iter().rev() {
            p.kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bfd_peers_and_bgp_summary_json() {
        let peers = parse_bfd_peers(
            r#"[{"multihop":false,"peer":"10.0.0.2","local":"10.0.0.1","id":1,"remote-id":2,
               "status":"up","uptime":3,"diagnostic":"ok","remote-diagnostic":"ok",
               "receive-interval":300,"transmit-interval":300,"remote-detect-multiplier":3}]"#,
        )
        .unwrap();
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0].status, "up");
        assert_eq!(peers[0].transmit_interval, 300);
        assert_eq!(peers[0].remote_detect_multiplier, 3);
        let s =
            parse_bgp_summary(r#"{"ipv4Unicast":{"peers":{"10.0.0.2":{"state":"Established"}}}}"#)
                .unwrap();
        assert_eq!(s[&"10.0.0.2".parse::<IpAddr>().unwrap()], "Established");
    }
}
